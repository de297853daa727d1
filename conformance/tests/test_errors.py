"""Errors: every implementation rejects bad inputs and bad messages with the named exception.

* out-of-range or non-finite fixed-point values: ``FixedPointRangeError``;
* mismatched shapes or rings, constants of the wrong length, values that do not fill the
  shape: ``ShapeError``;
* a message of the wrong length or with the wrong step label, an out-of-range Z_p element,
  non-zero Z_2 padding: ``WireFormatError``;
* inconsistent replicated shares given to reveal_checked: ``ShareConsistencyError``;
* a peer that raises: the others abort and ``run_parties`` re-raises the original error
  at once (well before the receive timeout);
* an unknown profile or ring parameter: ``ProfileError``;
* a message that never comes: ``ProtocolAbort`` at the receive timeout;
* a truncation by 0 or >= l bits, or in a ring that is not Z_2^l: ``ValueError``;
* comparison material exhausted (§6.4): ``RuntimeError``; material whose count does not
  match the input (§7.3): ``ShapeError``; lifting a sharing that is not in Z_2 (§6.1, §7.8)
  and a reciprocal's upper bound below 1 (§8.2): ``ValueError``; maximum, argmax and
  softmax over an empty last axis (§7.7, §8.3): ``ShapeError``; a private-compare message
  of the wrong length (§7.2): ``WireFormatError``; inconsistent shares of DReLU's input,
  revealed with a check afterwards: ``ShareConsistencyError``.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.expect import raises_exactly
from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import Case, PartyShares, replicate, run_case
from conformance.strategies import (
    PROFILE_NAMES,
    element_lists,
    fixed_point_values,
    get_ring,
    ring_names,
    shapes,
    shapes_with_edges,
    share_triples,
)
from refimpl.ring import (
    BINARY,
    FixedPointRangeError,
    ProfileError,
    Ring,
    ShapeError,
    element_count,
    get_profile,
    prime_field,
)
from refimpl.sharing import ShareConsistencyError
from refimpl.transport import PartyContext, ProtocolAbort, WireFormatError, encoded_length

IMPLEMENTATIONS = pytest.mark.parametrize("impl_name", selected_names())
PROFILES = pytest.mark.parametrize("profile", PROFILE_NAMES)


def _run(impl: Implementation, program: Any, profile: str, parties: int = 3, timeout: float = 30.0) -> Any:
    """Run ``program`` after an (uncounted) barrier, so that parties raising at once wait for no key."""

    def synchronised(ctx: PartyContext) -> Any:
        ctx.barrier()
        return program(ctx)

    return impl.run(synchronised, profile=profile, seed=b"errors", parties=parties, timeout_seconds=timeout)


def _case(impl: Implementation, case: Case) -> None:
    run_case(impl, case, b"errors", barrier_first=True)


def _out_of_range(profile: str) -> st.SearchStrategy[float]:
    """Reals that cannot be encoded: |x| at or beyond 2^(l-1-f) (rounding included), or non-finite."""
    chosen = get_profile(profile)
    bound = 2.0 ** (chosen.ring_bits - 1 - chosen.fractional_bits)
    below = min(math.nextafter(-bound, -math.inf), -(bound + 2.0**-chosen.fractional_bits))
    return st.one_of(
        st.floats(min_value=bound, allow_nan=False),
        st.floats(max_value=below, allow_nan=False),
        st.sampled_from([math.nan, math.inf, -math.inf, bound, 2.0 * bound, -2.0 * bound]),
    )


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_fixed_point_out_of_range(impl_name: str, profile: str, data: st.DataObject) -> None:
    """encode_fixed raises FixedPointRangeError when any value is non-finite or out of range."""
    impl = implementation(impl_name)
    good = data.draw(st.lists(fixed_point_values(get_profile(profile)), max_size=4), label="good")
    bad = data.draw(_out_of_range(profile), label="bad")
    position = data.draw(st.integers(0, len(good)), label="position")
    reals = [*good[:position], bad, *good[position:]]
    with raises_exactly(FixedPointRangeError):
        impl.ring.encode_fixed(get_profile(profile), impl.floats(reals))


def _two_shapes() -> st.SearchStrategy[tuple[tuple[int, ...], tuple[int, ...]]]:
    return st.tuples(shapes_with_edges(), shapes_with_edges()).filter(lambda pair: pair[0] != pair[1])


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_shape_mismatch(impl_name: str, profile: str, data: st.DataObject) -> None:
    """add, sub, mul and local_products reject operands of different shapes with ShapeError."""
    impl = implementation(impl_name)
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    x_shape, y_shape = data.draw(_two_shapes(), label="shapes")
    x = replicate(data.draw(share_triples(ring, element_count(x_shape)), label="x"))
    y = replicate(data.draw(share_triples(ring, element_count(y_shape)), label="y"))
    left, right = impl.make_share(ring, x_shape, *x[0]), impl.make_share(ring, y_shape, *y[0])
    for function in (impl.sharing.add, impl.sharing.sub, impl.arithmetic.local_products):
        with raises_exactly(ShapeError):
            function(left, right)
    with raises_exactly(ShapeError):
        _case(impl, Case("mul", profile, ring.name, x_shape, x=x, y=y, y_shape=y_shape))


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_ring_mismatch(impl_name: str, profile: str, data: st.DataObject) -> None:
    """Operands in different rings are rejected with ShapeError (linear ops and products)."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)
    rings = data.draw(st.permutations([chosen.ring, prime_field(chosen.prime), BINARY]), label="rings")
    shape = data.draw(shapes_with_edges(), label="shape")
    count = element_count(shape)
    x = replicate(data.draw(share_triples(rings[0], count), label="x"))[0]
    y = replicate(data.draw(share_triples(rings[1], count), label="y"))[0]
    left, right = impl.make_share(rings[0], shape, *x), impl.make_share(rings[1], shape, *y)
    for function in (impl.sharing.add, impl.sharing.sub, impl.arithmetic.local_products):
        with raises_exactly(ShapeError):
            function(left, right)


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_matrix_shape_mismatch(impl_name: str, profile: str, data: st.DataObject) -> None:
    """matmul and matmul_truncate reject non-matrices and mismatched inner dimensions."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    x_shape, y_shape = data.draw(
        st.tuples(shapes_with_edges(), shapes_with_edges()).filter(
            lambda pair: len(pair[0]) != 2 or len(pair[1]) != 2 or pair[0][1] != pair[1][0]
        ),
        label="shapes",
    )
    x = replicate(data.draw(share_triples(ring, element_count(x_shape)), label="x"))
    y = replicate(data.draw(share_triples(ring, element_count(y_shape)), label="y"))
    for operation in ("matmul", "matmul_truncate"):
        case = Case(operation, profile, ring.name, x_shape, x=x, y=y, y_shape=y_shape, bits=1)
        with raises_exactly(ShapeError):
            _case(impl, case)


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_public_constant_of_wrong_length(impl_name: str, profile: str, data: st.DataObject) -> None:
    """add_public and mul_public reject a per-element constant that does not fit the shape."""
    impl = implementation(impl_name)
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    shape = data.draw(shapes_with_edges(), label="shape")
    count = element_count(shape)
    length = data.draw(st.integers(0, 8).filter(lambda length: length != count), label="length")
    x = replicate(data.draw(share_triples(ring, count), label="x"))
    constant = data.draw(element_lists(ring, length), label="constant")

    def add_public(ctx: PartyContext) -> None:
        share = impl.make_share(ring, shape, *x[ctx.party])
        impl.sharing.add_public(ctx, share, impl.plain(ring, constant, (length,)))

    with raises_exactly(ShapeError):
        _run(impl, add_public, profile)
    with raises_exactly(ShapeError):
        impl.sharing.mul_public(impl.make_share(ring, shape, *x[0]), impl.plain(ring, constant, (length,)))


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_values_do_not_fill_shape(impl_name: str, profile: str, data: st.DataObject) -> None:
    """check_elements (the input pre-condition) rejects values that do not fill the shape: ShapeError."""
    impl = implementation(impl_name)
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    shape = data.draw(shapes_with_edges(), label="shape")
    length = data.draw(
        st.integers(0, 8).filter(lambda length: length != element_count(shape)), label="length"
    )
    values = data.draw(element_lists(ring, length), label="values")
    with raises_exactly(ShapeError):
        impl.ring.check_elements(ring, impl.plain(ring, values, (length,)), shape)


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize(("shape", "length"), [((2,), 3), ((2, 2), 3), ((), 0), ((0,), 1)])
def test_inputs_do_not_fill_shape(impl_name: str, profile: str, shape: tuple[int, ...], length: int) -> None:
    """share_input (owner P0) and deal_input (holder P3) abort the run with ShapeError."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    values = list(range(length))

    def share(ctx: PartyContext) -> None:
        plain = impl.plain(ring, values, (length,)) if ctx.party == 0 else None
        impl.sharing.share_input(ctx, ring, 0, plain, shape)

    def deal(ctx: PartyContext) -> None:
        if ctx.party == 3:
            impl.sharing.deal_input(ctx, ring, impl.plain(ring, values, (length,)), shape)
        else:
            impl.sharing.receive_input(ctx, ring, 3, shape)

    with raises_exactly(ShapeError):
        _run(impl, share, profile)
    with raises_exactly(ShapeError):
        _run(impl, deal, profile, parties=4)


def _wrong_length_payload(profile: str, data: st.DataObject) -> tuple[Ring, int, bytes]:
    """A ring of the profile, an element count, and bytes of any other length than they encode to."""
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    count = data.draw(st.integers(0, 12), label="count")
    expected = encoded_length(ring, count)
    payload = data.draw(
        st.binary(max_size=expected + 9).filter(lambda payload: len(payload) != expected), label="payload"
    )
    return ring, count, payload


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_wrong_message_length(impl_name: str, profile: str, data: st.DataObject) -> None:
    """recv_elements raises WireFormatError on a payload of the wrong length (sent with ctx.send)."""
    impl = implementation(impl_name)
    ring, count, payload = _wrong_length_payload(profile, data)
    with raises_exactly(WireFormatError):
        _case(impl, Case("recv_elements", profile, ring.name, (count,), count=count, payload=payload))


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_wrong_step_label(impl_name: str, profile: str, data: st.DataObject) -> None:
    """A message with another step label than the receiver expects raises WireFormatError."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    sent, expected = data.draw(
        st.tuples(
            st.sampled_from(["input", "reveal", "reshare", "x"]), st.sampled_from(["reveal", "trunc-open"])
        ).filter(lambda pair: pair[0] != pair[1]),
        label="labels",
    )
    values = data.draw(element_lists(ring, 2), label="values")

    def program(ctx: PartyContext) -> None:
        if ctx.party == 0:
            impl.transport.send_elements(ctx, 1, sent, ring, impl.plain(ring, values, (2,)))
        elif ctx.party == 1:
            impl.transport.recv_elements(ctx, 0, expected, ring, 2)

    with raises_exactly(WireFormatError):
        _run(impl, program, profile)


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_decode_rejects_a_payload_of_the_wrong_length(
    impl_name: str, profile: str, data: st.DataObject
) -> None:
    """decode_elements on its own (as deployment calls it) refuses bytes not encoding ``count`` elements."""
    impl = implementation(impl_name)
    ring, count, payload = _wrong_length_payload(profile, data)
    expected = encoded_length(ring, count)
    with raises_exactly(WireFormatError, match=f"expected {expected} bytes"):
        impl.transport.decode_elements(ring, payload, count)


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_decode_rejects_bad_elements(impl_name: str, profile: str, data: st.DataObject) -> None:
    """decode_elements rejects Z_p bytes >= p and non-zero padding bits of a packed Z_2 message."""
    impl = implementation(impl_name)
    field = prime_field(get_profile(profile).prime)
    count = data.draw(st.integers(1, 12), label="count")
    values = data.draw(element_lists(field, count), label="values")
    index = data.draw(st.integers(0, count - 1), label="index")
    values_bytes = bytearray(bytes(values))
    values_bytes[index] = data.draw(st.integers(field.modulus, 255), label="bad byte")
    with raises_exactly(WireFormatError):
        impl.transport.decode_elements(field, bytes(values_bytes), count)
    bits = data.draw(st.integers(1, 23).filter(lambda bits: bits % 8 != 0), label="bits")
    packed = bytearray(
        data.draw(st.binary(min_size=(bits + 7) // 8, max_size=(bits + 7) // 8), label="packed")
    )
    padding = data.draw(st.integers(bits % 8, 7), label="padding bit")
    packed[-1] |= 1 << padding
    with raises_exactly(WireFormatError):
        impl.transport.decode_elements(BINARY, bytes(packed), bits)


class PeerFailure(RuntimeError):
    """The error a deliberately failing party raises."""


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize("failing", [0, 1, 2])
def test_peer_failure_aborts_the_others(impl_name: str, profile: str, failing: int) -> None:
    """A party that raises aborts the waiting parties; run_parties re-raises its error at once."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring

    def program(ctx: PartyContext) -> None:
        if ctx.party == failing:
            raise PeerFailure(f"P{ctx.party} fails on purpose")
        x = impl.make_share(ring, (1,), [1], [2])
        impl.sharing.reveal(ctx, x)

    start = time.monotonic()
    with raises_exactly(PeerFailure):
        _run(impl, program, profile, timeout=30.0)
    assert time.monotonic() - start < 5.0, "the others waited for the timeout instead of aborting"


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_inconsistent_shares_rejected(impl_name: str, profile: str, data: st.DataObject) -> None:
    """reveal_checked raises ShareConsistencyError when one party's component was tampered with."""
    impl = implementation(impl_name)
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    shape = data.draw(shapes(), label="shape")
    count = element_count(shape)
    x = replicate(data.draw(share_triples(ring, count), label="x"))
    party = data.draw(st.integers(0, 2), label="party")
    component = data.draw(st.integers(0, 1), label="component")
    index = data.draw(st.integers(0, count - 1), label="index")
    delta = data.draw(st.integers(1, ring.modulus - 1), label="delta")
    tampered = [list(part) for part in x[party]]
    tampered[component][index] = (tampered[component][index] + delta) % ring.modulus
    x[party] = (tampered[0], tampered[1])
    with raises_exactly(ShareConsistencyError):
        _case(impl, Case("reveal_checked", profile, ring.name, shape, x=x))


@IMPLEMENTATIONS
def test_unknown_profile(impl_name: str) -> None:
    """Unknown profiles and unspecified ring parameters raise ProfileError."""
    impl = implementation(impl_name)
    with raises_exactly(ProfileError):
        impl.ring.get_profile("narrow")
    with raises_exactly(ProfileError):
        impl.transport.run_parties(lambda ctx: None, profile="narrow", seed=b"p")
    with raises_exactly(ProfileError):
        impl.ring.arithmetic_ring(16)
    with raises_exactly(ProfileError):
        impl.ring.prime_field(61)


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_truncation_parameters(impl_name: str, profile: str, data: st.DataObject) -> None:
    """truncate rejects d = 0, d >= l and rings other than Z_2^l with ValueError."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)
    ring_name = data.draw(ring_names(profile), label="ring")
    ring = get_ring(chosen, ring_name)
    if ring == chosen.ring:
        bits = data.draw(st.one_of(st.integers(-3, 0), st.integers(ring.bits, ring.bits + 3)), label="bits")
    else:
        bits = data.draw(st.integers(1, 3), label="bits")
    x = replicate(data.draw(share_triples(ring, 2), label="x"))
    with raises_exactly(ValueError, match="cannot truncate"):
        _case(impl, Case("truncate", profile, ring_name, (2,), x=x, bits=bits))


@IMPLEMENTATIONS
@PROFILES
def test_missing_message_times_out(impl_name: str, profile: str) -> None:
    """A party waiting for a message that never comes raises ProtocolAbort at its timeout."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring

    def program(ctx: PartyContext) -> None:
        if ctx.party == 1:
            impl.transport.recv_elements(ctx, 0, "never-sent", ring, 1)

    start = time.monotonic()
    with raises_exactly(ProtocolAbort):
        impl.run(program, profile=profile, seed=b"timeout", timeout_seconds=0.3)
    assert time.monotonic() - start < 5.0


# --- §6-§8: material, conversions, approximations and private compare -----------------------


def _comparison_shares(profile: str, values: list[int], seed: str) -> PartyShares:
    ring = get_profile(profile).ring
    generator = random.Random(seed)
    first = [generator.randrange(ring.modulus) for _ in values]
    second = [generator.randrange(ring.modulus) for _ in values]
    return replicate(
        [first, second, [(v - a - b) % ring.modulus for v, a, b in zip(values, first, second, strict=True)]]
    )


@IMPLEMENTATIONS
@PROFILES
def test_exhausted_pool(impl_name: str, profile: str) -> None:
    """ComparisonPool.take raises RuntimeError beyond the material generated (§6.4), also inside drelu."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)

    def program(ctx: PartyContext) -> list[int]:
        pool = impl.preprocessing.generate_comparison_pool(ctx, chosen, 3)
        taken = [pool.take(2).count]
        with raises_exactly(RuntimeError, match="comparison material exhausted"):
            pool.take(2)
        taken.append(pool.take(1).count)
        with raises_exactly(RuntimeError, match="comparison material exhausted"):
            pool.take(1)
        taken.append(pool.take(0).count)
        return taken

    assert impl.run(program, profile=profile, seed=b"pool").outputs == [[2, 1, 0]] * 3
    values = [1, (1 << 40) % chosen.ring.modulus, chosen.ring.modulus - 5]
    for operation, material in (("drelu", 2), ("relu", 1), ("relu_and_derivative", 2)):
        x = _comparison_shares(profile, values, operation)
        with raises_exactly(RuntimeError, match="comparison material exhausted"):
            _case(impl, Case(operation, profile, chosen.ring.name, (3,), x=x, material=material))
    rows = _comparison_shares(profile, [1, 2, 3, 4, 5, 6], "max")
    for operation in ("maximum", "argmax", "softmax"):
        with raises_exactly(RuntimeError, match="comparison material exhausted"):
            _case(impl, Case(operation, profile, chosen.ring.name, (2, 3), x=rows, material=3))


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize(("elements", "material"), [(2, 1), (2, 3), (1, 2), (0, 1)])
def test_material_of_wrong_count(impl_name: str, profile: str, elements: int, material: int) -> None:
    """sign_bits (§7.3) rejects material whose count differs from the input's element count: ShapeError."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    x = _comparison_shares(profile, [3] * elements, "material")
    with raises_exactly(ShapeError):
        _case(impl, Case("sign_bits", profile, ring.name, (elements,), x=x, material=material))


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_lift_bits_needs_z2(impl_name: str, profile: str, data: st.DataObject) -> None:
    """lift_bits and bit_to_ring (§6.1, §7.8) reject a sharing that is not in Z_2: ValueError."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)
    source = data.draw(st.sampled_from([chosen.ring, chosen.field]), label="source ring")
    target = data.draw(st.sampled_from([chosen.ring.name, "Zp", "Z2"]), label="target ring")
    operation = data.draw(st.sampled_from(["lift_bits", "bit_to_ring"]), label="operation")
    shape = data.draw(shapes_with_edges(max_elements=3), label="shape")
    x = replicate(data.draw(share_triples(source, element_count(shape)), label="x"))
    with raises_exactly(ValueError, match="expects a sharing in Z2"):
        _case(impl, Case(operation, profile, source.name, shape, x=x, target=target))


@IMPLEMENTATIONS
@PROFILES
@given(data=st.data())
def test_reciprocal_upper_below_one(impl_name: str, profile: str, data: st.DataObject) -> None:
    """reciprocal (§8.2) rejects an upper bound below 1, and NaN: ValueError."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    upper = data.draw(
        st.one_of(st.floats(max_value=1.0, exclude_max=True), st.just(math.nan), st.just(-math.inf)),
        label="upper",
    )
    x = replicate(data.draw(share_triples(ring, 2), label="x"))
    with raises_exactly(ValueError, match="upper bound of at least 1"):
        _case(impl, Case("reciprocal", profile, ring.name, (2,), x=x, upper=upper))


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (2, 0, 0)])
@pytest.mark.parametrize("operation", ["maximum", "argmax", "max_and_argmax", "softmax"])
def test_empty_last_axis(impl_name: str, profile: str, operation: str, shape: tuple[int, ...]) -> None:
    """maximum, argmax, max_and_argmax (§7.7) and softmax (§8.3) reject an empty last axis: ShapeError."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    x = _comparison_shares(profile, [7] * element_count(shape), "empty")
    with raises_exactly(ShapeError):
        impl.comparison.comparisons_for_max(shape)
    with raises_exactly(ShapeError):
        impl.nonlinear.comparisons_for_softmax(shape)
    with raises_exactly(ShapeError):
        _case(impl, Case(operation, profile, ring.name, shape, x=x, material=1))


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize("delta", [-1, 1, -48])
def test_tampered_compare_message(impl_name: str, profile: str, delta: int) -> None:
    """A private-compare message (§7.2 step 2, P0 to P2) of the wrong length: WireFormatError at P2."""
    impl = implementation(impl_name)
    ring = get_profile(profile).ring
    x = _comparison_shares(profile, [0, 1, ring.modulus - 1], "tamper")
    with raises_exactly(WireFormatError):
        _case(impl, Case("drelu", profile, ring.name, (3,), x=x, tamper=delta))


@IMPLEMENTATIONS
@PROFILES
@pytest.mark.parametrize("component", [0, 1])
@pytest.mark.parametrize("party", [0, 1, 2])
def test_inconsistent_shares_through_drelu(impl_name: str, profile: str, party: int, component: int) -> None:
    """One party's copy of one component of x changed by an odd multiple of 2^k: P0 and P1 open values c
    whose bit k differs, so their public bits v differ and §4.5 checked reveal of DReLU's output raises
    ShareConsistencyError."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)
    ring = chosen.ring
    x = _comparison_shares(profile, [5, ring.modulus - 9, 1 << 20], f"inconsistent/{party}/{component}")
    delta = 3 << chosen.comparison_bits
    tampered = [list(part) for part in x[party]]
    tampered[component][1] = (tampered[component][1] + delta) % ring.modulus
    x[party] = (tampered[0], tampered[1])
    with raises_exactly(ShareConsistencyError):
        _case(impl, Case("drelu", profile, ring.name, (3,), x=x, checked=True))
