"""MP-BADNet conformance: strategies, implementation adapters, properties and vectors.

* :mod:`conformance.strategies`: hypothesis strategies for ring elements, shapes,
  fixed-point values, replicated share triples and seeds.
* :mod:`conformance.harness`: one :class:`~conformance.harness.Implementation` adapter per
  implementation (``refimpl``, ``fast``), converting plain values and shares to and from
  flat lists of ``int``.
* :mod:`conformance.operations`: every protocol operation as a :class:`~conformance.operations.Case`
  that runs on any implementation, its plaintext model, and the recorded outcome.
* :mod:`conformance.vectors`: the known-answer vectors (``python -m conformance.vectors generate``).
* ``conformance/tests``: the properties (spec §13).
"""
