"""Hypothesis settings profiles and the parametrisation shared by every property.

``MPBADNET_CONFORMANCE`` picks the settings profile: ``quick`` (the default; 200 examples
per property and per parametrisation, derandomised so that CI is reproducible) or
``thorough`` (2,000 examples). Properties are parametrised over the implementations
(:func:`conformance.harness.selected_names`) and the parameter profiles, so every
(implementation, profile) pair gets its own examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

QUICK_EXAMPLES = 200
THOROUGH_EXAMPLES = 2000

settings.register_profile(
    "quick",
    max_examples=QUICK_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=THOROUGH_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

MODE = os.environ.get("MPBADNET_CONFORMANCE", "quick")
if MODE not in ("quick", "thorough"):
    raise ValueError(f"MPBADNET_CONFORMANCE must be 'quick' or 'thorough', not {MODE!r}")
settings.load_profile(MODE)
