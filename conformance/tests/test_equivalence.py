"""refimpl == fast, bit for bit.

For the same case and seed, both implementations must produce the same output shares
(first and second component of every party), the same revealed values, and the same
accounting: every party's transcript (and so ``PartyStats.transcript_hash``),
``bytes_sent``, ``messages_sent``, ``bytes_received`` and rounds. Local functions
(ring, randomness, wire encoding, local products and shifts) must return the same values,
or raise the same exception class.

The operations of chapters 2 to 5 and 12 are compared here, one case per example, on shapes
with every dimension at least 1; the scalar and empty shapes of every operation are explicit
cases (:func:`test_same_outcome_at_edge_shapes` and the ``*_at_edges`` tests), and so are a
few large cases in every mode (:func:`test_large_cases`): matrix products whose inner size
takes fast's multi-limb path (``fast.arithmetic.limb_layout``) and long elementwise
products and truncations, also checked against plaintext. Those of
chapters 6 to 8 (preprocessing, comparison, non-linear) are compared, with their offline
phase, by the properties of ``test_comparison.py`` and ``test_nonlinear.py``, which run
every example on both implementations.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.checks import outcome_differences
from conformance.examples import note_example
from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import (
    CORE_OPERATIONS,
    Case,
    Outcome,
    PartyShares,
    is_consistent,
    plain_result,
    replicate,
    run_case,
    truncation_target,
)
from conformance.strategies import (
    EDGE_MATRIX_SHAPES,
    EDGE_SHAPES,
    PROFILE_NAMES,
    Shape,
    cases,
    edge_case_id,
    edge_cases,
    element_lists,
    get_ring,
    keys,
    matrix_shapes,
    ring_names,
    seeds,
    shapes,
    share_triples,
)
from fast.arithmetic import limb_layout, limb_widths
from refimpl.ring import Ring, element_count, get_profile, to_signed

pytestmark = pytest.mark.skipif(
    set(selected_names()) != {"refimpl", "fast"},
    reason="MPBADNET_IMPLEMENTATIONS explicitly narrowed the implementations under test",
)


def _both() -> tuple[Implementation, Implementation]:
    return implementation("refimpl"), implementation("fast")


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("operation", sorted(CORE_OPERATIONS))
@given(data=st.data())
def test_same_outcome(operation: str, profile: str, data: st.DataObject) -> None:
    """Same shares, values, transcripts, hashes, bytes, messages and rounds for equal seeds."""
    case = data.draw(cases(operation, profile), label="case")
    seed = data.draw(seeds(), label="seed")
    _check_same_outcome(case, seed)


def _check_same_outcome(case: Case, seed: bytes) -> Outcome:
    """refimpl's outcome, after checking that fast's is the same in every field."""
    reference, fast = _both()
    outcome = run_case(reference, case, seed)
    differences = outcome_differences(outcome, run_case(fast, case, seed))
    assert not differences, "\n".join(differences)
    return outcome


EDGE_EXAMPLES = 4
"""Examples per explicit edge case (an empty shape leaves only the seed and ring to vary)."""


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize(
    ("operation", "shape", "y_shape"),
    [pytest.param(*case, id=edge_case_id(*case)) for case in edge_cases(sorted(CORE_OPERATIONS))],
)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_same_outcome_at_edge_shapes(
    operation: str, shape: Shape, y_shape: Shape | None, profile: str, data: st.DataObject
) -> None:
    """The scalar and empty shapes of every operation: the same outcome in every field."""
    case = data.draw(cases(operation, profile, shape, y_shape), label="case")
    _check_same_outcome(case, data.draw(seeds(), label="seed"))


LARGE_ELEMENTS = 50_000
"""Elements of the large elementwise cases."""
LARGE_INNER = 5000
"""Inner size of the large matrix products: 10,000 in fast's local product (4 limbs in Z_2^64)."""
LARGE_BUDGET_BITS = 12
"""A large case's truncations fail with probability at most 2^-12 in all (sum of |z| / 2^l). The
cases and their seed are pinned, so a run passes or fails the same way every time; the budget
bounds the chance that a legitimate change of the randomness makes one fail."""


def _random_shares(generator: random.Random, ring: Ring, values: list[int]) -> PartyShares:
    first = [generator.randrange(ring.modulus) for _ in values]
    second = [generator.randrange(ring.modulus) for _ in values]
    last = [(v - a - b) % ring.modulus for v, a, b in zip(values, first, second, strict=True)]
    return replicate([first, second, last])


def _signed_values(generator: random.Random, ring: Ring, count: int, magnitude: int) -> list[int]:
    return [generator.randint(-magnitude, magnitude) % ring.modulus for _ in range(count)]


def large_cases(profile_name: str) -> list[Case]:
    """Pinned pseudo-random large cases: long elementwise products and truncations, and matrix
    products at and beyond Z_2^64's change from 3 to 4 limbs (inner 2 k = 2,048 and 2,050)."""
    profile = get_profile(profile_name)
    ring = profile.ring
    generator = random.Random(f"large/{profile_name}")
    bits = profile.fractional_bits
    budget = (1 << (ring.bits - LARGE_BUDGET_BITS)) // LARGE_ELEMENTS

    def shares(count: int, magnitude: int = ring.modulus) -> PartyShares:
        return _random_shares(generator, ring, _signed_values(generator, ring, count, magnitude))

    n = LARGE_ELEMENTS
    found = [
        Case("mul", profile_name, ring.name, (n,), x=shares(n), y=shares(n)),
        Case("truncate", profile_name, ring.name, (n,), x=shares(n, budget), bits=bits),
        Case(
            "mul_truncate",
            profile_name,
            ring.name,
            (n,),
            x=shares(n, math.isqrt(budget)),
            y=shares(n, math.isqrt(budget)),
            bits=bits,
        ),
    ]
    for inner in (1024, 1025, LARGE_INNER):
        x_shape, y_shape = (2, inner), (inner, 3)
        found.append(
            Case(
                "matmul",
                profile_name,
                ring.name,
                x_shape,
                x=shares(2 * inner),
                y=shares(3 * inner),
                y_shape=y_shape,
            )
        )
        units = math.isqrt((1 << (ring.bits - LARGE_BUDGET_BITS)) // (6 * inner))
        found.append(
            Case(
                "matmul_truncate",
                profile_name,
                ring.name,
                x_shape,
                x=shares(2 * inner, units),
                y=shares(3 * inner, units),
                y_shape=y_shape,
                bits=bits,
            )
        )
    return found


def _large_id(case: Case) -> str:
    shapes_named = f"{case.shape}" + ("" if case.y_shape is None else f"x{case.y_shape}")
    return f"{case.profile}-{case.operation}-{shapes_named}".replace(" ", "")


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=_large_id(case)) for name in PROFILE_NAMES for case in large_cases(name)]
)
def test_large_cases(case: Case) -> None:
    """Large shapes, in every mode: the same outcome in every field, and correct against plaintext
    (exact, or within one unit for truncations)."""
    outcome = _check_same_outcome(case, b"large")
    assert outcome.shares is not None and is_consistent(outcome.shares)
    assert outcome.output is not None
    if case.operation in ("mul", "matmul"):
        assert outcome.output == plain_result(case)
        return
    result = to_signed(case.ring_object, outcome.output)
    errors = [abs(value - target) for value, target in zip(result, truncation_target(case), strict=True)]
    assert max(errors) < 1, f"largest truncation error {float(max(errors))} units"


def _outcome(function: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("raised", exception class name) of calling ``function``."""
    try:
        return "ok", function()
    except Exception as error:
        return "raised", type(error).__name__


def _same(reference: Callable[[], Any], fast: Callable[[], Any]) -> None:
    assert _outcome(reference) == _outcome(fast)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_ring_functions(profile: str, data: st.DataObject) -> None:
    """reduce, to_signed, decode_fixed, check_elements and element_count agree."""
    shape = data.draw(shapes(), label="shape")
    note_example(element_count(shape) > 0)
    check_ring_functions(profile, shape, data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=str)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_ring_functions_at_edges(profile: str, shape: Shape, data: st.DataObject) -> None:
    """The ring functions of the scalar and empty shapes agree."""
    check_ring_functions(profile, shape, data)


def check_ring_functions(profile: str, shape: Shape, data: st.DataObject) -> None:
    """The ring functions agree on elements of ``shape`` (and on as many integers, 0 for empty shapes)."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    values = data.draw(element_lists(ring, element_count(shape)), label="values")
    size = element_count(shape)
    integers = data.draw(
        st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=size, max_size=size), label="integers"
    )
    _same(
        lambda: reference.ring.reduce(ring, integers),
        lambda: fast.flat(fast.ring.reduce(ring, np.array(integers, dtype=np.int64))),
    )
    _same(
        lambda: reference.ring.to_signed(ring, values),
        lambda: fast.flat(fast.ring.to_signed(ring, fast.plain(ring, values, shape))),
    )
    _same(
        lambda: reference.ring.check_elements(ring, values, shape),
        lambda: fast.ring.check_elements(ring, fast.plain(ring, values, shape), shape),
    )
    _same(lambda: reference.ring.element_count(shape), lambda: fast.ring.element_count(shape))
    if ring == get_profile(profile).ring:
        profile_object = get_profile(profile)
        _same(
            lambda: reference.ring.decode_fixed(profile_object, values),
            lambda: fast.flat_floats(fast.ring.decode_fixed(profile_object, fast.plain(ring, values, shape))),
        )


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_randomness_functions(profile: str, data: st.DataObject) -> None:
    """prg_bytes, sample_width, bytes_to_elements, draw_elements, accepted_bytes, draw_below and
    draw_integers agree (Z_p is rejection-sampled: sample_width raises for it in both)."""
    count = data.draw(st.integers(1, 12), label="count")
    note_example(True)
    check_randomness_functions(profile, count, data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_randomness_functions_at_count_zero(profile: str, data: st.DataObject) -> None:
    """The randomness functions agree when asked for no elements."""
    check_randomness_functions(profile, 0, data)


def check_randomness_functions(profile: str, count: int, data: st.DataObject) -> None:
    """The randomness functions agree on ``count`` elements."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    key = data.draw(keys(), label="key")
    counter = data.draw(st.integers(0, (1 << 64) - 1), label="counter")
    label = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", max_size=12), label="label")
    _same(lambda: reference.randomness.sample_width(ring), lambda: fast.randomness.sample_width(ring))
    width = reference.randomness.sample_width(ring) if ring.is_power_of_two else 1
    _same(
        lambda: reference.randomness.prg_bytes(key, counter, label, count * width),
        lambda: fast.randomness.prg_bytes(key, counter, label, count * width),
    )
    data_bytes = reference.randomness.prg_bytes(key, counter, label, count * width)
    _same(
        lambda: reference.randomness.bytes_to_elements(ring, data_bytes, count),
        lambda: fast.flat(fast.randomness.bytes_to_elements(ring, data_bytes, count)),
    )
    _same(
        lambda: reference.randomness.draw_elements(
            reference.randomness.KeyStream(key, counter), ring, label, count
        ),
        lambda: fast.flat(
            fast.randomness.draw_elements(fast.randomness.KeyStream(key, counter), ring, label, count)
        ),
    )
    bound = data.draw(st.one_of(st.sampled_from([2, 66, 67, 256]), st.integers(-2, 300)), label="bound")
    _same(
        lambda: reference.randomness.accepted_bytes(key, counter, label, count, bound),
        lambda: fast.flat(fast.randomness.accepted_bytes(key, counter, label, count, bound)),
    )
    streams = [
        (reference.randomness.KeyStream(key, counter), fast.randomness.KeyStream(key, counter))
        for _ in range(2)
    ]
    _same(
        lambda: reference.randomness.draw_below(streams[0][0], label, count, bound),
        lambda: fast.flat(fast.randomness.draw_below(streams[0][1], label, count, bound)),
    )
    assert streams[0][0].counter == streams[0][1].counter
    integer_bound = data.draw(st.integers(1, 1 << 40), label="integer bound")
    _same(
        lambda: reference.randomness.draw_integers(streams[1][0], label, count, integer_bound),
        lambda: fast.flat(fast.randomness.draw_integers(streams[1][1], label, count, integer_bound)),
    )
    assert streams[1][0].counter == streams[1][1].counter


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_wire_functions(profile: str, data: st.DataObject) -> None:
    """encoded_length, encode_elements and decode_elements agree, also on malformed bytes."""
    count = data.draw(st.integers(1, 24), label="count")
    note_example(True)
    check_wire_functions(profile, count, data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_wire_functions_at_count_zero(profile: str, data: st.DataObject) -> None:
    """The wire functions agree on no elements (and on malformed bytes for none)."""
    check_wire_functions(profile, 0, data)


def check_wire_functions(profile: str, count: int, data: st.DataObject) -> None:
    """The wire functions agree on ``count`` elements."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    values = data.draw(element_lists(ring, count), label="values")
    assert reference.transport.encoded_length(ring, count) == fast.transport.encoded_length(ring, count)
    _same(
        lambda: reference.transport.encode_elements(ring, values),
        lambda: fast.transport.encode_elements(ring, fast.plain(ring, values, (count,))),
    )
    length = reference.transport.encoded_length(ring, count)
    raw = data.draw(
        st.one_of(st.binary(min_size=length, max_size=length), st.binary(max_size=length + 2)), label="raw"
    )
    _same(
        lambda: reference.transport.decode_elements(ring, raw, count),
        lambda: fast.flat(fast.transport.decode_elements(ring, raw, count)),
    )


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_local_arithmetic(profile: str, data: st.DataObject) -> None:
    """local_products, local_matrix_products, matmul_shape, shift_a and shift_b agree."""
    shape = data.draw(shapes(), label="shape")
    x_shape, y_shape = data.draw(matrix_shapes(), label="matrix shapes")
    note_example(element_count(shape) > 0)
    check_local_arithmetic(profile, shape, (x_shape[0], x_shape[1], y_shape[1]), data)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize(
    ("shape", "matrices"), list(zip(EDGE_SHAPES, EDGE_MATRIX_SHAPES, strict=True)), ids=str
)
@settings(max_examples=EDGE_EXAMPLES)
@given(data=st.data())
def test_local_arithmetic_at_edges(
    profile: str, shape: Shape, matrices: tuple[tuple[int, int], tuple[int, int]], data: st.DataObject
) -> None:
    """The local functions agree on the scalar and empty shapes and empty matrix products."""
    (rows, inner), (_, columns) = matrices
    check_local_arithmetic(profile, shape, (rows, inner, columns), data)


def check_local_arithmetic(
    profile: str, shape: Shape, matrix: tuple[int, int, int], data: st.DataObject
) -> None:
    """The local functions agree on shares of ``shape`` and (m, k) x (k, n) matrices."""
    reference, fast = _both()
    profile_object = get_profile(profile)
    ring = get_ring(profile_object, data.draw(ring_names(profile), label="ring"))
    count = element_count(shape)
    x = replicate(data.draw(share_triples(ring, count), label="x"))[0]
    y = replicate(data.draw(share_triples(ring, count), label="y"))[0]
    _same(
        lambda: reference.arithmetic.local_products(
            reference.make_share(ring, shape, *x), reference.make_share(ring, shape, *y)
        ),
        lambda: fast.flat(
            fast.arithmetic.local_products(fast.make_share(ring, shape, *x), fast.make_share(ring, shape, *y))
        ),
    )
    rows, inner, columns = matrix
    a = replicate(data.draw(share_triples(ring, rows * inner), label="a"))[1]
    b = replicate(data.draw(share_triples(ring, inner * columns), label="b"))[1]
    _same(
        lambda: reference.arithmetic.local_matrix_products(
            reference.make_share(ring, (rows, inner), *a), reference.make_share(ring, (inner, columns), *b)
        ),
        lambda: fast.flat(
            fast.arithmetic.local_matrix_products(
                fast.make_share(ring, (rows, inner), *a), fast.make_share(ring, (inner, columns), *b)
            )
        ),
    )
    _same(
        lambda: reference.arithmetic.matmul_shape(
            reference.make_share(ring, shape, *x), reference.make_share(ring, shape, *y)
        ),
        lambda: fast.arithmetic.matmul_shape(
            fast.make_share(ring, shape, *x), fast.make_share(ring, shape, *y)
        ),
    )
    arithmetic_ring = profile_object.ring
    values = data.draw(element_lists(arithmetic_ring, count), label="shifted")
    bits = data.draw(st.integers(1, arithmetic_ring.bits - 1), label="bits")
    _same(
        lambda: reference.arithmetic.shift_a(arithmetic_ring, values, bits),
        lambda: fast.flat(
            fast.arithmetic.shift_a(arithmetic_ring, fast.plain(arithmetic_ring, values, shape), bits)
        ),
    )
    _same(
        lambda: reference.arithmetic.shift_b(arithmetic_ring, values, bits),
        lambda: fast.flat(
            fast.arithmetic.shift_b(arithmetic_ring, fast.plain(arithmetic_ring, values, shape), bits)
        ),
    )


def extreme_limb_values(ring: Ring, inner: int) -> tuple[int, int, int]:
    """The elements whose signed limbs in fast's layout for ``inner`` are all -2^(w_j - 1), all
    2^(w_j - 1) - 1 (odd) and all 2^(w_j - 1) - 2 (even): the largest limb products."""
    limbs, width = limb_layout(ring.bits, inner)
    widths = limb_widths(ring.bits, limbs, width)
    offset = sum(1 << (limb_bits - 1 + width * index) for index, limb_bits in enumerate(widths))
    ones = sum(1 << (width * index) for index in range(limbs))
    return -offset % ring.modulus, (-offset - 1) % ring.modulus, (-offset - 1 - ones) % ring.modulus


LIMB_BOUNDARIES = {"paper": (1024, 4096), "wide": (1024, 1025)}
"""Inner sizes k of the local matrix products (fast's inner 2 k): in Z_2^64, 2,048 is the last of
3 limbs and 2,050 takes 4; Z_2^32 keeps 2 limbs up to 2^23."""


@pytest.mark.parametrize(
    ("profile", "inner"), [(name, inner) for name, inners in LIMB_BOUNDARIES.items() for inner in inners]
)
def test_local_matrix_products_at_limb_boundaries(profile: str, inner: int) -> None:
    """local_matrix_products agree on operands of extreme limbs: 2 k - 1 odd limb products and one
    even one of the same sign, an odd sum above 2^53 once 2 k passes the layout's limit, which a
    layout with too few limbs for the inner size would round."""
    reference, fast = _both()
    ring = get_profile(profile).ring
    lowest, odd, even = extreme_limb_values(ring, 2 * inner)
    top = ring.modulus - 1
    for a, b, c in ((odd, even, odd), (lowest, odd, lowest), (top, ring.modulus // 2, top)):
        x = ([a] * inner, [a] * (inner - 1) + [b])
        y = ([c] * 2 * inner, [0] * 2 * inner)
        expected = reference.arithmetic.local_matrix_products(
            reference.make_share(ring, (1, inner), *x), reference.make_share(ring, (inner, 2), *y)
        )
        products = fast.arithmetic.local_matrix_products(
            fast.make_share(ring, (1, inner), *x), fast.make_share(ring, (inner, 2), *y)
        )
        assert fast.flat(products) == expected, f"operands {a}, {b} and {c}"
