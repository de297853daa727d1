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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from conformance.harness import Implementation, PlainValueError
from refimpl.ring import BINARY, Ring, arithmetic_ring, element_count, get_profile, prime_field, to_signed
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

    @property
    def ring_object(self) -> Ring:
        return ring_named(self.profile, self.ring)


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


@dataclass(frozen=True)
class PartyResult:
    """One party's result: output shares (a computing party) and/or a plain value."""

    share: Pair | None = None
    value: list[int] | None = None


PartyProgram = Callable[[Implementation, Case, PartyContext], PartyResult]


@dataclass(frozen=True)
class Operation:
    """How to run one operation: its spec anchor, its party count and its party program."""

    name: str
    anchor: str
    program: PartyProgram | None
    four_parties: Callable[[Case], bool] = lambda case: False
    shares_out: bool = True


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
    if case.operation in ("zero_share", "recv_elements"):
        return (case.count,)
    return tuple(case.shape)


def _out(impl: Implementation, case: Case, share: Any) -> PartyResult:
    """A party's output share, after checking its ring, shape and plain-value types."""
    ring, shape = case.ring_object, output_shape(case)
    if share.ring != ring or tuple(share.shape) != shape:
        raise PlainValueError(
            f"{impl.name}: a share of {share.ring.name} {share.shape}, expected {ring.name} {shape}"
        )
    impl.check_plain(ring, share.first, shape)
    impl.check_plain(ring, share.second, shape)
    return PartyResult(share=impl.parts(share))


def _value(impl: Implementation, case: Case, value: Any) -> PartyResult:
    """A party's plain output (or ``None``), after checking its plain-value type and shape."""
    if value is None:
        return PartyResult()
    impl.check_plain(case.ring_object, value, output_shape(case))
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
    ]
}


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
    in which every party raises at once does not leave a party waiting for a key.
    """
    operation = OPERATIONS[case.operation]
    profile = get_profile(case.profile)
    if operation.program is None:
        encoded = impl.ring.encode_fixed(profile, impl.floats(case.reals or []))
        decoded = impl.flat_floats(impl.ring.decode_fixed(profile, encoded))
        return Outcome(output=impl.flat(encoded), real_output=decoded)
    program = operation.program

    def party_program(ctx: PartyContext) -> PartyResult:
        if barrier_first:
            ctx.barrier()
        return program(impl, case, ctx)

    result = impl.run(
        party_program,
        profile=case.profile,
        seed=seed,
        parties=party_count(case),
        timeout_seconds=timeout_seconds,
    )
    ring = case.ring_object
    outputs: list[PartyResult] = list(result.outputs)
    shares: PartyShares | None = None
    party_outputs: list[list[int] | None] | None = None
    output: list[int] | None
    if operation.shares_out:
        shares = []
        for party_result in outputs[:COMPUTING_PARTIES]:
            assert party_result.share is not None, "a computing party returned no share"
            shares.append(party_result.share)
        output = reconstruct(ring, shares)
    else:
        party_outputs = [party_result.value for party_result in outputs]
        output = _value_output(case, ring, party_outputs)
    stats = result.stats
    return Outcome(
        shares=shares,
        output=output,
        party_outputs=party_outputs,
        transcript_hashes=[party.transcript_hash.hex() for party in stats],
        bytes_sent=[party.bytes_sent for party in stats],
        messages_sent=[party.messages_sent for party in stats],
        bytes_received=[party.bytes_received for party in stats],
        party_rounds=[party.rounds for party in stats],
        rounds=result.rounds,
        transcripts=[list(party.transcript) for party in stats],
    )


def _value_output(case: Case, ring: Ring, party_outputs: list[list[int] | None]) -> list[int] | None:
    if case.operation == "zero_share":
        alphas = [value or [] for value in party_outputs]
        return [sum(parts) % ring.modulus for parts in zip(*alphas, strict=True)]
    if case.operation == "reveal_to":
        return party_outputs[case.receiver]
    if case.operation == "recv_elements":
        return party_outputs[1]
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
    raise ValueError(f"{case.operation} has no exact plaintext model")


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
    if case.operation in ("matmul", "matmul_truncate"):
        assert case.y_shape is not None
        return case.shape[0] * case.y_shape[1]
    if case.operation in ("zero_share", "recv_elements"):
        return case.count
    return element_count(case.shape)


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
    return None


def measured_cost(case: Case, outcome: Outcome) -> Cost:
    """An outcome's cost with the key-setup baseline taken off (see :func:`stated_cost`)."""
    assert outcome.bytes_sent is not None and outcome.messages_sent is not None
    assert outcome.rounds is not None and outcome.party_rounds is not None
    baseline_bytes = [
        KEY_SETUP_BYTES if party < COMPUTING_PARTIES else 0 for party in range(len(outcome.bytes_sent))
    ]
    baseline_messages = [1 if party < COMPUTING_PARTIES else 0 for party in range(len(outcome.bytes_sent))]
    rounds = outcome.party_rounds[DATA_HOLDER] if case.operation == "deal_input" else outcome.rounds - 1
    return Cost(
        [sent - base for sent, base in zip(outcome.bytes_sent, baseline_bytes, strict=True)],
        [sent - base for sent, base in zip(outcome.messages_sent, baseline_messages, strict=True)],
        rounds,
    )
