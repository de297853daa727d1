"""Privacy sanity: a single party's view does not depend on the secret.

A computing party's view is its own shares of the inputs plus every message it received
(rebuilt from the other parties' ``PartyStats.transcript`` entries addressed to it; the
32-byte key-setup message is left out: it is independent of any secret by construction).
For two different secrets, each run over :data:`RUNS` fixed seeds (distinct seed lists, so
the two samples are independent), the view's elements e_1..e_n and their simple linear
combinations (every e_j, every e_j + e_k and e_j - e_k, every e_j + e_k + e_m) are binned
by their top, middle and low four bits, and a chi-square homogeneity test
compares the two secrets' distributions of every (combination, binning).

A leak that a party could read with a ±1 combination of at most three view elements —
an unmasked opening, a missing PRSS component, A = z - B with B known or zero — gives
p-values far below 10^-50; correct protocols give uniform-looking views. The threshold is
p > 10^-4 for the whole family of tests of one property and party, Bonferroni-corrected,
so the deterministic seed lists keep the test stable. For truncation, P0's masked opening
A = z - B must in addition look uniform (goodness of fit, same threshold).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import DATA_HOLDER
from conformance.statistics import homogeneity_p_value, uniformity_p_value
from conformance.strategies import PROFILE_NAMES
from refimpl.ring import Ring, get_profile
from refimpl.transport import PartyContext, decode_elements

RUNS = 400
THRESHOLD = 1e-4
NIBBLE = 16
KEY_SETUP = "key-setup"

View = list[int]
Secret = tuple[list[int], list[int]]
"""Two secret operands (x, y); y is unused by single-operand operations."""
ViewProgram = Callable[[Implementation, Ring, Secret], Callable[[PartyContext], list[int]]]


def _seed(operation: str, secret_index: int, run: int) -> bytes:
    return f"privacy/{operation}/{secret_index}/{run}".encode()


def _received(ring: Ring, transcripts: list[list[tuple[int, str, bytes]]], party: int) -> list[int]:
    """Every ring element ``party`` received: the data holder's messages first, then P0..P2's."""
    elements: list[int] = []
    senders = sorted(range(len(transcripts)), key=lambda sender: (sender != DATA_HOLDER, sender))
    for sender in senders:
        if sender == party:
            continue
        for to, step, payload in transcripts[sender]:
            if to == party and step != KEY_SETUP:
                elements += decode_elements(ring, payload, len(payload) // ring.element_bytes)
    return elements


def _features(view: View, modulus: int) -> list[int]:
    """The view's elements and their ±1 combinations of up to three elements."""
    singles = list(view)
    pairs = [
        value for a, b in itertools.combinations(view, 2) for value in ((a + b) % modulus, (a - b) % modulus)
    ]
    triples = [sum(combination) % modulus for combination in itertools.combinations(view, 3)]
    return singles + pairs + triples


BINNINGS = ("top nibble", "low nibble", "middle nibble")


def _bins(value: int, bits: int) -> tuple[int, int, int]:
    return value >> (bits - 4), value & (NIBBLE - 1), (value >> (bits // 2 - 4)) & (NIBBLE - 1)


def _views(
    impl: Implementation,
    profile: str,
    operation: str,
    program: ViewProgram,
    secret: Secret,
    index: int,
    parties: int,
) -> list[list[View]]:
    """views[run][party] for every run of one secret."""
    ring = get_profile(profile).ring
    views = []
    for run in range(RUNS):
        result = impl.run(
            program(impl, ring, secret), profile=profile, seed=_seed(operation, index, run), parties=parties
        )
        transcripts = [list(stats.transcript) for stats in result.stats]
        views.append(
            [list(result.outputs[party]) + _received(ring, transcripts, party) for party in range(3)]
        )
    return views


def _assert_independent(ring: Ring, views_a: list[View], views_b: list[View], context: str) -> None:
    lengths = {len(view) for view in views_a + views_b}
    assert len(lengths) == 1, f"{context}: the view's length depends on the seed or the secret: {lengths}"
    features_a = [_features(view, ring.modulus) for view in views_a]
    features_b = [_features(view, ring.modulus) for view in views_b]
    count = len(features_a[0])
    tests = len(BINNINGS) * count
    worst = (1.0, "")
    for feature in range(count):
        for binning, name in enumerate(BINNINGS):
            sample_a = [_bins(features[feature], ring.bits)[binning] for features in features_a]
            sample_b = [_bins(features[feature], ring.bits)[binning] for features in features_b]
            p_value = homogeneity_p_value(sample_a, sample_b)
            if p_value < worst[0]:
                worst = (p_value, f"feature {feature} ({name})")
    assert worst[0] > THRESHOLD / tests, (
        f"{context}: view depends on the secret: p = {worst[0]:.3g} at {worst[1]}"
    )


def _plain(impl: Implementation, ring: Ring, values: list[int]) -> Any:
    return impl.plain(ring, values, (len(values),))


def _deal_then(
    operate: Callable[[Implementation, PartyContext, Any, Any], None],
) -> ViewProgram:
    """P3 deals x and y; P0..P2 receive them and run ``operate``; views come from transcripts."""

    def build(impl: Implementation, ring: Ring, secret: Secret) -> Callable[[PartyContext], list[int]]:
        x_values, y_values = secret

        def program(ctx: PartyContext) -> list[int]:
            if ctx.party == DATA_HOLDER:
                impl.sharing.deal_input(ctx, ring, _plain(impl, ring, x_values), (len(x_values),))
                impl.sharing.deal_input(ctx, ring, _plain(impl, ring, y_values), (len(y_values),))
                operate(impl, ctx, None, None)
                return []
            x = impl.sharing.receive_input(ctx, ring, DATA_HOLDER, (len(x_values),))
            y = impl.sharing.receive_input(ctx, ring, DATA_HOLDER, (len(y_values),))
            operate(impl, ctx, x, y)
            return []

        return program

    return build


def _share_by_p0(impl: Implementation, ring: Ring, secret: Secret) -> Callable[[PartyContext], list[int]]:
    values = secret[0]

    def program(ctx: PartyContext) -> list[int]:
        plain = _plain(impl, ring, values) if ctx.party == 0 else None
        share = impl.sharing.share_input(ctx, ring, 0, plain, (len(values),))
        first, second = impl.parts(share)
        return first + second

    return program


def _mul(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> None:
    if x is not None:
        impl.arithmetic.mul(ctx, x, y)


def _truncate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> None:
    if x is not None:
        impl.arithmetic.truncate(ctx, x, ctx.profile.fractional_bits)


def _mul_truncate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> None:
    if x is not None:
        impl.arithmetic.mul_truncate(ctx, x, y, ctx.profile.fractional_bits)


def _reveal_to(receiver: int) -> Callable[[Implementation, PartyContext, Any, Any], None]:
    def operate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> None:
        if x is not None:
            impl.sharing.reveal_to(ctx, x, receiver)
        elif receiver == ctx.party:
            impl.sharing.receive_revealed(ctx, ctx.ring, (1,))

    return operate


def _secrets(profile: str) -> tuple[Secret, Secret]:
    """Two fixed-point secrets whose top, middle and low four bits all differ.

    Raw encodings: x = 3077 (about 1.5 in paper), y = -4613 against x = -614521,
    y = 14599 (small values, well inside both profiles' safe ranges).
    """
    modulus = get_profile(profile).ring.modulus
    first = ([3077 % modulus], [-4613 % modulus])
    second = ([-614521 % modulus], [14599 % modulus])
    return first, second


CASES: dict[str, tuple[ViewProgram, int, tuple[int, ...]]] = {
    # name: (program, parties, observers)
    "share_input": (_share_by_p0, 3, (1, 2)),
    "mul": (_deal_then(_mul), 4, (0, 1, 2)),
    "truncate": (_deal_then(_truncate), 4, (0, 1, 2)),
    "mul_truncate": (_deal_then(_mul_truncate), 4, (0, 1, 2)),
    "reveal_to_1": (_deal_then(_reveal_to(1)), 4, (0, 2)),
    "reveal_to_3": (_deal_then(_reveal_to(3)), 4, (0, 1, 2)),
}


def _masked_opening(ring: Ring, operation: str, view: View) -> int:
    """A = z - B as P0 forms it from its view (deal pairs of x and y, then the openings)."""
    modulus = ring.modulus
    if operation == "truncate":
        x0, x1, opening = view[0], view[1], view[4]
        return (x0 + x1 + opening) % modulus
    x0, x1, y0, y1, from_1, from_2 = view[:6]
    product = x0 * y0 + x0 * y1 + x1 * y0
    return (product + from_1 + from_2) % modulus


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", sorted(CASES))
def test_view_independent_of_secret(operation: str, impl_name: str, profile: str) -> None:
    """Each observer's view has the same distribution for two different secrets."""
    impl = implementation(impl_name)
    program, parties, observers = CASES[operation]
    ring = get_profile(profile).ring
    secret_a, secret_b = _secrets(profile)
    views_a = _views(impl, profile, operation, program, secret_a, 0, parties)
    views_b = _views(impl, profile, operation, program, secret_b, 1, parties)
    for party in observers:
        _assert_independent(
            ring, [views[party] for views in views_a], [views[party] for views in views_b], f"P{party}"
        )
    if operation.startswith("reveal_to"):
        receiver = int(operation.rsplit("_", 1)[1])
        for party in observers:
            assert len(views_a[0][party]) == 4, f"P{party} received more than its dealt shares"
        if receiver < 3:
            assert len(views_a[0][receiver]) == 5, "the receiver gets exactly the missing component"
    if operation in ("truncate", "mul_truncate"):
        for views in (views_a, views_b):
            openings = [_masked_opening(ring, operation, run[0]) for run in views]
            for binning in range(len(BINNINGS)):
                sample = [_bins(value, ring.bits)[binning] for value in openings]
                p_value = uniformity_p_value(sample, NIBBLE)
                assert p_value > THRESHOLD / (2 * len(BINNINGS)), (
                    f"A = z - B does not look uniform: p = {p_value:.3g}"
                )
