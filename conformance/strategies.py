"""Hypothesis strategies: ring elements, shapes, fixed-point values, share triples, seeds, cases.

Everything is in refimpl's plain language (flat lists of ``int``, shapes beside them) and
small on purpose: refimpl is pure Python, and the suite runs every property on both
implementations and both profiles.

Generated shapes have dimensions of at least 1, so that every example computes something:
the scalar shape ``()`` and the empty shapes (:data:`EDGE_SHAPES`, :data:`EDGE_MATRIX_SHAPES`,
counts of 0) are explicit cases, drawn by passing ``shape`` (and ``y_shape``) to
:func:`cases`. :func:`cases` and :func:`bundles` note every case they draw with a generated
shape in :mod:`conformance.examples`.

Truncation is probabilistic: an element z fails (error of about 2^(l-d) instead of below
one unit) with probability |z| / 2^l (spec §5.3). The truncation strategies keep every
example's total failure probability, the sum of |z| / 2^l over its elements, at most
2^-:data:`FAILURE_BUDGET_BITS`, so that a correctness property may demand an error below
one unit for every element; failures at large |z| are counted by their own statistical test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from hypothesis import strategies as st

from conformance.examples import note_case
from conformance.operations import COMPUTING_PARTIES, Case, PartyShares, replicate
from refimpl.ring import BINARY, Profile, Ring, element_count, encode_fixed, get_profile, prime_field
from refimpl.transport import encode_elements

PROFILE_NAMES = ("paper", "wide")
FAILURE_BUDGET_BITS = 20
"""Per example, the truncation failure probability is at most 2^-20 (see the module docstring)."""
MAX_ELEMENTS = 6
"""Largest element count of a generated shape: an example's time is mostly hypothesis drawing its
elements and share components, so more elements cost more than they exercise."""
MAX_SIDE = 4
"""Largest dimension of a generated shape or matrix."""
EDGE_SHAPES: tuple[tuple[int, ...], ...] = ((), (0,), (2, 0), (0, 3))
"""The scalar shape and empty shapes, which the strategies leave to explicit cases."""
EDGE_MATRIX_SHAPES: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((0, 2), (2, 3)),
    ((2, 0), (0, 3)),
    ((2, 3), (3, 0)),
    ((0, 0), (0, 0)),
)
"""Matrix products with no rows, inner size 0, no columns, and all three."""
Shape = tuple[int, ...]


def rings(profile: Profile) -> list[Ring]:
    """The rings a profile computes in: Z_2^l, Z_p and Z_2."""
    return [profile.ring, prime_field(profile.prime), BINARY]


@cache
def ring_names(profile_name: str) -> st.SearchStrategy[str]:
    """The name of one of the profile's rings: "Z2^32"/"Z2^64", "Zp" or "Z2"."""
    return st.sampled_from([ring.name for ring in rings(get_profile(profile_name))])


@cache
def ring_elements(ring: Ring) -> st.SearchStrategy[int]:
    """Canonical elements of ``ring``, biased towards 0, 1, -1, 2^(l-1) and its neighbours."""
    modulus = ring.modulus
    candidates = {0, 1, 2, modulus - 1, modulus - 2, modulus // 2, modulus // 2 - 1, modulus // 2 + 1}
    edges = sorted(value for value in candidates if 0 <= value < modulus)
    return st.one_of(st.sampled_from(edges), st.integers(0, modulus - 1))


@cache
def element_lists(ring: Ring, count: int) -> st.SearchStrategy[list[int]]:
    """Exactly ``count`` elements of ``ring``."""
    return st.lists(ring_elements(ring), min_size=count, max_size=count)


@st.composite
def _bounded_shape(draw: st.DrawFn, max_dims: int, max_elements: int) -> Shape:
    """1 to ``max_dims`` dimensions in [1, :data:`MAX_SIDE`], each within what the others leave."""
    rank = draw(st.integers(1, max_dims))
    shape: list[int] = []
    for _ in range(rank):
        room = max_elements // max(element_count(tuple(shape)), 1)
        shape.append(draw(st.integers(1, max(1, min(MAX_SIDE, room)))))
    return tuple(shape)


@cache
def shapes(max_dims: int = 3, max_elements: int = MAX_ELEMENTS) -> st.SearchStrategy[Shape]:
    """Row-major shapes of 1 to ``max_dims`` dimensions, each at least 1, and at most ``max_elements``
    elements. The scalar and empty shapes are :data:`EDGE_SHAPES`."""
    return _bounded_shape(max_dims, max_elements)


@cache
def shapes_with_edges(max_elements: int = MAX_ELEMENTS) -> st.SearchStrategy[Shape]:
    """:func:`shapes` or one of :data:`EDGE_SHAPES` (for error properties, where they matter)."""
    return st.one_of(st.sampled_from(EDGE_SHAPES), shapes(max_elements=max_elements))


COUNTED_OPERATIONS = ("zero_share", "recv_elements", "encode_fixed")
"""Operations sized by a count: their edge case is the count 0."""


def edge_shapes(operation: str) -> list[tuple[Shape, Shape | None]]:
    """The explicit edge shapes of ``operation``: (shape, y_shape), y_shape only for products."""
    if operation in ("matmul", "matmul_truncate"):
        return list(EDGE_MATRIX_SHAPES)
    if operation in COUNTED_OPERATIONS:
        return [((0,), None)]
    return [(shape, None) for shape in EDGE_SHAPES]


def edge_cases(operations: list[str]) -> list[tuple[str, Shape, Shape | None]]:
    """(operation, shape, y_shape) for every edge shape of every operation."""
    return [
        (operation, shape, y_shape) for operation in operations for shape, y_shape in edge_shapes(operation)
    ]


def edge_case_id(operation: str, shape: Shape, y_shape: Shape | None) -> str:
    """A test id naming an edge case: "matmul-(2, 0)(0, 3)"."""
    return f"{operation}-{shape}{'' if y_shape is None else y_shape}"


@cache
def matrix_shapes(
    max_dimension: int = MAX_SIDE,
) -> st.SearchStrategy[tuple[tuple[int, int], tuple[int, int]]]:
    """Shapes ((m, k), (k, n)) of a matrix product, each dimension in [1, ``max_dimension``]."""
    dimension = st.integers(1, max_dimension)
    return st.tuples(dimension, dimension, dimension).map(lambda mkn: ((mkn[0], mkn[1]), (mkn[1], mkn[2])))


@cache
def share_triples(ring: Ring, count: int) -> st.SearchStrategy[list[list[int]]]:
    """Three arbitrary additive components (x_0, x_1, x_2) of ``count`` elements each."""
    return st.lists(element_lists(ring, count), min_size=COMPUTING_PARTIES, max_size=COMPUTING_PARTIES)


@st.composite
def components_of(draw: st.DrawFn, ring: Ring, values: list[int]) -> list[list[int]]:
    """Additive components (x_0, x_1, x_2) of the given ``values``: x_0, x_1 drawn, x_2 the rest."""
    first = draw(element_lists(ring, len(values)))
    second = draw(element_lists(ring, len(values)))
    last = [(v - a - b) % ring.modulus for v, a, b in zip(values, first, second, strict=True)]
    return [first, second, last]


@cache
def replicated_shares(ring: Ring, count: int) -> st.SearchStrategy[PartyShares]:
    """Consistent replicated shares of an arbitrary value: P_i holds (x_i, x_{i+1})."""
    return share_triples(ring, count).map(replicate)


def shares_of(ring: Ring, values: list[int]) -> st.SearchStrategy[PartyShares]:
    """Consistent replicated shares of the given ``values``."""
    return components_of(ring, values).map(replicate)


@cache
def seeds() -> st.SearchStrategy[bytes]:
    """Test seeds that pin every party's private key (``run_parties(seed=...)``)."""
    return st.binary(min_size=0, max_size=16)


@cache
def keys() -> st.SearchStrategy[bytes]:
    """32-byte PRG keys."""
    return st.binary(min_size=32, max_size=32)


def safe_bound(profile: Profile) -> float:
    """The largest float x with round(x * 2^f) < 2^(l - 1), so that x and -x both encode.

    Just below 2^(l - 1 - f): reals within half a unit of 2^(l - 1 - f) round up to
    2^(l - 1), which is outside the ring's signed range.
    """
    scale = 1 << profile.fractional_bits
    limit = 1 << (profile.ring_bits - 1)
    bound = ((1 << (profile.ring_bits - 1)) - 1) / scale
    while round(bound * scale) >= limit:
        bound = math.nextafter(bound, 0.0)
    return bound


@cache
def fixed_point_values(profile: Profile, max_magnitude: float | None = None) -> st.SearchStrategy[float]:
    """Finite reals x with |x| <= ``max_magnitude`` (default: just inside the safe range).

    Half dyadic values k / 2^f (exactly representable), half arbitrary floats (exercising
    round-half-to-even in the encoding).
    """
    scale = 1 << profile.fractional_bits
    if max_magnitude is None:
        max_magnitude = safe_bound(profile)
    units = math.floor(max_magnitude * scale)
    dyadic = st.integers(-units, units).map(lambda k: k / scale)
    arbitrary = st.floats(-max_magnitude, max_magnitude, allow_nan=False, allow_infinity=False)
    return st.one_of(dyadic, arbitrary)


@st.composite
def fixed_point_encodings(draw: st.DrawFn, profile: Profile, count: int, max_units: int) -> list[int]:
    """Encodings of ``count`` reals whose encoding has magnitude at most ``max_units``."""
    reals = draw(
        st.lists(
            fixed_point_values(profile, max_units / (1 << profile.fractional_bits)),
            min_size=count,
            max_size=count,
        )
    )
    return encode_fixed(profile, reals)


def truncation_limit(profile: Profile, count: int) -> int:
    """Largest |z| per element keeping the example's failure probability below 2^-20."""
    return (1 << (profile.ring_bits - FAILURE_BUDGET_BITS)) // max(count, 1)


@st.composite
def cases(
    draw: st.DrawFn,
    operation: str,
    profile_name: str,
    shape: Shape | None = None,
    y_shape: Shape | None = None,
) -> Case:
    """A valid :class:`Case` of ``operation`` under profile ``profile_name``, noted in
    :mod:`conformance.examples`; or, with ``shape`` (and for a matrix product ``y_shape``)
    given, a case of that shape (a count of ``element_count(shape)``), not noted."""
    if shape is None:
        case = _case(draw, operation, profile_name, None)
        note_case(case)
        return case
    return _case(draw, operation, profile_name, (shape, y_shape or ()))


def _shape(draw: st.DrawFn, pinned: tuple[Shape, Shape] | None) -> Shape:
    return draw(shapes()) if pinned is None else pinned[0]


def _count(draw: st.DrawFn, pinned: tuple[Shape, Shape] | None, most: int) -> int:
    return draw(st.integers(1, most)) if pinned is None else element_count(pinned[0])


def _matrix_shapes(draw: st.DrawFn, pinned: tuple[Shape, Shape] | None) -> tuple[Shape, Shape]:
    return draw(matrix_shapes()) if pinned is None else pinned


def _case(draw: st.DrawFn, operation: str, profile_name: str, pinned: tuple[Shape, Shape] | None) -> Case:
    """The case of :func:`cases`, its shapes drawn or ``pinned``."""
    profile = get_profile(profile_name)
    arithmetic = profile.ring.name
    match operation:
        case "share_input" | "deal_input":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = _shape(draw, pinned)
            values = draw(element_lists(ring, element_count(shape)))
            owner = draw(st.integers(0, COMPUTING_PARTIES - 1)) if operation == "share_input" else 0
            return Case(operation, profile_name, ring_name, shape, values=values, owner=owner)
        case "reveal" | "reveal_checked" | "neg" | "reveal_to":
            ring_name = draw(ring_names(profile_name))
            shape = _shape(draw, pinned)
            x = draw(replicated_shares(get_ring(profile, ring_name), element_count(shape)))
            receiver = draw(st.integers(0, COMPUTING_PARTIES)) if operation == "reveal_to" else 0
            return Case(operation, profile_name, ring_name, shape, x=x, receiver=receiver)
        case "add" | "sub" | "mul":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = _shape(draw, pinned)
            count = element_count(shape)
            x = draw(replicated_shares(ring, count))
            y = draw(replicated_shares(ring, count))
            return Case(operation, profile_name, ring_name, shape, x=x, y=y)
        case "add_public" | "mul_public":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = _shape(draw, pinned)
            count = element_count(shape)
            x = draw(replicated_shares(ring, count))
            scalar = st.integers(-2 * ring.modulus, 2 * ring.modulus)
            constant: int | list[int] = draw(st.one_of(scalar, element_lists(ring, count)))
            return Case(operation, profile_name, ring_name, shape, x=x, constant=constant)
        case "matmul":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            x_shape, y_shape = _matrix_shapes(draw, pinned)
            x = draw(replicated_shares(ring, element_count(x_shape)))
            y = draw(replicated_shares(ring, element_count(y_shape)))
            return Case(operation, profile_name, ring_name, x_shape, x=x, y=y, y_shape=y_shape)
        case "truncate":
            shape = _shape(draw, pinned)
            count = element_count(shape)
            values = draw(fixed_point_encodings(profile, count, truncation_limit(profile, count)))
            bits = draw(st.one_of(st.just(profile.fractional_bits), st.integers(1, profile.ring_bits - 1)))
            x = draw(shares_of(profile.ring, values))
            return Case(operation, profile_name, arithmetic, shape, x=x, bits=bits)
        case "mul_truncate":
            shape = _shape(draw, pinned)
            count = element_count(shape)
            units = math.isqrt(truncation_limit(profile, count))
            x = draw(shares_of(profile.ring, draw(fixed_point_encodings(profile, count, units))))
            y = draw(shares_of(profile.ring, draw(fixed_point_encodings(profile, count, units))))
            return Case(operation, profile_name, arithmetic, shape, x=x, y=y, bits=profile.fractional_bits)
        case "matmul_truncate":
            x_shape, y_shape = _matrix_shapes(draw, pinned)
            inner = max(x_shape[1], 1)
            units = math.isqrt(truncation_limit(profile, x_shape[0] * y_shape[1]) // inner)
            x_values = draw(fixed_point_encodings(profile, element_count(x_shape), units))
            y_values = draw(fixed_point_encodings(profile, element_count(y_shape), units))
            x = draw(shares_of(profile.ring, x_values))
            y = draw(shares_of(profile.ring, y_values))
            return Case(
                operation,
                profile_name,
                arithmetic,
                x_shape,
                x=x,
                y=y,
                y_shape=y_shape,
                bits=profile.fractional_bits,
            )
        case "prss_share":
            return Case(operation, profile_name, draw(ring_names(profile_name)), _shape(draw, pinned))
        case "zero_share":
            return Case(
                operation,
                profile_name,
                draw(ring_names(profile_name)),
                count=_count(draw, pinned, MAX_ELEMENTS),
            )
        case "encode_fixed":
            size = _count(draw, pinned, MAX_ELEMENTS)
            reals = draw(st.lists(fixed_point_values(profile), min_size=size, max_size=size))
            return Case(operation, profile_name, arithmetic, (len(reals),), reals=reals)
        case operation if operation in COMPARISON_STRATEGIES and pinned is None:
            return draw(COMPARISON_STRATEGIES[operation](profile_name))
        case "recv_elements":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            count = _count(draw, pinned, 2 * MAX_ELEMENTS)
            values = draw(element_lists(ring, count))
            return Case(
                operation,
                profile_name,
                ring_name,
                (count,),
                count=count,
                payload=encode_elements(ring, values),
            )
    raise ValueError(f"no strategy for operation {operation!r}")


def get_ring(profile: Profile, name: str) -> Ring:
    """The profile's ring called ``name``."""
    for ring in rings(profile):
        if ring.name == name:
            return ring
    raise ValueError(f"profile {profile.name} has no ring {name!r}")


# --- §6 preprocessing, §7 comparison, §8 non-linear approximations ----------------------------

COMPARISON_ELEMENTS = 4
"""Largest element count of a comparison operand (every element costs a comparison in refimpl)."""
MAX_CLASSES = 5
"""Largest last axis of a maximum, argmax or softmax operand."""
EXP_LOWEST = -40.0
"""The exponential's inputs are drawn from [-40, 0] (clamped below -32), plus far-out values."""
WIDE_LOGIT = 20.0
"""Softmax logits in [-20, 20] for ``wide`` (the issue's domain)."""
PAPER_LOGIT = 5.0
"""Softmax logits in [-5, 5] for ``paper``, where its results are meaningful at all (§8.3)."""
RECIPROCAL_UPPER = 10.0
"""Reciprocal upper bounds S are drawn from [1, 10]; inputs from [1, S]."""


def signed_values(profile: Profile, bits: int) -> st.SearchStrategy[int]:
    """Signed integers in [-2^bits, 2^bits), biased to the ends, 0, +-1 and small values."""
    low, high = -(1 << bits), (1 << bits) - 1
    edges = [low, low + 1, -1, 0, 1, high - 1, high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(-300, 300))


def comparison_domain(profile: Profile) -> st.SearchStrategy[int]:
    """DReLU inputs: signed x with -2^k <= x < 2^k (§7.3), as ring elements."""
    modulus = profile.ring.modulus
    return signed_values(profile, profile.comparison_bits).map(lambda value: value % modulus)


def max_domain(profile: Profile) -> st.SearchStrategy[int]:
    """Maximum inputs: pairwise differences below 2^k: signed x in [-2^(k-1), 2^(k-1)), as ring elements."""
    modulus = profile.ring.modulus
    return signed_values(profile, profile.comparison_bits - 1).map(lambda value: value % modulus)


@cache
def comparison_shapes() -> st.SearchStrategy[Shape]:
    """Shapes of comparison operands: at most :data:`COMPARISON_ELEMENTS` elements, none empty."""
    return shapes(max_elements=COMPARISON_ELEMENTS)


@cache
def last_axis_shapes(
    max_classes: int = MAX_CLASSES, max_elements: int = 6
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes (..., C) with C >= 1 for operations over the last axis: (C,) and (R, C), R >= 1."""
    classes = st.integers(1, max_classes)
    leading = st.lists(st.integers(1, 3), max_size=1)
    return (
        st.tuples(leading, classes)
        .map(lambda pair: (*pair[0], pair[1]))
        .filter(lambda shape: element_count(shape) <= max_elements)
    )


Value = TypeVar("Value")


@st.composite
def tied_values(draw: st.DrawFn, values: st.SearchStrategy[Value], count: int) -> list[Value]:
    """``count`` values from ``values``, often repeating a few of them (ties for max and argmax)."""
    pool = draw(st.lists(values, min_size=1, max_size=3))
    return draw(st.lists(st.one_of(st.sampled_from(pool), values), min_size=count, max_size=count))


@st.composite
def _lift_case(draw: st.DrawFn, operation: str, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    shape = draw(comparison_shapes())
    x = draw(replicated_shares(BINARY, element_count(shape)))
    target = draw(st.sampled_from([ring.name for ring in rings(profile)]))
    return Case(operation, profile_name, BINARY.name, shape, x=x, target=target)


@st.composite
def _mask_bits_case(draw: st.DrawFn, profile_name: str) -> Case:
    """mask_bits of arbitrary shares, or (x absent) of a PRSS mask; widths 2 to l, k + 1 often."""
    profile = get_profile(profile_name)
    ring = profile.ring
    shape = draw(comparison_shapes())
    width = draw(st.one_of(st.just(profile.comparison_bits + 1), st.integers(2, ring.bits)))
    prss = draw(st.booleans())
    x = None if prss else draw(replicated_shares(ring, element_count(shape)))
    return Case("mask_bits", profile_name, ring.name, shape, x=x, bits=width)


@st.composite
def _material_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    count = draw(st.integers(1, 3))
    return Case("generate_comparison_material", profile_name, profile.ring.name, count=count)


@st.composite
def _compare_vector_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    count = draw(st.integers(1, 3))
    values = draw(element_lists(profile.ring, count))
    return Case("compare_vector", profile_name, profile.ring.name, (count,), values=values)


@st.composite
def _unary_case(draw: st.DrawFn, operation: str, profile_name: str) -> Case:
    """drelu, relu, relu_and_derivative and sign_bits on inputs in the DReLU domain."""
    profile = get_profile(profile_name)
    shape = draw(comparison_shapes())
    values = draw(
        st.lists(comparison_domain(profile), min_size=element_count(shape), max_size=element_count(shape))
    )
    x = draw(shares_of(profile.ring, values))
    return Case(operation, profile_name, profile.ring.name, shape, x=x)


@st.composite
def _compare_case(draw: st.DrawFn, profile_name: str) -> Case:
    """x >= y with y arbitrary and x - y in the DReLU domain."""
    profile = get_profile(profile_name)
    ring = profile.ring
    shape = draw(comparison_shapes())
    count = element_count(shape)
    y_values = draw(element_lists(ring, count))
    differences = draw(st.lists(comparison_domain(profile), min_size=count, max_size=count))
    x_values = [(a + d) % ring.modulus for a, d in zip(y_values, differences, strict=True)]
    x = draw(shares_of(ring, x_values))
    y = draw(shares_of(ring, y_values))
    return Case("compare", profile_name, ring.name, shape, x=x, y=y)


@st.composite
def _select_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    ring = profile.ring
    shape = draw(comparison_shapes())
    count = element_count(shape)
    bits = draw(st.lists(st.integers(0, 1), min_size=count, max_size=count))
    bit = draw(shares_of(ring, bits))
    x = draw(replicated_shares(ring, count))
    y = draw(replicated_shares(ring, count))
    return Case("select_shares", profile_name, ring.name, shape, x=x, y=y, bit=bit)


@st.composite
def _max_case(draw: st.DrawFn, operation: str, profile_name: str) -> Case:
    """maximum, argmax and max_and_argmax over (..., C), values in [-2^(k-1), 2^(k-1)) with ties."""
    profile = get_profile(profile_name)
    shape = draw(last_axis_shapes())
    values = draw(tied_values(max_domain(profile), element_count(shape)))
    x = draw(shares_of(profile.ring, values))
    return Case(operation, profile_name, profile.ring.name, shape, x=x)


def _reals_to_units(profile: Profile, reals: list[float]) -> list[int]:
    return encode_fixed(profile, reals)


@cache
def exp_inputs(profile: Profile) -> st.SearchStrategy[float]:
    """Exponential inputs: [-40, 0] with its edges (0, -u, -32 +- u, -40) and a few far-out values."""
    unit = 2.0**-profile.fractional_bits
    edges = [0.0, -unit, -1.0, -32.0 + unit, -32.0, -32.0 - unit, EXP_LOWEST, -1000.0]
    return st.one_of(
        st.sampled_from(edges),
        fixed_point_values(profile, -EXP_LOWEST).map(lambda value: -abs(value)),
        st.floats(-1.0, 0.0),
    )


@st.composite
def _exp_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    shape = draw(shapes(max_elements=3))
    reals = draw(st.lists(exp_inputs(profile), min_size=element_count(shape), max_size=element_count(shape)))
    x = draw(shares_of(profile.ring, _reals_to_units(profile, reals)))
    return Case("exp_nonpositive", profile_name, profile.ring.name, shape, x=x)


@st.composite
def reciprocal_inputs(draw: st.DrawFn, profile: Profile, upper: float, count: int) -> list[int]:
    """Encodings of ``count`` reals in [1, upper], biased to 1, 1 + u, upper - u and upper."""
    scale = 1 << profile.fractional_bits
    low, high = scale, math.floor(upper * scale)
    edges = sorted({low, min(low + 1, high), max(high - 1, low), high})
    units = draw(
        st.lists(st.one_of(st.sampled_from(edges), st.integers(low, high)), min_size=count, max_size=count)
    )
    return [unit % profile.ring.modulus for unit in units]


@st.composite
def _reciprocal_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    shape = draw(shapes(max_elements=3))
    upper = draw(st.one_of(st.sampled_from([1.0, 2.0, RECIPROCAL_UPPER]), st.floats(1.0, RECIPROCAL_UPPER)))
    units = draw(reciprocal_inputs(profile, upper, element_count(shape)))
    x = draw(shares_of(profile.ring, units))
    return Case("reciprocal", profile_name, profile.ring.name, shape, x=x, upper=upper)


def logit_bound(profile: Profile) -> float:
    """The logits' range for softmax: [-20, 20] for ``wide``, [-5, 5] for ``paper``."""
    return WIDE_LOGIT if profile.ring_bits == 64 else PAPER_LOGIT


@st.composite
def logit_rows(draw: st.DrawFn, profile: Profile, count: int) -> list[int]:
    """Encodings of ``count`` logits in [-L, L] (:func:`logit_bound`), with ties and the ends."""
    bound = logit_bound(profile)
    reals = st.one_of(st.sampled_from([-bound, 0.0, bound]), fixed_point_values(profile, bound))
    return encode_fixed(profile, draw(tied_values(reals, count)))


@st.composite
def _softmax_case(draw: st.DrawFn, profile_name: str) -> Case:
    profile = get_profile(profile_name)
    shape = draw(last_axis_shapes(max_elements=6))
    x = draw(shares_of(profile.ring, draw(logit_rows(profile, element_count(shape)))))
    return Case("softmax", profile_name, profile.ring.name, shape, x=x)


def _bind(
    builder: Callable[..., st.SearchStrategy[Case]], *leading: str
) -> Callable[[str], st.SearchStrategy[Case]]:
    return lambda profile_name: builder(*leading, profile_name)


COMPARISON_STRATEGIES: dict[str, Callable[[str], st.SearchStrategy[Case]]] = {
    "lift_bits": _bind(_lift_case, "lift_bits"),
    "bit_to_ring": _bind(_lift_case, "bit_to_ring"),
    "mask_bits": _bind(_mask_bits_case),
    "generate_comparison_material": _bind(_material_case),
    "compare_vector": _bind(_compare_vector_case),
    "sign_bits": _bind(_unary_case, "sign_bits"),
    "drelu": _bind(_unary_case, "drelu"),
    "relu": _bind(_unary_case, "relu"),
    "relu_and_derivative": _bind(_unary_case, "relu_and_derivative"),
    "compare": _bind(_compare_case),
    "select_shares": _bind(_select_case),
    "maximum": _bind(_max_case, "maximum"),
    "argmax": _bind(_max_case, "argmax"),
    "max_and_argmax": _bind(_max_case, "max_and_argmax"),
    "exp_nonpositive": _bind(_exp_case),
    "reciprocal": _bind(_reciprocal_case),
    "softmax": _bind(_softmax_case),
}
"""A strategy of valid cases for every operation of chapters 6 to 8, by profile name."""

BUNDLES: dict[str, tuple[str, ...]] = {
    "preprocessing": ("lift_bits", "bit_to_ring", "mask_bits", "generate_comparison_material"),
    "comparison": (
        "compare_vector",
        "sign_bits",
        "drelu",
        "relu",
        "relu_and_derivative",
        "compare",
        "select_shares",
        "maximum",
        "argmax",
        "max_and_argmax",
    ),
    "nonlinear": ("exp_nonpositive", "reciprocal", "softmax"),
}
"""Operations that one example runs together in one run, sharing one pool of material."""


@st.composite
def bundles(draw: st.DrawFn, bundle: str, profile_name: str) -> list[Case]:
    """One case of every operation of ``bundle``, in the bundle's order, each noted as a member."""
    drawn = []
    for operation in BUNDLES[bundle]:
        case = draw(COMPARISON_STRATEGIES[operation](profile_name), label=operation)
        note_case(case, operation)
        drawn.append(case)
    return drawn
