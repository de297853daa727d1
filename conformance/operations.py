"""Every protocol operation as a :class:`Case` that runs on any implementation.

A :class:`Case` holds an operation's inputs in refimpl's plain language (flat lists of
``int``, shapes beside them); secret operands are given directly as the three parties'
replicated shares ``[(first, second) for P0, P1, P2]``, so an operation is tested on its
own. :func:`run_case` runs a case on an :class:`~conformance.harness.Implementation` with a
pinned seed and records an :class:`Outcome`: every party's output shares or values, and
every party's transcript hash, bytes, messages and rounds. The same cases feed the
hypothesis properties (``conformance/tests``) and the known-answer vectors
(:mod:`conformance.vectors`); :func:`plain_result` is the plaintext model of the exact
operations.

Operations of chapters 6 to 8 that consume comparison material (DReLU, ReLU, compare,
maximum, argmax, the exponential and softmax) first generate exactly the material they need
(§6.4, ``generate_comparison_pool``; ``Case.material`` overrides the count for negative
tests); the outcome records that offline phase and the operation itself as two
:class:`Segment` s of cost. :func:`run_cases` runs several cases one after another in one
run with one shared pool, so that a property can exercise many operations per offline
phase. :func:`comparison_cost` and :func:`material_cost` state the online and offline
costs, derived from the protocols' messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from conformance.harness import Implementation, PlainValueError
from refimpl.ring import (
    BINARY,
    Profile,
    Ring,
    arithmetic_ring,
    decode_fixed,
    element_count,
    get_profile,
    prime_field,
    to_signed,
)
from refimpl.transport import PartyContext, encoded_length

COMPUTING_PARTIES = 3
DATA_HOLDER = 3
"""The party id of the data holder / outside receiver in four-party runs."""
WIRE_STEP = "wire-test"
"""The step label of the :data:`recv_elements` wire-format cases."""

Pair = tuple[list[int], list[int]]
"""One party's replicated share (first, second) as flat lists."""
PartyShares = list[Pair]
"""The shares of P0, P1, P2: P_i holds (x_i, x_{i+1})."""


def ring_named(profile_name: str, ring_name: str) -> Ring:
    """The ring called ``ring_name`` ("Z2^32", "Z2^64", "Zp" or "Z2") under a profile."""
    profile = get_profile(profile_name)
    if ring_name == "Zp":
        return prime_field(profile.prime)
    if ring_name == "Z2":
        return BINARY
    if ring_name.startswith("Z2^"):
        return arithmetic_ring(int(ring_name[3:]))
    raise ValueError(f"unknown ring {ring_name!r}")


def replicate(components: Sequence[Sequence[int]]) -> PartyShares:
    """From additive components (x_0, x_1, x_2) to the parties' pairs (x_i, x_{i+1})."""
    if len(components) != COMPUTING_PARTIES:
        raise ValueError("three components expected")
    return [
        (list(components[party]), list(components[(party + 1) % COMPUTING_PARTIES]))
        for party in range(COMPUTING_PARTIES)
    ]


def reconstruct(ring: Ring, shares: Sequence[Pair]) -> list[int]:
    """x = x_0 + x_1 + x_2 from the parties' first components."""
    return [sum(parts) % ring.modulus for parts in zip(*(first for first, _ in shares), strict=True)]


def is_consistent(shares: Sequence[Pair]) -> bool:
    """True when P_i's second component equals P_{i+1}'s first, for every i."""
    return all(
        shares[party][1] == shares[(party + 1) % COMPUTING_PARTIES][0] for party in range(COMPUTING_PARTIES)
    )


@dataclass(frozen=True)
class Case:
    """One operation with its inputs; only the fields the operation reads matter."""

    operation: str
    profile: str
    ring: str
    shape: tuple[int, ...] = (1,)
    x: PartyShares | None = None
    y: PartyShares | None = None
    y_shape: tuple[int, ...] | None = None
    values: list[int] | None = None
    constant: int | list[int] | None = None
    owner: int = 0
    receiver: int = 0
    bits: int = 0
    count: int = 0
    reals: list[float] | None = None
    payload: bytes | None = None
    target: str | None = None
    bit: PartyShares | None = None
    material: int | None = None
    upper: float | None = None
    tamper: int = 0
    checked: bool = False

    @property
    def ring_object(self) -> Ring:
        return ring_named(self.profile, self.ring)

    @property
    def profile_object(self) -> Profile:
        return get_profile(self.profile)


@dataclass(frozen=True)
class Outcome:
    """What a run produced, in refimpl's plain language, for every party."""

    shares: PartyShares | None = None
    output: list[int] | None = None
    real_output: list[float] | None = None
    party_outputs: list[list[int] | None] | None = None
    transcript_hashes: list[str] | None = None
    bytes_sent: list[int] | None = None
    messages_sent: list[int] | None = None
    bytes_received: list[int] | None = None
    party_rounds: list[int] | None = None
    rounds: int | None = None
    transcripts: list[list[tuple[int, str, bytes]]] = field(default_factory=list)
    named_shares: dict[str, PartyShares] | None = None
    named_values: dict[str, list[list[int] | None]] | None = None
    offline: Segment | None = None
    online: Segment | None = None


@dataclass(frozen=True)
class Segment:
    """What one part of a run cost: bytes and messages each party sent, and the rounds it added.

    ``rounds`` is the largest round count over the parties at the segment's end minus the
    largest at its start (§12.3: a message's depth is one more than the largest depth its
    sender has received).
    """

    bytes_sent: list[int]
    messages_sent: list[int]
    rounds: int


@dataclass(frozen=True)
class PartyResult:
    """One party's result: output shares (a computing party) and/or a plain value.

    ``named`` holds further output shares (a ReLU's derivative, comparison material) and
    ``named_values`` further plain values (private-compare masks) by name.
    """

    share: Pair | None = None
    value: list[int] | None = None
    named: dict[str, Pair] = field(default_factory=dict)
    named_values: dict[str, list[int]] = field(default_factory=dict)


PartyProgram = Callable[[Implementation, Case, PartyContext], PartyResult]
PooledProgram = Callable[[Implementation, Case, PartyContext, Any], PartyResult]
"""A program that consumes comparison material from a pool (§6.4) generated before it runs."""


@dataclass(frozen=True)
class Operation:
    """How to run one operation: its spec anchor, its party count and its party program.

    An operation with a ``pooled`` program consumes ``material(case)`` elements of comparison
    material: the run generates that pool first (the offline phase, §6.4), then runs it.
    """

    name: str
    anchor: str
    program: PartyProgram | None
    four_parties: Callable[[Case], bool] = lambda case: False
    shares_out: bool = True
    pooled: PooledProgram | None = None
    material: Callable[[Case], int] | None = None


def _share(
    impl: Implementation, case: Case, operand: PartyShares | None, shape: tuple[int, ...], party: int
) -> Any:
    if operand is None:
        raise ValueError(f"{case.operation} needs this operand")
    first, second = operand[party]
    return impl.make_share(case.ring_object, shape, first, second)


def _x(impl: Implementation, case: Case, ctx: PartyContext) -> Any:
    return _share(impl, case, case.x, case.shape, ctx.party)


def _y(impl: Implementation, case: Case, ctx: PartyContext) -> Any:
    return _share(impl, case, case.y, case.y_shape if case.y_shape is not None else case.shape, ctx.party)


def output_shape(case: Case) -> tuple[int, ...]:
    """The shape of a case's output (shares or revealed values)."""
    if case.operation in ("matmul", "matmul_truncate"):
        assert case.y_shape is not None
        return (case.shape[0], case.y_shape[1])
    if case.operation in ("zero_share", "recv_elements", "generate_comparison_material"):
        return (case.count,)
    if case.operation == "mask_bits":
        return (element_count(case.shape), case.bits)
    if case.operation == "compare_vector":
        return (len(case.values or []), case.profile_object.comparison_bits + 1)
    if case.operation == "sign_bits":
        return (element_count(case.shape),)
    if case.operation in ("maximum", "max_and_argmax"):
        return tuple(case.shape[:-1])
    return tuple(case.shape)


def output_ring(case: Case) -> Ring:
    """The ring of a case's output: the input ring, except for conversions and material."""
    profile = case.profile_object
    if case.operation in ("lift_bits", "bit_to_ring"):
        assert case.target is not None
        return ring_named(case.profile, case.target)
    if case.operation in ("mask_bits", "sign_bits"):
        return BINARY
    if case.operation == "compare_vector":
        return profile.field
    if case.operation in COMPARISON_OPERATIONS:
        return profile.ring
    return case.ring_object


def _checked_share(impl: Implementation, share: Any, ring: Ring, shape: tuple[int, ...]) -> Pair:
    """A share's two components, after checking its ring, shape and plain-value types."""
    if share.ring != ring or tuple(share.shape) != tuple(shape):
        raise PlainValueError(
            f"{impl.name}: a share of {share.ring.name} {share.shape}, expected {ring.name} {shape}"
        )
    impl.check_plain(ring, share.first, shape)
    impl.check_plain(ring, share.second, shape)
    return impl.parts(share)


def _out(impl: Implementation, case: Case, share: Any, **named: Pair) -> PartyResult:
    """A party's output share, after checking its ring, shape and plain-value types."""
    return PartyResult(share=_checked_share(impl, share, output_ring(case), output_shape(case)), named=named)


def _value(impl: Implementation, case: Case, value: Any) -> PartyResult:
    """A party's plain output (or ``None``), after checking its plain-value type and shape."""
    if value is None:
        return PartyResult()
    impl.check_plain(output_ring(case), value, output_shape(case))
    return PartyResult(value=impl.flat(value))


def _constant(impl: Implementation, case: Case) -> Any:
    if isinstance(case.constant, int):
        return case.constant
    if case.constant is None:
        raise ValueError(f"{case.operation} needs a public constant")
    return impl.plain(case.ring_object, case.constant, case.shape)


def _share_input(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    ring = case.ring_object
    values = impl.plain(ring, case.values or [], case.shape) if ctx.party == case.owner else None
    return _out(impl, case, impl.sharing.share_input(ctx, ring, case.owner, values, case.shape))


def _deal_input(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    ring = case.ring_object
    if ctx.party == DATA_HOLDER:
        impl.sharing.deal_input(ctx, ring, impl.plain(ring, case.values or [], case.shape), case.shape)
        return PartyResult()
    return _out(impl, case, impl.sharing.receive_input(ctx, ring, DATA_HOLDER, case.shape))


def _reveal(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _value(impl, case, impl.sharing.reveal(ctx, _x(impl, case, ctx)))


def _reveal_to(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    if ctx.party >= COMPUTING_PARTIES:
        return _value(impl, case, impl.sharing.receive_revealed(ctx, case.ring_object, case.shape))
    return _value(impl, case, impl.sharing.reveal_to(ctx, _x(impl, case, ctx), case.receiver))


def _reveal_checked(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _value(impl, case, impl.sharing.reveal_checked(ctx, _x(impl, case, ctx)))


def _add(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.sharing.add(_x(impl, case, ctx), _y(impl, case, ctx)))


def _sub(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.sharing.sub(_x(impl, case, ctx), _y(impl, case, ctx)))


def _neg(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.sharing.neg(_x(impl, case, ctx)))


def _add_public(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.sharing.add_public(ctx, _x(impl, case, ctx), _constant(impl, case)))


def _mul_public(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.sharing.mul_public(_x(impl, case, ctx), _constant(impl, case)))


def _mul(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.arithmetic.mul(ctx, _x(impl, case, ctx), _y(impl, case, ctx)))


def _matmul(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.arithmetic.matmul(ctx, _x(impl, case, ctx), _y(impl, case, ctx)))


def _truncate(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.arithmetic.truncate(ctx, _x(impl, case, ctx), case.bits))


def _mul_truncate(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(
        impl, case, impl.arithmetic.mul_truncate(ctx, _x(impl, case, ctx), _y(impl, case, ctx), case.bits)
    )


def _matmul_truncate(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    x, y = _x(impl, case, ctx), _y(impl, case, ctx)
    return _out(impl, case, impl.arithmetic.matmul_truncate(ctx, x, y, case.bits))


def _prss_share(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _out(impl, case, impl.randomness.prss_share(ctx, case.ring_object, case.shape))


def _zero_share(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    return _value(impl, case, impl.randomness.zero_share(ctx, case.ring_object, case.count))


def _recv_elements(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    if ctx.party == 0:
        ctx.send(1, WIRE_STEP, case.payload or b"")
        return PartyResult()
    if ctx.party == 1:
        return _value(
            impl, case, impl.transport.recv_elements(ctx, 0, WIRE_STEP, case.ring_object, case.count)
        )
    return PartyResult()


# --- §6 preprocessing, §7 comparison and §8 non-linear operations ---------------------------


def _shares_in(impl: Implementation, case: Case, operand: PartyShares | None, ctx: PartyContext) -> Any:
    """An operand of a comparison or non-linear operation, a sharing in the profile's ring Z_2^l."""
    if operand is None:
        raise ValueError(f"{case.operation} needs this operand")
    first, second = operand[ctx.party]
    return impl.make_share(case.profile_object.ring, case.shape, first, second)


def _result(impl: Implementation, case: Case, ctx: PartyContext, share: Any, **named: Pair) -> PartyResult:
    """The output share, or with ``case.checked`` the value that §4.5 checked reveal opens."""
    if case.checked:
        return _value(impl, case, impl.sharing.reveal_checked(ctx, share))
    return _out(impl, case, share, **named)


class TamperingContext:
    """A :class:`PartyContext` whose messages with one step label are cut or padded.

    ``delta`` bytes are removed (``delta < 0``) from or zero bytes appended to every payload
    the party sends with ``step``; everything else is delegated to the real context.
    """

    def __init__(self, ctx: PartyContext, step: str, delta: int) -> None:
        self._ctx = ctx
        self._step = step
        self._delta = delta

    def send(self, to: int, step: str, payload: bytes) -> None:
        if step == self._step:
            delta = self._delta
            payload = payload[: len(payload) + delta] if delta < 0 else payload + bytes(delta)
        self._ctx.send(to, step, payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


TAMPERED_STEP = "cmp-compare"
"""The step whose messages P0 cuts or pads when ``Case.tamper`` is not zero (§7.2 step 2)."""
TAMPERING_PARTY = 0


def _lift_bits(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    x = _x(impl, case, ctx)
    target = output_ring(case)
    if case.operation == "bit_to_ring":
        return _out(impl, case, impl.comparison.bit_to_ring(ctx, x, target))
    return _out(impl, case, impl.preprocessing.lift_bits(ctx, x, target))


def _mask_bits(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    """mask_bits of the given sharing, or (no ``x``) of a fresh PRSS mask, returned as ``mask``."""
    ring = case.profile_object.ring
    if case.x is None:
        mask = impl.randomness.prss_share(ctx, ring, case.shape)
    else:
        mask = _shares_in(impl, case, case.x, ctx)
    bits = impl.preprocessing.mask_bits(ctx, mask, case.bits)
    return _out(impl, case, bits, mask=_checked_share(impl, mask, ring, case.shape))


MATERIAL_SHARES = ("mask", "mask_bits", "flip", "flipped_bits", "top")
MATERIAL_VALUES = ("multipliers", "blinding", "rotations")


def material_layout(profile: Profile, count: int) -> dict[str, tuple[Ring, tuple[int, ...]]]:
    """Ring and shape of each sharing of §6.2 comparison material for ``count`` elements."""
    k = profile.comparison_bits
    return {
        "mask": (profile.ring, (count,)),
        "mask_bits": (profile.field, (count, k)),
        "flip": (profile.field, (count,)),
        "flipped_bits": (profile.field, (count, k)),
        "top": (profile.ring, (count,)),
    }


def material_result(impl: Implementation, profile: Profile, material: Any) -> PartyResult:
    """Every sharing and mask of a ComparisonMaterial, checked for rings, shapes and types."""
    count = material.count
    if material.bits != profile.comparison_bits:
        raise PlainValueError(
            f"{impl.name}: material for k = {material.bits}, expected {profile.comparison_bits}"
        )
    named = {
        name: _checked_share(impl, getattr(material, name), ring, shape)
        for name, (ring, shape) in material_layout(profile, count).items()
    }
    values = {name: impl.flat(getattr(material, name)) for name in MATERIAL_VALUES}
    return PartyResult(share=named["mask"], named=named, named_values=values)


def _generate_material(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    material = impl.preprocessing.generate_comparison_material(ctx, case.profile_object, case.count)
    if material.count != case.count:
        raise PlainValueError(f"{impl.name}: material for {material.count} elements, expected {case.count}")
    return material_result(impl, case.profile_object, material)


def _compare_vector(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    """P0's and P1's parts of the §7.2 vector d for public opened values c; P2 computes nothing."""
    profile = case.profile_object
    opened = list(case.values or [])
    material = pool.take(len(opened))
    named = {
        name: _checked_share(impl, getattr(material, name), ring, shape)
        for name, (ring, shape) in material_layout(profile, len(opened)).items()
        if name in ("mask", "mask_bits", "flip", "flipped_bits")
    }
    if ctx.party == 2:
        return PartyResult(named=named)
    c = impl.plain(profile.ring, opened, (len(opened),))
    vector = impl.comparison.compare_vector(ctx, c, material)
    return PartyResult(value=_value(impl, case, vector).value, named=named)


def _sign_bits(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    """The public bits v of §7.3 (all parties), with the material's top bit [r_k XOR beta]."""
    count = element_count(case.shape)
    material = pool.take(count if case.material is None else case.material)
    public, product = impl.comparison.sign_bits(ctx, _shares_in(impl, case, case.x, ctx), material, None)
    if product is not None:
        raise PlainValueError(f"{impl.name}: sign_bits returned a product without a factor")
    ring = case.profile_object.ring
    top = _checked_share(impl, material.top, ring, (count,))
    return PartyResult(value=_value(impl, case, public).value, named={"top": top})


def _drelu(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    x = _shares_in(impl, case, case.x, ctx)
    party_ctx: Any = ctx
    if case.tamper and ctx.party == TAMPERING_PARTY:
        party_ctx = TamperingContext(ctx, TAMPERED_STEP, case.tamper)
    return _result(impl, case, ctx, impl.comparison.drelu(party_ctx, x, pool))


def _relu(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    return _result(impl, case, ctx, impl.comparison.relu(ctx, _shares_in(impl, case, case.x, ctx), pool))


def _relu_and_derivative(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    value, derivative = impl.comparison.relu_and_derivative(ctx, _shares_in(impl, case, case.x, ctx), pool)
    profile = case.profile_object
    return _out(impl, case, value, derivative=_checked_share(impl, derivative, profile.ring, case.shape))


def _compare(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    x, y = _shares_in(impl, case, case.x, ctx), _shares_in(impl, case, case.y, ctx)
    return _result(impl, case, ctx, impl.comparison.compare(ctx, x, y, pool))


def _select_shares(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    bit = _shares_in(impl, case, case.bit, ctx)
    x, y = _shares_in(impl, case, case.x, ctx), _shares_in(impl, case, case.y, ctx)
    return _result(impl, case, ctx, impl.comparison.select_shares(ctx, bit, x, y))


def _maximum(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    return _result(impl, case, ctx, impl.comparison.maximum(ctx, _shares_in(impl, case, case.x, ctx), pool))


def _argmax(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    return _result(impl, case, ctx, impl.comparison.argmax(ctx, _shares_in(impl, case, case.x, ctx), pool))


def _max_and_argmax(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    maxima, onehot = impl.comparison.max_and_argmax(ctx, _shares_in(impl, case, case.x, ctx), pool)
    if onehot is None:
        raise PlainValueError(f"{impl.name}: max_and_argmax returned no argmax")
    profile = case.profile_object
    return _out(impl, case, maxima, argmax=_checked_share(impl, onehot, profile.ring, case.shape))


def _exp_nonpositive(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    x = _shares_in(impl, case, case.x, ctx)
    return _result(impl, case, ctx, impl.nonlinear.exp_nonpositive(ctx, x, pool))


def _reciprocal(impl: Implementation, case: Case, ctx: PartyContext) -> PartyResult:
    if case.upper is None:
        raise ValueError("reciprocal needs an upper bound")
    x = _shares_in(impl, case, case.x, ctx)
    return _result(impl, case, ctx, impl.nonlinear.reciprocal(ctx, x, case.upper))


def _softmax(impl: Implementation, case: Case, ctx: PartyContext, pool: Any) -> PartyResult:
    return _result(impl, case, ctx, impl.nonlinear.softmax(ctx, _shares_in(impl, case, case.x, ctx), pool))


def comparisons_for_max(shape: tuple[int, ...]) -> int:
    """§7.7: rows x (C - 1) elements of material (0 for a shape the operation rejects)."""
    if not shape or shape[-1] < 1:
        return 0
    return element_count(shape) // shape[-1] * (shape[-1] - 1)


def comparisons_for_softmax(shape: tuple[int, ...]) -> int:
    """§8.3: rows x (2 C - 1) elements of material (0 for a shape the operation rejects)."""
    if not shape or shape[-1] < 1:
        return 0
    return element_count(shape) // shape[-1] * (2 * shape[-1] - 1)


def _elements(case: Case) -> int:
    return element_count(case.shape)


def _opened(case: Case) -> int:
    return len(case.values or [])


def material_count(case: Case) -> int:
    """The comparison material that a run of ``case`` generates first (``Case.material`` overrides)."""
    operation = OPERATIONS[case.operation]
    if operation.material is None:
        return 0
    if case.material is not None:
        return case.material
    return operation.material(case)


def _outside_receiver(case: Case) -> bool:
    return case.receiver >= COMPUTING_PARTIES


OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in [
        Operation("share_input", "§4.1 Input by a computing party", _share_input),
        Operation("deal_input", "§4.2 Input by a data holder", _deal_input, four_parties=lambda case: True),
        Operation("reveal", "§4.3 Reveal to all", _reveal, shares_out=False),
        Operation("reveal_to", "§4.4 Reveal to one party", _reveal_to, _outside_receiver, shares_out=False),
        Operation("reveal_checked", "§4.5 Checked reveal", _reveal_checked, shares_out=False),
        Operation("add", "§4.6 Linear operations", _add),
        Operation("sub", "§4.6 Linear operations", _sub),
        Operation("neg", "§4.6 Linear operations", _neg),
        Operation("add_public", "§4.6 Linear operations", _add_public),
        Operation("mul_public", "§4.6 Linear operations", _mul_public),
        Operation("mul", "§5.1 Multiplication", _mul),
        Operation("matmul", "§5.2 Matrix multiplication", _matmul),
        Operation("truncate", "§5.3 Truncation", _truncate),
        Operation("mul_truncate", "§5.4 Truncated multiplication", _mul_truncate),
        Operation("matmul_truncate", "§5.4 Truncated multiplication", _matmul_truncate),
        Operation("prss_share", "§3.5 PRSS", _prss_share),
        Operation("zero_share", "§3.6 Zero-sharing", _zero_share, shares_out=False),
        Operation("encode_fixed", "§2.3 Fixed-point encoding", None, shares_out=False),
        Operation("recv_elements", "§12.2 Wire encoding", _recv_elements, shares_out=False),
        Operation("lift_bits", "§6.1 Bit lifting", _lift_bits),
        Operation("mask_bits", "§6.3 Bit decomposition of the mask", _mask_bits),
        Operation("generate_comparison_material", "§6.2 Comparison material", _generate_material),
        Operation(
            "compare_vector",
            "§7.2 Private compare",
            None,
            shares_out=False,
            pooled=_compare_vector,
            material=_opened,
        ),
        Operation("sign_bits", "§7.3 DReLU", None, shares_out=False, pooled=_sign_bits, material=_elements),
        Operation("drelu", "§7.3 DReLU", None, pooled=_drelu, material=_elements),
        Operation("relu", "§7.4 ReLU", None, pooled=_relu, material=_elements),
        Operation("relu_and_derivative", "§7.4 ReLU", None, pooled=_relu_and_derivative, material=_elements),
        Operation(
            "compare", "§7.5 Comparison of two shared values", None, pooled=_compare, material=_elements
        ),
        Operation("select_shares", "§7.6 Select", _select_shares),
        Operation(
            "maximum",
            "§7.7 Maximum and argmax",
            None,
            pooled=_maximum,
            material=lambda case: comparisons_for_max(case.shape),
        ),
        Operation(
            "argmax",
            "§7.7 Maximum and argmax",
            None,
            pooled=_argmax,
            material=lambda case: comparisons_for_max(case.shape),
        ),
        Operation(
            "max_and_argmax",
            "§7.7 Maximum and argmax",
            None,
            pooled=_max_and_argmax,
            material=lambda case: comparisons_for_max(case.shape),
        ),
        Operation("bit_to_ring", "§7.8 Bit conversion", _lift_bits),
        Operation("exp_nonpositive", "§8.1 Exponential", None, pooled=_exp_nonpositive, material=_elements),
        Operation("reciprocal", "§8.2 Reciprocal", _reciprocal),
        Operation(
            "softmax",
            "§8.3 Softmax",
            None,
            pooled=_softmax,
            material=lambda case: comparisons_for_softmax(case.shape),
        ),
    ]
}


def chapter(operation: str) -> int:
    """The spec chapter of an operation, from its anchor ("§7.3 DReLU" -> 7)."""
    return int(OPERATIONS[operation].anchor[1:].split(" ")[0].split(".")[0])


CORE_OPERATIONS = tuple(name for name in OPERATIONS if chapter(name) not in (6, 7, 8))
"""The operations of chapters 2 to 5 and 12."""
COMPARISON_OPERATIONS = tuple(name for name in OPERATIONS if name not in CORE_OPERATIONS)
"""The operations of chapters 6 to 8: preprocessing, comparison and non-linear approximations."""
FIXED_POINT_OPERATIONS = ("exp_nonpositive", "reciprocal", "softmax")
"""Operations on fixed-point values whose results are approximations (§8)."""


def party_count(case: Case) -> int:
    """3, or 4 when a data holder or an outside receiver (party 3) takes part."""
    return COMPUTING_PARTIES + 1 if OPERATIONS[case.operation].four_parties(case) else COMPUTING_PARTIES


def run_case(
    impl: Implementation,
    case: Case,
    seed: bytes,
    *,
    timeout_seconds: float = 30.0,
    barrier_first: bool = False,
) -> Outcome:
    """Run ``case`` on ``impl`` with pinned ``seed``; errors of the implementation propagate.

    ``barrier_first`` synchronises the parties after key setup (uncounted), so that a case
    in which every party raises at once does not leave a party waiting for a key. A case of
    an operation that consumes comparison material first generates exactly that material
    (:func:`material_count`); its cost is the outcome's ``offline`` segment.
    """
    operation = OPERATIONS[case.operation]
    if operation.program is None and operation.pooled is None:
        profile = get_profile(case.profile)
        encoded = impl.ring.encode_fixed(profile, impl.floats(case.reals or []))
        decoded = impl.flat_floats(impl.ring.decode_fixed(profile, encoded))
        return Outcome(output=impl.flat(encoded), real_output=decoded)
    return run_cases(impl, [case], seed, timeout_seconds=timeout_seconds, barrier_first=barrier_first)[0]


Mark = tuple[int, int, int]
"""A party's (bytes_sent, messages_sent, rounds) at one point of a run."""


def _mark(ctx: PartyContext) -> Mark:
    return ctx.stats.bytes_sent, ctx.stats.messages_sent, ctx.stats.rounds


def _segment(start: Sequence[Mark], end: Sequence[Mark]) -> Segment:
    return Segment(
        [after[0] - before[0] for before, after in zip(start, end, strict=True)],
        [after[1] - before[1] for before, after in zip(start, end, strict=True)],
        max(after[2] for after in end) - max(before[2] for before in start),
    )


def run_cases(
    impl: Implementation,
    cases: Sequence[Case],
    seed: bytes,
    *,
    timeout_seconds: float = 30.0,
    barrier_first: bool = False,
) -> list[Outcome]:
    """Run ``cases`` one after another in one run of ``impl`` (one profile, same party count).

    The operations that consume comparison material share one pool, generated first for
    all of them (in case order they take their elements from it). Each outcome has its own
    shares, outputs and ``online`` segment; the run's totals (transcripts, hashes, bytes,
    messages, rounds) and the ``offline`` segment are those of the whole run.
    """
    if not cases:
        return []
    profiles = {case.profile for case in cases}
    counts = {party_count(case) for case in cases}
    if len(profiles) != 1 or len(counts) != 1:
        raise ValueError("the cases of one run need one profile and one party count")
    parties = counts.pop()
    operations = [OPERATIONS[case.operation] for case in cases]
    material = sum(material_count(case) for case in cases)
    pooled = any(operation.pooled is not None for operation in operations)

    def party_program(ctx: PartyContext) -> tuple[list[PartyResult], list[Mark]]:
        if barrier_first:
            ctx.barrier()
        marks = [_mark(ctx)]
        pool = None
        if pooled and ctx.party < COMPUTING_PARTIES:
            pool = impl.preprocessing.generate_comparison_pool(ctx, ctx.profile, material)
        marks.append(_mark(ctx))
        results = []
        for case, operation in zip(cases, operations, strict=True):
            if operation.pooled is not None:
                results.append(operation.pooled(impl, case, ctx, pool))
            else:
                assert operation.program is not None
                results.append(operation.program(impl, case, ctx))
            marks.append(_mark(ctx))
        return results, marks

    result = impl.run(
        party_program,
        profile=cases[0].profile,
        seed=seed,
        parties=parties,
        timeout_seconds=timeout_seconds,
    )
    marks = [party_marks for _, party_marks in result.outputs]
    stats = result.stats
    totals: dict[str, Any] = {
        "transcript_hashes": [party.transcript_hash.hex() for party in stats],
        "bytes_sent": [party.bytes_sent for party in stats],
        "messages_sent": [party.messages_sent for party in stats],
        "bytes_received": [party.bytes_received for party in stats],
        "party_rounds": [party.rounds for party in stats],
        "rounds": result.rounds,
        "transcripts": [list(party.transcript) for party in stats],
    }
    offline = _segment([mark[0] for mark in marks], [mark[1] for mark in marks]) if pooled else None
    outcomes = []
    for index, case in enumerate(cases):
        online = _segment([mark[index + 1] for mark in marks], [mark[index + 2] for mark in marks])
        party_results = [party_results[index] for party_results, _ in result.outputs]
        outcomes.append(_case_outcome(case, party_results, totals, offline, online))
    return outcomes


def _case_outcome(
    case: Case,
    outputs: list[PartyResult],
    totals: dict[str, Any],
    offline: Segment | None,
    online: Segment,
) -> Outcome:
    operation = OPERATIONS[case.operation]
    ring = output_ring(case)
    shares: PartyShares | None = None
    party_outputs: list[list[int] | None] | None = None
    output: list[int] | None
    if operation.shares_out and not case.checked:
        shares = []
        for party_result in outputs[:COMPUTING_PARTIES]:
            assert party_result.share is not None, "a computing party returned no share"
            shares.append(party_result.share)
        output = reconstruct(ring, shares)
    else:
        party_outputs = [party_result.value for party_result in outputs]
        output = _value_output(case, ring, party_outputs)
    named_shares: dict[str, PartyShares] | None = None
    names = [name for name in outputs[0].named] if outputs else []
    if names:
        named_shares = {name: [party_result.named[name] for party_result in outputs] for name in names}
    named_values: dict[str, list[list[int] | None]] | None = None
    value_names = sorted({name for party_result in outputs for name in party_result.named_values})
    if value_names:
        named_values = {
            name: [party_result.named_values.get(name) for party_result in outputs] for name in value_names
        }
    real_output = None
    if case.operation in FIXED_POINT_OPERATIONS and output is not None:
        real_output = decode_fixed(case.profile_object, output)
    return Outcome(
        shares=shares,
        output=output,
        real_output=real_output,
        party_outputs=party_outputs,
        named_shares=named_shares,
        named_values=named_values,
        offline=offline,
        online=online,
        **totals,
    )


def _value_output(case: Case, ring: Ring, party_outputs: list[list[int] | None]) -> list[int] | None:
    if case.operation == "zero_share":
        alphas = [value or [] for value in party_outputs]
        return [sum(parts) % ring.modulus for parts in zip(*alphas, strict=True)]
    if case.operation == "reveal_to":
        return party_outputs[case.receiver]
    if case.operation == "recv_elements":
        return party_outputs[1]
    if case.operation == "compare_vector":
        first, second = party_outputs[0] or [], party_outputs[1] or []
        return [(a + b) % ring.modulus for a, b in zip(first, second, strict=True)]
    return party_outputs[0]


def _matrix_product(
    ring: Ring, x: Sequence[int], y: Sequence[int], rows: int, inner: int, columns: int
) -> list[int]:
    return [
        sum(x[row * inner + k] * y[k * columns + column] for k in range(inner)) % ring.modulus
        for row in range(rows)
        for column in range(columns)
    ]


def plain_inputs(case: Case) -> tuple[list[int], list[int]]:
    """The plaintext operands x and y (empty when absent), reconstructed from the shares."""
    ring = case.ring_object
    x = reconstruct(ring, case.x) if case.x is not None else []
    y = reconstruct(ring, case.y) if case.y is not None else []
    return x, y


def plain_product(case: Case) -> list[int]:
    """z = x * y (elementwise, ``mul``) or X Y (``matmul``) in the case's ring."""
    ring = case.ring_object
    x, y = plain_inputs(case)
    if case.operation in ("matmul", "matmul_truncate"):
        assert case.y_shape is not None
        rows, inner = case.shape
        return _matrix_product(ring, x, y, rows, inner, case.y_shape[1])
    return [a * b % ring.modulus for a, b in zip(x, y, strict=True)]


def plain_result(case: Case) -> list[int]:
    """The plaintext model of an exact operation: what the reconstructed output must be."""
    ring = case.ring_object
    modulus = ring.modulus
    x, y = plain_inputs(case)
    count = element_count(case.shape)
    constants: list[int] = []
    if isinstance(case.constant, int):
        constants = [case.constant % modulus] * count
    elif case.constant is not None:
        constants = [value % modulus for value in case.constant]
    match case.operation:
        case "share_input" | "deal_input":
            return list(case.values or [])
        case "reveal" | "reveal_to" | "reveal_checked":
            return x
        case "add":
            return [(a + b) % modulus for a, b in zip(x, y, strict=True)]
        case "sub":
            return [(a - b) % modulus for a, b in zip(x, y, strict=True)]
        case "neg":
            return [-a % modulus for a in x]
        case "add_public":
            return [(a + c) % modulus for a, c in zip(x, constants, strict=True)]
        case "mul_public":
            return [a * c % modulus for a, c in zip(x, constants, strict=True)]
        case "mul" | "matmul":
            return plain_product(case)
        case "zero_share":
            return [0] * case.count
    if case.operation in COMPARISON_OPERATIONS:
        return plain_comparison(case)
    raise ValueError(f"{case.operation} has no exact plaintext model")


def _rows(values: list[int], width: int) -> list[list[int]]:
    return [values[start : start + width] for start in range(0, len(values), width)] if width else []


def _first_maximum(row: list[int]) -> list[int]:
    best = row.index(max(row))
    return [int(column == best) for column in range(len(row))]


def plain_comparison(case: Case) -> list[int]:
    """The plaintext model of the exact operations of §6 and §7 (inputs within their domain).

    Secret inputs are read as signed ring elements; DReLU is [x >= 0] (§7.3), compare is
    [x - y >= 0] on the ring difference (§7.5), maximum and argmax work over the last axis
    with ties won by the first position (§7.7).
    """
    profile = case.profile_object
    ring = profile.ring
    modulus = ring.modulus
    x, y = plain_inputs(case)
    match case.operation:
        case "lift_bits" | "bit_to_ring":
            return list(x)
        case "mask_bits":
            if case.x is None:
                raise ValueError("the bits of a PRSS mask follow from the mask in the outcome")
            return [(value >> bit) & 1 for value in x for bit in range(case.bits)]
        case "drelu":
            return [int(value >= 0) for value in to_signed(ring, x)]
        case "relu":
            return [max(value, 0) % modulus for value in to_signed(ring, x)]
        case "relu_and_derivative":
            return [max(value, 0) % modulus for value in to_signed(ring, x)]
        case "compare":
            differences = [(a - b) % modulus for a, b in zip(x, y, strict=True)]
            return [int(value >= 0) for value in to_signed(ring, differences)]
        case "select_shares":
            assert case.bit is not None
            bits = reconstruct(ring, case.bit)
            return [a if bit else b for bit, a, b in zip(bits, x, y, strict=True)]
        case "maximum" | "max_and_argmax":
            return [max(row) % modulus for row in _rows(to_signed(ring, x), case.shape[-1])]
        case "argmax":
            return [bit for row in _rows(to_signed(ring, x), case.shape[-1]) for bit in _first_maximum(row)]
    raise ValueError(f"{case.operation} has no exact plaintext model")


def plain_named(case: Case) -> dict[str, list[int]]:
    """The plaintext model of an operation's further outputs (``Outcome.named_shares``)."""
    ring = case.profile_object.ring
    x, _ = plain_inputs(case)
    if case.operation == "relu_and_derivative":
        return {"derivative": [int(value >= 0) for value in to_signed(ring, x)]}
    if case.operation == "max_and_argmax":
        rows = _rows(to_signed(ring, x), case.shape[-1])
        return {"argmax": [bit for row in rows for bit in _first_maximum(row)]}
    return {}


def truncation_target(case: Case) -> list[Fraction]:
    """The exact z / 2^d of a truncation case, z signed (``truncate``: z = x)."""
    ring = case.ring_object
    z = plain_inputs(case)[0] if case.operation == "truncate" else plain_product(case)
    return [Fraction(value, 1 << case.bits) for value in to_signed(ring, z)]


KEY_SETUP_BYTES = 32
"""§3.3 Key setup: every computing party sends one 32-byte key, in round 1 of every run."""


@dataclass(frozen=True)
class Cost:
    """What an operation costs each party of the run, key setup excluded (spec §4, §5)."""

    bytes_sent: list[int]
    messages_sent: list[int]
    rounds: int


def output_count(case: Case) -> int:
    """The number of output elements of a case."""
    return element_count(output_shape(case))


def stated_cost(case: Case) -> Cost | None:
    """The cost that the spec states for a case's operation (``None``: not an MPC operation).

    ``rounds`` is the increase of ``RunResult.rounds`` over the one round of key setup, except
    for ``deal_input``, whose data holder takes no part in key setup: its messages have depth 1,
    and ``rounds`` is then the data holder's own round count.
    """
    ring = case.ring_object
    n = output_count(case)
    one = encoded_length(ring, n)
    parties = party_count(case)

    def per_party(values: dict[int, tuple[int, int]], rounds: int) -> Cost:
        sent = [values.get(party, (0, 0)) for party in range(parties)]
        return Cost([bytes_ for bytes_, _ in sent], [messages for _, messages in sent], rounds)

    match case.operation:
        case "share_input":
            return per_party({case.owner: (2 * one, 2)}, 1)
        case "deal_input":
            return per_party({DATA_HOLDER: (3 * encoded_length(ring, 2 * n), 3)}, 1)
        case "reveal":
            return per_party({party: (one, 1) for party in range(COMPUTING_PARTIES)}, 1)
        case "reveal_to":
            if case.receiver >= COMPUTING_PARTIES:
                return per_party({party: (one, 1) for party in range(COMPUTING_PARTIES)}, 1)
            return per_party({(case.receiver + 1) % COMPUTING_PARTIES: (one, 1)}, 1)
        case "reveal_checked":
            return per_party({party: (2 * one, 2) for party in range(COMPUTING_PARTIES)}, 1)
        case "add" | "sub" | "neg" | "add_public" | "mul_public" | "prss_share" | "zero_share":
            return per_party({}, 0)
        case "mul" | "matmul":
            return per_party({party: (one, 1) for party in range(COMPUTING_PARTIES)}, 1)
        case "truncate":
            return per_party({0: (one, 1), 2: (one, 1)}, 2)
        case "mul_truncate" | "matmul_truncate":
            return per_party({party: (one, 1) for party in range(COMPUTING_PARTIES)}, 2)
    if case.operation in COMPARISON_OPERATIONS:
        return comparison_cost(case)
    return None


def _total(*costs: Cost, rounds: int) -> Cost:
    """Costs of steps run one after another; ``rounds`` is stated by the caller (§12.3)."""
    return Cost(
        [sum(values) for values in zip(*(cost.bytes_sent for cost in costs), strict=True)],
        [sum(values) for values in zip(*(cost.messages_sent for cost in costs), strict=True)],
        rounds,
    )


def _each(ring: Ring, count: int, parties: Sequence[int] = (0, 1, 2)) -> Cost:
    """One message of ``count`` elements of ``ring`` from each of ``parties``."""
    one = encoded_length(ring, count)
    return Cost(
        [one if party in parties else 0 for party in range(COMPUTING_PARTIES)],
        [1 if party in parties else 0 for party in range(COMPUTING_PARTIES)],
        1,
    )


def drelu_cost(profile: Profile, count: int) -> Cost:
    """§7.3 DReLU: on ``count`` elements: 3 rounds.

    Round 1: P2 opens its components of the masked value to P0 and P1 (one ring element each).
    Round 2: P0 and P1 send P2 their rotated vectors (k + 1 elements of Z_p each), P0 sends the
    bits c_k (one packed bit each). Round 3: P2 sends beta' to P0 and P1 (one packed bit each).
    Per element: P0 k + 1 + 1/8 bytes, P1 k + 1, P2 2 l/8 + 2/8.
    """
    ring, field = profile.ring, profile.field
    width = profile.comparison_bits + 1
    opening = _each(ring, count, (2,))
    vectors = _each(field, count * width, (0, 1))
    top = _each(BINARY, count, (0,))
    result = _each(BINARY, count, (2,))
    return _total(opening, opening, vectors, top, result, result, rounds=3)


def relu_cost(profile: Profile, count: int) -> Cost:
    """§7.4 ReLU: DReLU plus the resharing of u x, sent in DReLU's first round: 3 rounds."""
    return _total(drelu_cost(profile, count), _each(profile.ring, count), rounds=3)


def max_levels(classes: int) -> list[int]:
    """§7.7: the number of pairs that compete at each tournament level of ``classes`` columns."""
    pairs = []
    while classes > 1:
        pairs.append(classes // 2)
        classes = (classes + 1) // 2
    return pairs


def max_cost(profile: Profile, shape: tuple[int, ...], with_argmax: bool) -> Cost:
    """§7.7: one ReLU-with-derivative per pair and level; argmax adds one multiplication of the
    pairs' one-hot vectors (C elements each) per level.

    Rounds: 3 per level for the maximum; with argmax 4 per level (the multiplication needs the
    level's derivative, and the next level's opening by P2 goes out in the round after it).
    """
    classes = shape[-1]
    rows = element_count(shape) // classes
    costs = []
    for pairs in max_levels(classes):
        costs.append(relu_cost(profile, rows * pairs))
        if with_argmax:
            costs.append(_each(profile.ring, rows * pairs * classes))
    levels = len(max_levels(classes))
    return _total(Cost([0] * 3, [0] * 3, 0), *costs, rounds=(4 if with_argmax else 3) * levels)


def truncate_cost(profile: Profile, count: int) -> Cost:
    """§5.3: P2 sends x_2 - B to P0, P0 reshares A' to P1: one ring element each."""
    return _total(_each(profile.ring, count, (2,)), _each(profile.ring, count, (0,)), rounds=2)


def mul_truncate_cost(profile: Profile, count: int) -> Cost:
    """§5.4: P1 and P2 send to P0, P0 reshares to P1: one ring element from each party."""
    return _total(_each(profile.ring, count, (1, 2)), _each(profile.ring, count, (0,)), rounds=2)


def exp_cost(profile: Profile, count: int) -> Cost:
    """§8.1: ReLU (3 rounds), truncation (adds 1: P2's opening shares ReLU's third round), then
    n + 1 = 6 truncated multiplications (2 rounds each): 16 rounds."""
    squarings = 6
    costs = [relu_cost(profile, count), truncate_cost(profile, count)]
    costs += [mul_truncate_cost(profile, count)] * squarings
    return _total(*costs, rounds=3 + 1 + 2 * squarings)


def reciprocal_cost(profile: Profile, count: int) -> Cost:
    """§8.2: one truncation and 2 x 4 truncated multiplications, in sequence: 18 rounds."""
    iterations = 4
    costs = [truncate_cost(profile, count)] + [mul_truncate_cost(profile, count)] * (2 * iterations)
    return _total(*costs, rounds=2 + 2 * 2 * iterations)


def softmax_cost(profile: Profile, shape: tuple[int, ...]) -> Cost:
    """§8.3: maximum, exponential, reciprocal of the row sums and one truncated multiplication.

    Rounds 3 ceil(log2 C) + 34: the reciprocal adds 16, not 18, in sequence: its truncation's
    opening comes from P2, whose clock lags after the exponential's truncated multiplications.
    """
    classes = shape[-1]
    count = element_count(shape)
    rows = count // classes
    costs = [
        max_cost(profile, shape, with_argmax=False),
        exp_cost(profile, count),
        reciprocal_cost(profile, rows),
        mul_truncate_cost(profile, count),
    ]
    return _total(*costs, rounds=3 * len(max_levels(classes)) + 34)


def lift_cost(ring: Ring, count: int) -> Cost:
    """§6.1: P0 inputs e (two messages, §4.1), then one multiplication: 2 rounds."""
    return _total(_each(ring, count, (0,)), _each(ring, count, (0,)), _each(ring, count), rounds=2)


def mask_bits_cost(count: int, width: int) -> Cost:
    """§6.3: the majority resharing and the generate layer over all (count, width) bits, then
    width - 2 sequential carry ANDs over count bits (packed Z_2 messages): width rounds."""
    return _total(
        _each(BINARY, count * width),
        _each(BINARY, count * width),
        *[_each(BINARY, count)] * (width - 2),
        rounds=width,
    )


def material_cost(profile: Profile, count: int) -> Cost:
    """§6.2 Comparison material: offline cost for ``count`` elements: k + 6 rounds.

    mask_bits with width k + 1 (k + 1 rounds), lifting the k low bits and beta to Z_p (2),
    lifting r_k XOR beta to Z_2^l (2), and [beta r_j]_p by one multiplication of (count, k)
    elements (1). The masks drawn from kappa_1 cost nothing.
    """
    k = profile.comparison_bits
    return _total(
        mask_bits_cost(count, k + 1),
        lift_cost(profile.field, count * (k + 1)),
        lift_cost(profile.ring, count),
        _each(profile.field, count * k),
        rounds=k + 6,
    )


def comparison_cost(case: Case) -> Cost:
    """The online cost of a §6-§8 operation on its own (the material's cost is ``material_cost``)."""
    profile = case.profile_object
    count = element_count(case.shape)
    match case.operation:
        case "lift_bits" | "bit_to_ring":
            return lift_cost(output_ring(case), count)
        case "mask_bits":
            return mask_bits_cost(count, case.bits)
        case "generate_comparison_material":
            return material_cost(profile, case.count)
        case "compare_vector":
            return Cost([0] * 3, [0] * 3, 0)
        case "sign_bits" | "drelu" | "compare":
            return drelu_cost(profile, count)
        case "relu" | "relu_and_derivative":
            return relu_cost(profile, count)
        case "select_shares":
            return _each(profile.ring, count)
        case "maximum":
            return max_cost(profile, case.shape, with_argmax=False)
        case "argmax" | "max_and_argmax":
            return max_cost(profile, case.shape, with_argmax=True)
        case "exp_nonpositive":
            return exp_cost(profile, count)
        case "reciprocal":
            return reciprocal_cost(profile, count)
        case "softmax":
            return softmax_cost(profile, case.shape)
    raise ValueError(f"no stated cost for {case.operation}")


def segment_cost(segment: Segment) -> Cost:
    """A measured segment as a :class:`Cost`."""
    return Cost(list(segment.bytes_sent), list(segment.messages_sent), segment.rounds)


def without_key_setup(bytes_sent: Sequence[int], messages_sent: Sequence[int]) -> tuple[list[int], list[int]]:
    """Every party's bytes and messages less key setup's one 32-byte message per computing party."""
    computing = [party < COMPUTING_PARTIES for party in range(len(bytes_sent))]
    return (
        [sent - KEY_SETUP_BYTES * held for sent, held in zip(bytes_sent, computing, strict=True)],
        [sent - held for sent, held in zip(messages_sent, computing, strict=True)],
    )


def measured_cost(case: Case, outcome: Outcome) -> Cost:
    """An outcome's cost with the key-setup baseline taken off (see :func:`stated_cost`)."""
    assert outcome.bytes_sent is not None and outcome.messages_sent is not None
    assert outcome.rounds is not None and outcome.party_rounds is not None
    rounds = outcome.party_rounds[DATA_HOLDER] if case.operation == "deal_input" else outcome.rounds - 1
    return Cost(*without_key_setup(outcome.bytes_sent, outcome.messages_sent), rounds)
