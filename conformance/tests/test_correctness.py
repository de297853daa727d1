"""Correctness against plaintext, for every operation, implementation and profile.

Exact operations (input sharing, reveals, linear operations in Z_2^l, Z_p and Z_2, mul
and matmul, zero-sharing) must reconstruct to the plaintext model
:func:`conformance.operations.plain_result` exactly; every output sharing must be a
consistent replicated sharing (P_i's second component is P_{i+1}'s first).

Truncation (truncate, mul_truncate, matmul_truncate) must satisfy |y - z / 2^d| < 1 for
every element, y the signed reconstructed output and z the exact signed input (or product)
— decoded, an error below 2^-f per truncation. The spec (§5.3) allows a failure with
probability |z| / 2^l per element; the strategies keep the sum of |z| / 2^l over an
example's elements at most 2^-20 (:data:`conformance.strategies.FAILURE_BUDGET_BITS`), so
across the 200 examples of a quick run the chance of a legitimate failure is below 2^-12.
Large |z| are covered by ``test_truncation_rate.py``.

Every run's cost — bytes and messages sent by each party and rounds, key setup taken off —
must also equal the cost that the spec states for the operation
(:func:`conformance.operations.stated_cost`).

The properties draw shapes with every dimension at least 1; :func:`test_edge_shapes` runs the
same checks on the scalar shape and the empty shapes (no rows, no columns, a matrix product
of inner size 0, a count of 0) of every operation, a few examples each, in every run.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.examples import note_example
from conformance.harness import implementation, selected_names
from conformance.operations import (
    COMPUTING_PARTIES,
    Case,
    Outcome,
    is_consistent,
    measured_cost,
    output_count,
    plain_result,
    run_case,
    stated_cost,
    truncation_target,
)
from conformance.strategies import (
    EDGE_SHAPES,
    PROFILE_NAMES,
    Shape,
    cases,
    edge_case_id,
    edge_cases,
    element_lists,
    get_ring,
    ring_names,
    seeds,
    shapes,
)
from refimpl.ring import element_count, get_profile, to_signed
from refimpl.transport import PartyContext, decode_elements

EXACT_SHARE_OPERATIONS = [
    "share_input",
    "deal_input",
    "add",
    "sub",
    "neg",
    "add_public",
    "mul_public",
    "mul",
    "matmul",
]
TRUNCATIONS = ["truncate", "mul_truncate", "matmul_truncate"]
REVEALS = ["reveal", "reveal_to", "reveal_checked"]
EDGE_EXAMPLES = 4
"""Examples per explicit edge shape (an empty shape leaves only the seed and ring to vary)."""


def _check_cost(case: Case, outcome: Outcome) -> None:
    assert measured_cost(case, outcome) == stated_cost(case), "the cost differs from the spec's"


def _check_shares(case: Case, outcome: Outcome) -> list[int]:
    assert outcome.shares is not None
    assert len(outcome.shares) == COMPUTING_PARTIES
    count = output_count(case)
    for first, second in outcome.shares:
        assert len(first) == count and len(second) == count
        assert all(0 <= value < case.ring_object.modulus for value in first + second)
    assert is_consistent(outcome.shares), f"inconsistent replicated output: {outcome.shares}"
    assert outcome.output is not None
    return outcome.output


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", EXACT_SHARE_OPERATIONS)
@given(data=st.data())
def test_exact_operation(operation: str, impl_name: str, profile: str, data: st.DataObject) -> None:
    """Sharing and linear/multiplicative operations reconstruct exactly to the plaintext model."""
    case = data.draw(cases(operation, profile), label="case")
    check_exact(impl_name, case, data.draw(seeds(), label="seed"))


def check_exact(impl_name: str, case: Case, seed: bytes) -> None:
    """The output reconstructs exactly to the plaintext model, at the spec's cost."""
    outcome = run_case(implementation(impl_name), case, seed)
    assert _check_shares(case, outcome) == plain_result(case)
    _check_cost(case, outcome)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", REVEALS)
@given(data=st.data())
def test_reveal(operation: str, impl_name: str, profile: str, data: st.DataObject) -> None:
    """reveal / reveal_checked return x to every party; reveal_to only to the receiver."""
    case = data.draw(cases(operation, profile), label="case")
    check_reveal(impl_name, case, data.draw(seeds(), label="seed"))


def check_reveal(impl_name: str, case: Case, seed: bytes) -> None:
    """The revealed value reaches exactly the parties it should, at the spec's cost."""
    outcome = run_case(implementation(impl_name), case, seed)
    expected = plain_result(case)
    _check_cost(case, outcome)
    assert outcome.party_outputs is not None
    if case.operation == "reveal_to":
        for party, value in enumerate(outcome.party_outputs):
            assert value == (expected if party == case.receiver else None), f"P{party}"
    else:
        assert outcome.party_outputs == [expected] * COMPUTING_PARTIES


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("operation", TRUNCATIONS)
@given(data=st.data())
def test_truncation_error_below_one_unit(
    operation: str, impl_name: str, profile: str, data: st.DataObject
) -> None:
    """|signed(y) - z / 2^d| < 1 for every element (failure budget 2^-20 per example)."""
    case = data.draw(cases(operation, profile), label="case")
    check_truncation(impl_name, case, data.draw(seeds(), label="seed"))


def check_truncation(impl_name: str, case: Case, seed: bytes) -> None:
    """Every element within one unit of the exact z / 2^d, at the spec's cost."""
    outcome = run_case(implementation(impl_name), case, seed)
    ring = case.ring_object
    _check_cost(case, outcome)
    result = to_signed(ring, _check_shares(case, outcome))
    for index, (value, target) in enumerate(zip(result, truncation_target(case), strict=True)):
        assert abs(value - target) < 1, f"element {index}: {value} vs exact {target}"
    if case.operation != "truncate":
        scale = Fraction(1, 1 << case.profile_object.fractional_bits)
        for value, target in zip(result, truncation_target(case), strict=True):
            assert abs(value * scale - target * scale) < scale


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@given(data=st.data())
def test_prss_share(impl_name: str, profile: str, data: st.DataObject) -> None:
    """prss_share is a consistent replicated sharing of some ring element per position."""
    case = data.draw(cases("prss_share", profile), label="case")
    check_prss_share(impl_name, case, data.draw(seeds(), label="seed"))


def check_prss_share(impl_name: str, case: Case, seed: bytes) -> None:
    """A consistent sharing of ring elements, at the spec's cost."""
    outcome = run_case(implementation(impl_name), case, seed)
    output = _check_shares(case, outcome)
    assert all(0 <= value < case.ring_object.modulus for value in output)
    _check_cost(case, outcome)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@given(data=st.data())
def test_zero_share(impl_name: str, profile: str, data: st.DataObject) -> None:
    """The three alphas of zero_share are ring elements and sum to 0, without communication."""
    case = data.draw(cases("zero_share", profile), label="case")
    check_zero_share(impl_name, case, data.draw(seeds(), label="seed"))


def check_zero_share(impl_name: str, case: Case, seed: bytes) -> None:
    """Three alphas of ``case.count`` ring elements summing to 0, at the spec's cost."""
    outcome = run_case(implementation(impl_name), case, seed)
    assert outcome.party_outputs is not None
    for alpha in outcome.party_outputs:
        assert alpha is not None and len(alpha) == case.count
        assert all(0 <= value < case.ring_object.modulus for value in alpha)
    assert outcome.output == plain_result(case)
    _check_cost(case, outcome)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@given(data=st.data())
def test_wire_round_trip(impl_name: str, profile: str, data: st.DataObject) -> None:
    """A well-formed message decodes, through recv_elements, to the elements that were encoded."""
    check_wire_round_trip(impl_name, data.draw(cases("recv_elements", profile), label="case"), b"wire")


def check_wire_round_trip(impl_name: str, case: Case, seed: bytes) -> None:
    """recv_elements returns the encoded elements."""
    outcome = run_case(implementation(impl_name), case, seed)
    assert case.payload is not None
    assert outcome.output == decode_elements(case.ring_object, case.payload, case.count)


REVEAL_METHODS = ["reveal", "reveal_checked", "reveal_to_0", "reveal_to_1", "reveal_to_2", "reveal_to_3"]


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@given(data=st.data())
def test_input_then_reveal(impl_name: str, profile: str, data: st.DataObject) -> None:
    """share_input (any owner) or deal_input + receive_input, then any reveal, returns the input."""
    shape = data.draw(shapes(), label="shape")
    note_example(element_count(shape) > 0)
    check_input_then_reveal(impl_name, profile, shape, data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=str)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_input_then_reveal_at_edges(impl_name: str, profile: str, shape: Shape, data: st.DataObject) -> None:
    """Input, then reveal, of the scalar and empty shapes."""
    check_input_then_reveal(impl_name, profile, shape, data)


def check_input_then_reveal(impl_name: str, profile: str, shape: Shape, data: st.DataObject) -> None:
    """Input values of ``shape`` by a drawn owner, reveal them by a drawn method: the input returns."""
    impl = implementation(impl_name)
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    values = data.draw(element_lists(ring, element_count(shape)), label="values")
    owner = data.draw(st.integers(0, 3), label="owner (3: a data holder)")
    method = data.draw(st.sampled_from(REVEAL_METHODS), label="reveal")
    seed = data.draw(seeds(), label="seed")
    receiver = int(method.rsplit("_", 1)[1]) if method.startswith("reveal_to") else None
    four_parties = owner == 3 or receiver == 3

    def program(ctx: PartyContext) -> list[int] | None:
        plain = impl.plain(ring, values, shape)
        if ctx.party == 3:
            if owner == 3:
                impl.sharing.deal_input(ctx, ring, plain, shape)
            if receiver == 3:
                return impl.flat(impl.sharing.receive_revealed(ctx, ring, shape))
            return None
        if owner == 3:
            x = impl.sharing.receive_input(ctx, ring, 3, shape)
        else:
            x = impl.sharing.share_input(ctx, ring, owner, plain if ctx.party == owner else None, shape)
        if receiver is not None:
            revealed = impl.sharing.reveal_to(ctx, x, receiver)
            return None if revealed is None else impl.flat(revealed)
        function = impl.sharing.reveal if method == "reveal" else impl.sharing.reveal_checked
        return impl.flat(function(ctx, x))

    result = impl.run(program, profile=profile, seed=seed, parties=4 if four_parties else 3)
    for party, output in enumerate(result.outputs):
        if receiver is None:
            expected = values if party < 3 else None
        else:
            expected = values if party == receiver else None
        assert output == expected, f"P{party} ({method}, owner {owner})"


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@given(data=st.data())
def test_encode_and_decode_fixed(impl_name: str, profile: str, data: st.DataObject) -> None:
    """encode_fixed is round(x 2^f), ties to even, mod 2^l; decode_fixed maps it back to k / 2^f."""
    check_encode_fixed(impl_name, data.draw(cases("encode_fixed", profile), label="case"), b"")


def check_encode_fixed(impl_name: str, case: Case, seed: bytes) -> None:
    """encode_fixed and decode_fixed of ``case.reals``."""
    outcome = run_case(implementation(impl_name), case, seed)
    chosen = case.profile_object
    assert case.reals is not None
    units = [round(Fraction(real) * (1 << chosen.fractional_bits)) for real in case.reals]
    assert outcome.output == [unit % chosen.ring.modulus for unit in units]
    assert outcome.real_output == [unit / (1 << chosen.fractional_bits) for unit in units]


CHECKS: dict[str, Callable[[str, Case, bytes], None]] = {
    **dict.fromkeys(EXACT_SHARE_OPERATIONS, check_exact),
    **dict.fromkeys(REVEALS, check_reveal),
    **dict.fromkeys(TRUNCATIONS, check_truncation),
    "prss_share": check_prss_share,
    "zero_share": check_zero_share,
    "recv_elements": check_wire_round_trip,
    "encode_fixed": check_encode_fixed,
}
"""The check of every operation's outcome, as its property runs it."""
EDGE_CASES = [pytest.param(*case, id=edge_case_id(*case)) for case in edge_cases(list(CHECKS))]


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
@pytest.mark.parametrize(("operation", "shape", "y_shape"), EDGE_CASES)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_edge_shapes(
    operation: str, shape: Shape, y_shape: Shape | None, impl_name: str, profile: str, data: st.DataObject
) -> None:
    """The scalar and empty shapes of every operation pass the checks of its property."""
    case = data.draw(cases(operation, profile, shape, y_shape), label="case")
    CHECKS[operation](impl_name, case, data.draw(seeds(), label="seed"))
