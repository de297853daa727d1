"""MP-BADNet conformance: strategies, implementation adapters, properties and vectors.

* :mod:`conformance.strategies`: hypothesis strategies for ring elements, shapes,
  fixed-point values, replicated share triples and seeds.
* :mod:`conformance.harness`: one :class:`~conformance.harness.Implementation` adapter per
  implementation (``refimpl``, ``fast``), converting plain values and shares to and from
  flat lists of ``int``.
* :mod:`conformance.operations`: every protocol operation as a :class:`~conformance.operations.Case`
  that runs on any implementation, its plaintext model, and the recorded outcome.
* :mod:`conformance.checks`: checks of §6-§7 outcomes (plaintext models, material
  consistency, private-compare vectors, stated online and offline costs, equivalence).
* :mod:`conformance.bounds`: the §8 error bounds, truncation-failure probabilities and the
  failure allowance of the ``paper`` profile.
* :mod:`conformance.statistics`: a dependency-free chi-square test for the privacy checks.
* :mod:`conformance.vectors`: the known-answer vectors (``python -m conformance.vectors generate``).
* ``conformance/tests``: the properties (spec §13).
"""
