"""§8.4 Logarithm: refimpl == fast bit for bit, and |log_bounded(x) - ln x| within the spec's bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast.nonlinear
import fast.sharing
import refimpl.nonlinear
import refimpl.sharing
from refimpl.ring import decode_fixed, encode_fixed, get_profile
from refimpl.transport import run_parties

WIDE_LOG_BOUND = 5.9e-3
"""§8.4: |log_bounded(x, 10) - ln x| on [1, 10] for wide (first-order analytic bound)."""


def run_log(
    values: list[float], profile_name: str, vectorised: bool, upper: float = 10.0
) -> tuple[list[int], list[bytes]]:
    profile = get_profile(profile_name)
    encoded = encode_fixed(profile, values)

    def program(ctx):  # type: ignore[no-untyped-def]
        if vectorised:
            mine = (
                np.array(encoded, dtype=np.uint64 if profile.ring_bits == 64 else np.uint32)
                if ctx.party == 0
                else None
            )
            x = fast.sharing.share_input(ctx, ctx.ring, 0, mine, (len(values),))
            return [int(v) for v in fast.sharing.reveal(ctx, fast.nonlinear.log_bounded(ctx, x, upper))]
        x = refimpl.sharing.share_input(ctx, ctx.ring, 0, encoded if ctx.party == 0 else None, (len(values),))
        return refimpl.sharing.reveal(ctx, refimpl.nonlinear.log_bounded(ctx, x, upper))

    result = run_parties(program, profile=profile, seed=b"logarithm")
    return result.outputs[0], [stats.transcript_hash for stats in result.stats]


@pytest.mark.parametrize("profile", ["paper", "wide"])
def test_refimpl_equals_fast(profile: str) -> None:
    values = [1.0, 1.25, 2.0, math.e, 5.5, 9.75, 10.0]
    assert run_log(values, profile, False) == run_log(values, profile, True)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=10.0), min_size=1, max_size=200))
def test_within_the_bound(values: list[float]) -> None:
    profile = get_profile("wide")
    decoded = decode_fixed(profile, encode_fixed(profile, values))
    output = decode_fixed(profile, run_log(values, "wide", True)[0])
    errors = [abs(y - math.log(x)) for x, y in zip(decoded, output, strict=True)]
    assert max(errors) <= WIDE_LOG_BOUND


def test_dense_grid_measurement() -> None:
    """The spec's measured figure: 2,000 points of [1, 10] stay below 1.1e-3."""
    profile = get_profile("wide")
    values = list(np.linspace(1.0, 10.0, 2000))
    decoded = decode_fixed(profile, encode_fixed(profile, values))
    output = decode_fixed(profile, run_log(values, "wide", True)[0])
    assert max(abs(y - math.log(x)) for x, y in zip(decoded, output, strict=True)) <= 1.1e-3


def test_coefficients_and_domain() -> None:
    coefficients = refimpl.nonlinear.log_coefficients(10.0)
    assert len(coefficients) == refimpl.nonlinear.LOG_DEGREE + 1
    assert max(abs(a) for a in coefficients) <= 1.71
    grid = [j / 5000.0 - 1.0 for j in range(10001)]
    worst = max(
        abs(sum(a * t**i for i, a in enumerate(coefficients)) - math.log(5.5 + 4.5 * t)) for t in grid
    )
    assert worst <= 3.9e-4
    with pytest.raises(ValueError):
        refimpl.nonlinear.log_coefficients(1.0)
