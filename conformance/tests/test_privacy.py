"""Privacy sanity: a party's whole view does not depend on the secret, and every mask masks.

**Views (spec §13.2).** A computing party's view is everything it holds at the end: its
output shares, every ring element it received (its dealt input shares included) and its own
inputs; it is rebuilt from the run's output and from the other parties' transcript entries
addressed to it (the 32-byte key-setup message is left out: it is independent of any secret
by construction, and :func:`test_component_keys_are_distinct` checks it separately). For two
different secrets, each run over :data:`RUNS` fixed seeds (distinct seed lists, so the two
samples are independent), the view's elements e_1..e_n and their simple linear combinations
(every e_j, every e_j + e_k and e_j - e_k, every e_j + e_k + e_m) are binned by their top,
middle and low four bits, and a chi-square homogeneity test compares the two secrets'
distributions of every (combination, binning).

**White-box masks.** Every masked message of the spec is also checked from the inside: the
test knows every party's shares, so it computes the value the sender masks (its local product
t_i, its component x_i, the shifted opening A', the dealt secret) and checks that the message
minus that value is uniform (chi-square goodness of fit of its top, middle and low four bits,
for each secret): a zero-sharing, PRSS or truncation mask that is missing, zero, reused or
drawn from a stream that repeats shows up as a constant or even difference.

A leak that a party could read with a ±1 combination of at most three view elements, or a
mask that does not mask, gives p-values far below 10^-50; correct protocols give
uniform-looking views. The threshold is p > 10^-4 for the whole family of tests of one
property, Bonferroni-corrected, so the deterministic seed lists keep the test stable. For
truncation, P0's masked opening A = z - B must in addition look uniform (goodness of fit,
same threshold). The mutant catalogue (:mod:`conformance.mutants`) removes each mask in turn
and checks that these tests fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import DATA_HOLDER
from conformance.statistics import homogeneity_p_value, uniformity_p_value
from conformance.strategies import PROFILE_NAMES
from refimpl.ring import Ring, get_profile, to_signed
from refimpl.transport import COMPUTING_PARTIES, PartyContext, decode_elements

RUNS = 400
THRESHOLD = 1e-4
NIBBLE = 16
KEY_SETUP = "key-setup"

View = list[int]
Secret = tuple[list[int], list[int]]
"""Two secret operands (x, y); y is unused by single-operand operations."""
ViewProgram = Callable[[Implementation, Ring, Secret], Callable[[PartyContext], list[int]]]
MessageKey = tuple[int, int, str]
"""(sender, receiver, step label) of the messages of one kind in a run."""


def _seed(operation: str, secret_index: int, run: int) -> bytes:
    return f"privacy/{operation}/{secret_index}/{run}".encode()


def _messages(ring: Ring, transcripts: list[list[tuple[int, str, bytes]]]) -> dict[MessageKey, list[int]]:
    """Every message of a run as ring elements, by (sender, receiver, step), key setup left out."""
    messages: dict[MessageKey, list[int]] = {}
    for sender, transcript in enumerate(transcripts):
        for to, step, payload in transcript:
            if step != KEY_SETUP:
                elements = decode_elements(ring, payload, len(payload) // ring.element_bytes)
                messages.setdefault((sender, to, step), []).extend(elements)
    return messages


def _received(messages: dict[MessageKey, list[int]], party: int) -> list[int]:
    """Every ring element ``party`` received: the data holder's messages first, then P0..P2's."""
    elements: list[int] = []
    keys = sorted(messages, key=lambda key: (key[0] != DATA_HOLDER, key[0]))
    for sender, receiver, step in keys:
        if receiver == party:
            elements += messages[sender, receiver, step]
    return elements


@dataclass(frozen=True)
class Run:
    """One run: the ring, the secret, every message, and each computing party's whole view."""

    ring: Ring
    fractional_bits: int
    secret: Secret
    messages: dict[MessageKey, list[int]]
    views: list[View]

    def message(self, key: MessageKey) -> list[int]:
        """The elements sent under ``key``; a missing message fails the test."""
        assert key in self.messages, f"no message P{key[0]} -> P{key[1]} at step {key[2]!r}"
        return self.messages[key]

    def dealt(self, operand: int) -> list[int]:
        """The components (x_0, x_1, x_2) of dealt operand 0 (x) or 1 (y), one element each."""
        return [self.message((DATA_HOLDER, party, "deal"))[2 * operand] for party in range(COMPUTING_PARTIES)]


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


def _runs(
    impl: Implementation,
    profile: str,
    operation: str,
    program: ViewProgram,
    secret: Secret,
    index: int,
    parties: int,
) -> list[Run]:
    """Every run of one secret, with each computing party's view (outputs, then received elements)."""
    ring, fractional_bits = get_profile(profile).ring, get_profile(profile).fractional_bits
    runs = []
    for run in range(RUNS):
        result = impl.run(
            program(impl, ring, secret), profile=profile, seed=_seed(operation, index, run), parties=parties
        )
        messages = _messages(ring, [list(stats.transcript) for stats in result.stats])
        views = [
            list(result.outputs[party]) + _received(messages, party) for party in range(COMPUTING_PARTIES)
        ]
        runs.append(Run(ring, fractional_bits, secret, messages, views))
    return runs


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


def _assert_uniform(ring: Ring, samples: list[list[int]], tests: int, context: str) -> None:
    """Every column of ``samples`` (one row per run) looks uniform in its top, middle and low nibbles."""
    for column in range(len(samples[0])):
        for binning, name in enumerate(BINNINGS):
            sample = [_bins(row[column], ring.bits)[binning] for row in samples]
            p_value = uniformity_p_value(sample, NIBBLE)
            assert p_value > THRESHOLD / tests, (
                f"{context}, element {column} ({name}): not uniform, p = {p_value:.3g}"
            )


def _plain(impl: Implementation, ring: Ring, values: list[int]) -> Any:
    return impl.plain(ring, values, (len(values),))


Operate = Callable[[Implementation, PartyContext, Any, Any], list[int]]
"""A computing party's step on dealt x and y (``None`` at the data holder); returns its output shares."""


def _deal_then(operate: Operate, operands: int = 2) -> ViewProgram:
    """P3 deals x (and y); P0..P2 receive them and run ``operate``, returning their outputs."""

    def build(impl: Implementation, ring: Ring, secret: Secret) -> Callable[[PartyContext], list[int]]:
        values = secret[:operands]

        def program(ctx: PartyContext) -> list[int]:
            if ctx.party == DATA_HOLDER:
                for operand in values:
                    impl.sharing.deal_input(ctx, ring, _plain(impl, ring, operand), (len(operand),))
                return operate(impl, ctx, None, None)
            shares = [
                impl.sharing.receive_input(ctx, ring, DATA_HOLDER, (len(operand),)) for operand in values
            ]
            return operate(impl, ctx, shares[0], shares[-1])

        return program

    return build


def _parts(impl: Implementation, share: Any) -> list[int]:
    first, second = impl.parts(share)
    return first + second


def _share_by_p0(impl: Implementation, ring: Ring, secret: Secret) -> Callable[[PartyContext], list[int]]:
    values = secret[0]

    def program(ctx: PartyContext) -> list[int]:
        plain = _plain(impl, ring, values) if ctx.party == 0 else None
        return _parts(impl, impl.sharing.share_input(ctx, ring, 0, plain, (len(values),)))

    return program


def _received_shares(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> list[int]:
    return [] if x is None else _parts(impl, x)


def _mul(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> list[int]:
    return [] if x is None else _parts(impl, impl.arithmetic.mul(ctx, x, y))


def _truncate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> list[int]:
    if x is None:
        return []
    return _parts(impl, impl.arithmetic.truncate(ctx, x, ctx.profile.fractional_bits))


def _mul_truncate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> list[int]:
    if x is None:
        return []
    return _parts(impl, impl.arithmetic.mul_truncate(ctx, x, y, ctx.profile.fractional_bits))


def _reveal_to(receiver: int) -> Operate:
    def operate(impl: Implementation, ctx: PartyContext, x: Any, y: Any) -> list[int]:
        if x is not None:
            revealed = impl.sharing.reveal_to(ctx, x, receiver)
            return [] if revealed is None else impl.flat(revealed)
        if receiver == ctx.party:
            impl.flat(impl.sharing.receive_revealed(ctx, ctx.ring, (1,)))
        return []

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


def _local_product(run: Run, party: int) -> int:
    """§5.1 step 1: t_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i from the dealt components."""
    x, y = run.dealt(0), run.dealt(1)
    following = (party + 1) % COMPUTING_PARTIES
    return (x[party] * y[party] + x[party] * y[following] + x[following] * y[party]) % run.ring.modulus


def _shifted_opening(run: Run, opening: int) -> int:
    """§5.3 step 3: A' = floor(signed(A) / 2^d), d = f."""
    return (to_signed(run.ring, [opening])[0] >> run.fractional_bits) % run.ring.modulus


def _truncation_opening(run: Run) -> int:
    """A = x_0 + x_1 + (x_2 - B), as P0 forms it (§5.3)."""
    x = run.dealt(0)
    return (x[0] + x[1] + run.message((2, 0, "trunc-open"))[0]) % run.ring.modulus


def _product_opening(run: Run) -> int:
    """A = t_0 + (t_1 - rho) + (t_2 + rho - B), as P0 forms it (§5.4)."""
    from_1, from_2 = run.message((1, 0, "trunc-open"))[0], run.message((2, 0, "trunc-open"))[0]
    return (_local_product(run, 0) + from_1 + from_2) % run.ring.modulus


Unmasked = Callable[[Run], list[int]]
"""The value a masked message carries, computed from every party's shares."""


def _input_secret(run: Run) -> list[int]:
    return list(run.secret[0])


def _deal_pair(party: int) -> Unmasked:
    """§4.2: P_i's pair (x_i, x_{i+1}) hides the secret in x_2 only."""

    def unmasked(run: Run) -> list[int]:
        return [
            run.secret[0][0] if component == 2 else 0
            for component in (party, (party + 1) % COMPUTING_PARTIES)
        ]

    return unmasked


def _product_of(party: int) -> Unmasked:
    return lambda run: [_local_product(run, party)]


def _component_of_x(party: int) -> Unmasked:
    return lambda run: [run.dealt(0)[party]]


MASKS: dict[str, dict[MessageKey, Unmasked]] = {
    "share_input": {(0, 1, "input"): _input_secret, (0, 2, "input"): _input_secret},
    "deal_input": {(DATA_HOLDER, party, "deal"): _deal_pair(party) for party in range(COMPUTING_PARTIES)},
    "mul": {
        (party, (party - 1) % COMPUTING_PARTIES, "reshare"): _product_of(party)
        for party in range(COMPUTING_PARTIES)
    },
    "truncate": {
        (2, 0, "trunc-open"): _component_of_x(2),
        (0, 1, "trunc-reshare"): lambda run: [_shifted_opening(run, _truncation_opening(run))],
    },
    "mul_truncate": {
        (1, 0, "trunc-open"): _product_of(1),
        (2, 0, "trunc-open"): _product_of(2),
        (0, 1, "trunc-reshare"): lambda run: [_shifted_opening(run, _product_opening(run))],
    },
    "reveal_to_3": {(party, 3, "reveal-to"): _component_of_x(party) for party in range(COMPUTING_PARTIES)},
}
"""Per operation, every masked message of the spec and the value it masks (§4-§5)."""

CASES: dict[str, tuple[ViewProgram, int, tuple[int, ...]]] = {
    # name: (program, parties, observers)
    "share_input": (_share_by_p0, 3, (1, 2)),
    "deal_input": (_deal_then(_received_shares, operands=1), 4, (0, 1, 2)),
    "mul": (_deal_then(_mul), 4, (0, 1, 2)),
    "truncate": (_deal_then(_truncate), 4, (0, 1, 2)),
    "mul_truncate": (_deal_then(_mul_truncate), 4, (0, 1, 2)),
    "reveal_to_1": (_deal_then(_reveal_to(1), operands=1), 4, (0, 2)),
    "reveal_to_3": (_deal_then(_reveal_to(3), operands=1), 4, (0, 1, 2)),
}

OPENINGS: dict[str, Callable[[Run], int]] = {
    "truncate": _truncation_opening,
    "mul_truncate": _product_opening,
}
"""A = z - B as P0 forms it, for the truncations."""


def _outputs(operation: str) -> int:
    """Output elements at each observer: two share components, none for a reveal to another party."""
    return 0 if operation.startswith("reveal_to") else 2


def _assert_view_lengths(operation: str, runs: list[Run], observers: tuple[int, ...]) -> None:
    """Reveals deliver nothing to the other parties; the receiver gets exactly the missing component."""
    if not operation.startswith("reveal_to"):
        return
    receiver = int(operation.rsplit("_", 1)[1])
    for party in observers:
        assert len(runs[0].views[party]) == 2, f"P{party} received more than its dealt shares"
    if receiver < COMPUTING_PARTIES:
        assert len(runs[0].views[receiver]) == 1 + 2 + 1, "the receiver gets exactly the missing component"


def _assert_masks(operation: str, runs_by_secret: list[list[Run]]) -> None:
    """White-box: every masked message minus the value it masks is uniform, for each secret."""
    masks = MASKS.get(operation, {})
    tests = sum(len(unmasked(runs_by_secret[0][0])) for unmasked in masks.values()) * len(BINNINGS) * 2
    for key, unmasked in masks.items():
        for index, runs in enumerate(runs_by_secret):
            ring = runs[0].ring
            differences = [
                [
                    (sent - value) % ring.modulus
                    for sent, value in zip(run.message(key), unmasked(run), strict=True)
                ]
                for run in runs
            ]
            context = f"P{key[0]} -> P{key[1]} {key[2]!r} minus the value it masks (secret {index})"
            _assert_uniform(ring, differences, tests, context)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", sorted(CASES))
def test_view_independent_of_secret(operation: str, impl_name: str, profile: str) -> None:
    """Each observer's whole view (outputs included) has the same distribution for two secrets."""
    impl = implementation(impl_name)
    program, parties, observers = CASES[operation]
    ring = get_profile(profile).ring
    secret_a, secret_b = _secrets(profile)
    runs_a = _runs(impl, profile, operation, program, secret_a, 0, parties)
    runs_b = _runs(impl, profile, operation, program, secret_b, 1, parties)
    for party in observers:
        views_a, views_b = [run.views[party] for run in runs_a], [run.views[party] for run in runs_b]
        assert all(len(view) >= _outputs(operation) for view in views_a), f"P{party}: outputs missing"
        _assert_independent(ring, views_a, views_b, f"P{party}")
    _assert_view_lengths(operation, runs_a, observers)
    _assert_masks(operation, [runs_a, runs_b])
    if operation in OPENINGS:
        for runs in (runs_a, runs_b):
            openings = [[OPENINGS[operation](run)] for run in runs]
            _assert_uniform(ring, openings, 2 * len(BINNINGS), "A = z - B")


@pytest.mark.parametrize("impl_name", selected_names())
def test_component_keys_are_distinct(impl_name: str) -> None:
    """§3.3: the three component keys differ, and each party holds exactly its two.

    P_i holds kappa_i and kappa_{i+1}; a key that repeated (or that every party held)
    would let one party compute a mask it must not know.
    """
    impl = implementation(impl_name)

    def program(ctx: PartyContext) -> dict[int, bytes]:
        streams = impl.randomness.party_randomness(ctx).components
        return {component: stream.key for component, stream in streams.items()}

    for run in range(20):
        keys = impl.run(program, profile="wide", seed=f"privacy/keys/{run}".encode()).outputs
        for party in range(COMPUTING_PARTIES):
            assert sorted(keys[party]) == sorted({party, (party + 1) % COMPUTING_PARTIES}), (
                f"P{party} holds {sorted(keys[party])}"
            )
        components = {component: key for held in keys for component, key in held.items()}
        for party in range(COMPUTING_PARTIES):
            for component, key in keys[party].items():
                assert key == components[component], f"kappa_{component} differs between its holders"
        assert len(set(components.values())) == COMPUTING_PARTIES, "two component keys are equal"
