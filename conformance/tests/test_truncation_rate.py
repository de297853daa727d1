"""The truncation failure rate matches the spec: |z| / 2^l per element (§5.3).

One batch of N = 4,000 elements, all with the same large |z| = 2^(l-4) (wide: 2^60,
paper: 2^28), so that each element fails — its error exceeds one unit, by about
2^(l-d) — independently with probability p = |z| / 2^l = 1/16. The failure count must be
within 5 standard deviations of the binomial mean N p = 250 (sd = sqrt(N p (1 - p)),
about 15.3); every other element must be within one unit of z / 2^d. Run for truncate
(z = x) and mul_truncate (z = x * y with x = ±2^(l/2-2), y = 2^(l/2-2)), for both signs,
with a pinned seed (deterministic).
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from conformance.harness import implementation, selected_names
from conformance.operations import Case, replicate, run_case, truncation_target
from conformance.strategies import PROFILE_NAMES
from refimpl.ring import get_profile, to_signed

ELEMENTS = 4000
STANDARD_DEVIATIONS = 5


def _components(modulus: int, value: int, seed: str) -> list[list[int]]:
    generator = random.Random(seed)
    first = [generator.randrange(modulus) for _ in range(ELEMENTS)]
    second = [generator.randrange(modulus) for _ in range(ELEMENTS)]
    last = [(value - a - b) % modulus for a, b in zip(first, second, strict=True)]
    return [first, second, last]


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", ["truncate", "mul_truncate"])
def test_failure_rate(operation: str, impl_name: str, profile: str, sign: int) -> None:
    """Failures (error >= 1 unit) occur at the rate |z| / 2^l = 1/16, within 5 sd."""
    chosen = get_profile(profile)
    ring = chosen.ring
    bits = chosen.fractional_bits
    z = sign * (1 << (chosen.ring_bits - 4))
    shape = (ELEMENTS,)
    if operation == "truncate":
        x = replicate(_components(ring.modulus, z, f"{profile}/x"))
        case = Case(operation, profile, ring.name, shape, x=x, bits=bits)
    else:
        half = 1 << (chosen.ring_bits // 2 - 2)
        x = replicate(_components(ring.modulus, sign * half, f"{profile}/x"))
        y = replicate(_components(ring.modulus, half, f"{profile}/y"))
        case = Case(operation, profile, ring.name, shape, x=x, y=y, bits=bits)
    outcome = run_case(
        implementation(impl_name), case, f"truncation-rate/{operation}/{profile}/{sign}".encode()
    )
    assert outcome.output is not None
    targets = truncation_target(case)
    assert set(targets) == {Fraction(z, 1 << bits)}
    errors = [
        abs(value - target) for value, target in zip(to_signed(ring, outcome.output), targets, strict=True)
    ]
    failures = [error for error in errors if error >= 1]
    huge = Fraction(1 << (chosen.ring_bits - bits), 4)
    assert all(error > huge for error in failures), "a failure's error should be about 2^(l-d)"
    probability = abs(z) / ring.modulus
    mean = ELEMENTS * probability
    deviation = math.sqrt(ELEMENTS * probability * (1 - probability))
    assert abs(len(failures) - mean) <= STANDARD_DEVIATIONS * deviation, (
        f"{len(failures)} failures in {ELEMENTS}; expected {mean} +- {STANDARD_DEVIATIONS} x {deviation:.1f}"
    )
