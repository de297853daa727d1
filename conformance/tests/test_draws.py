"""§3.7 Labels and draw order: every protocol draws exactly the spec's labels, in order, per key.

Every PRG draw is identified by (key, counter, label) (§3.1). This test records every call
of the PRG (``prg_bytes``, in both implementations' namespaces) during one run of a
protocol, names each key (a party's own key, or the component key kappa_c) from what key
setup left in each party's context, and compares, key by key, the labels in counter order
with the sequence that §3.7's table prescribes. The counters of each key must run 0, 1, 2, ...
without a gap or a repeat: a counter that does not advance, a label reused for another
draw, a draw taken from the wrong key or in another order all fail here, even where the
shares still add up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import DATA_HOLDER
from conformance.strategies import PROFILE_NAMES
from refimpl.ring import BINARY, Profile, Ring, element_count, get_profile
from refimpl.transport import COMPUTING_PARTIES, PartyContext

COUNT = 3
"""Elements per operand: small, and more than one."""
Draw = tuple[bytes, int, str]
Expected = dict[str, list[str]]
"""Per key name ("own P0".."own P3", "kappa_0".."kappa_2"): the labels in counter order."""
Operation = Callable[[Implementation, PartyContext, Profile], None]


class Recorder:
    """A stand-in for ``prg_bytes`` that records (key, counter, label) and then draws."""

    def __init__(self, draw: Callable[[bytes, int, str, int], bytes]) -> None:
        self.draw = draw
        self.draws: list[Draw] = []

    def __call__(self, key: bytes, counter: int, label: str, length: int) -> bytes:
        self.draws.append((key, counter, label))
        return self.draw(key, counter, label, length)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    import fast.randomness
    import refimpl.randomness

    recording = Recorder(refimpl.randomness.prg_bytes)
    monkeypatch.setattr(refimpl.randomness, "prg_bytes", recording)
    monkeypatch.setattr(fast.randomness, "prg_bytes", recording)
    return recording


def _operand(impl: Implementation, ctx: PartyContext, ring: Ring, shape: tuple[int, ...]) -> Any:
    """A fixed consistent sharing: component c of element e is (7c + e) mod the modulus."""
    count = element_count(shape)
    components = [
        [(7 * component + element) % ring.modulus for element in range(count)]
        for component in range(COMPUTING_PARTIES)
    ]
    return impl.make_share(
        ring, shape, components[ctx.party], components[(ctx.party + 1) % COMPUTING_PARTIES]
    )


def _computing(operation: Operation) -> Operation:
    """Run ``operation`` at P0..P2 only."""

    def run(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
        if ctx.party < COMPUTING_PARTIES:
            operation(impl, ctx, profile)

    return run


def _prss(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.randomness.prss_share(ctx, profile.ring, (COUNT,))


def _zero(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.randomness.zero_share(ctx, profile.ring, COUNT)


def _input(owner: int) -> Operation:
    def run(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
        values = impl.plain(profile.ring, [5] * COUNT, (COUNT,)) if ctx.party == owner else None
        impl.sharing.share_input(ctx, profile.ring, owner, values, (COUNT,))

    return run


def _deal(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    if ctx.party == DATA_HOLDER:
        impl.sharing.deal_input(ctx, profile.ring, impl.plain(profile.ring, [5] * COUNT, (COUNT,)), (COUNT,))
    else:
        impl.sharing.receive_input(ctx, profile.ring, DATA_HOLDER, (COUNT,))


def _mul(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    x = _operand(impl, ctx, profile.ring, (COUNT,))
    impl.arithmetic.mul(ctx, x, x)


def _matmul(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.arithmetic.matmul(
        ctx, _operand(impl, ctx, profile.ring, (2, 3)), _operand(impl, ctx, profile.ring, (3, 2))
    )


def _truncate(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.arithmetic.truncate(ctx, _operand(impl, ctx, profile.ring, (COUNT,)), profile.fractional_bits)


def _mul_truncate(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    x = _operand(impl, ctx, profile.ring, (COUNT,))
    impl.arithmetic.mul_truncate(ctx, x, x, profile.fractional_bits)


def _matmul_truncate(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    x, y = _operand(impl, ctx, profile.ring, (2, 3)), _operand(impl, ctx, profile.ring, (3, 2))
    impl.arithmetic.matmul_truncate(ctx, x, y, profile.fractional_bits)


def _reveals(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    x = _operand(impl, ctx, profile.ring, (COUNT,))
    impl.sharing.reveal(ctx, x)
    impl.sharing.reveal_checked(ctx, x)
    impl.sharing.reveal_to(ctx, x, 1)


def _reveal_outside(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    if ctx.party == DATA_HOLDER:
        impl.sharing.receive_revealed(ctx, profile.ring, (COUNT,))
    else:
        impl.sharing.reveal_to(ctx, _operand(impl, ctx, profile.ring, (COUNT,)), DATA_HOLDER)


def _lift(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.preprocessing.lift_bits(ctx, _operand(impl, ctx, BINARY, (COUNT,)), profile.ring)


def _material(impl: Implementation, ctx: PartyContext, profile: Profile) -> None:
    impl.preprocessing.generate_comparison_material(ctx, profile, COUNT)


def _each(label: str) -> Expected:
    return {f"kappa_{component}": [label] for component in range(COMPUTING_PARTIES)}


def _input_labels(owner: int) -> Expected:
    return {f"kappa_{owner}": ["input"], f"kappa_{(owner + 1) % 3}": ["input"]}


def _lift_labels() -> Expected:
    """§3.7: as share_input with owner P0, then as mul."""
    return {"kappa_0": ["input", "zero"], "kappa_1": ["input", "zero"], "kappa_2": ["zero"]}


def _material_labels(profile: Profile) -> Expected:
    """§3.7: prss; mask_bits (k + 1 zero-sharings); prss in Z2; two liftings; mul in Zp; kappa_1's masks."""
    start = ["prss"] + ["zero"] * (profile.comparison_bits + 1) + ["prss"]
    lifts = _lift_labels()
    labels = {name: start + lifts[name] + lifts[name] + ["zero"] for name in lifts}
    labels["kappa_1"] += ["cmp-multiplier", "cmp-blind", "cmp-rotation"]
    return labels


CASES: dict[str, tuple[Operation, int, Callable[[Profile], Expected]]] = {
    # name: (operation, parties, expected labels beyond key setup)
    "prss_share": (_computing(_prss), 3, lambda profile: _each("prss")),
    "zero_share": (_computing(_zero), 3, lambda profile: _each("zero")),
    "share_input_0": (_input(0), 3, lambda profile: _input_labels(0)),
    "share_input_1": (_input(1), 3, lambda profile: _input_labels(1)),
    "share_input_2": (_input(2), 3, lambda profile: _input_labels(2)),
    "deal_input": (_deal, 4, lambda profile: {"own P3": ["deal", "deal"]}),
    "mul": (_computing(_mul), 3, lambda profile: _each("zero")),
    "matmul": (_computing(_matmul), 3, lambda profile: _each("zero")),
    "truncate": (
        _computing(_truncate),
        3,
        lambda profile: {"kappa_2": ["trunc-mask"], "kappa_0": ["trunc-gamma"]},
    ),
    "mul_truncate": (
        _computing(_mul_truncate),
        3,
        lambda profile: {"kappa_2": ["trunc-mask", "trunc-rho"], "kappa_0": ["trunc-gamma"]},
    ),
    "matmul_truncate": (
        _computing(_matmul_truncate),
        3,
        lambda profile: {"kappa_2": ["trunc-mask", "trunc-rho"], "kappa_0": ["trunc-gamma"]},
    ),
    "reveal_reveal_checked_reveal_to": (_computing(_reveals), 3, lambda profile: {}),
    "reveal_to_outside": (_reveal_outside, 4, lambda profile: _each("zero")),
    "lift_bits": (_computing(_lift), 3, lambda profile: _lift_labels()),
    "generate_comparison_material": (_computing(_material), 3, _material_labels),
}


def _key_names(keys: list[tuple[bytes, dict[int, bytes]]]) -> dict[bytes, str]:
    names = {}
    for party, (own, components) in enumerate(keys):
        names[own] = f"own P{party}"
        for component, key in components.items():
            names[key] = f"kappa_{component}"
    return names


def _labels_per_key(draws: list[Draw], names: dict[bytes, str]) -> dict[str, list[str]]:
    """Per key name: the labels in counter order; two holders of a key must agree draw by draw."""
    per_key: dict[str, dict[int, str]] = {}
    for key, counter, label in draws:
        assert key in names, "a draw from a key that key setup did not make"
        seen = per_key.setdefault(names[key], {})
        assert seen.get(counter, label) == label, (
            f"{names[key]} draw {counter}: {seen[counter]!r} and {label!r}"
        )
        seen[counter] = label
    labels = {}
    for name, by_counter in per_key.items():
        assert sorted(by_counter) == list(range(len(by_counter))), f"{name}: counters {sorted(by_counter)}"
        labels[name] = [by_counter[counter] for counter in range(len(by_counter))]
    return labels


@pytest.mark.parametrize("profile_name", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("case", sorted(CASES))
def test_draws_follow_the_label_table(
    case: str, impl_name: str, profile_name: str, recorder: Recorder
) -> None:
    """Key by key, the labels in counter order are §3.7's, after key setup's "component-key"."""
    impl = implementation(impl_name)
    profile = get_profile(profile_name)
    operation, parties, expected_labels = CASES[case]

    def program(ctx: PartyContext) -> tuple[bytes, dict[int, bytes]]:
        operation(impl, ctx, profile)
        randomness = impl.randomness.party_randomness(ctx)
        return randomness.own.key, {
            component: stream.key for component, stream in randomness.components.items()
        }

    result = impl.run(program, profile=profile_name, seed=f"draws/{case}".encode(), parties=parties)
    labels = _labels_per_key(recorder.draws, _key_names(list(result.outputs)))
    expected = {f"own P{party}": ["component-key"] for party in range(COMPUTING_PARTIES)}
    expected.update(expected_labels(profile))
    for name in list(expected):
        if not expected[name]:
            del expected[name]
    assert labels == expected
