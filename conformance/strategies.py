"""Hypothesis strategies: ring elements, shapes, fixed-point values, share triples, seeds, cases.

Everything is in refimpl's plain language (flat lists of ``int``, shapes beside them) and
small on purpose: refimpl is pure Python, and the suite runs every property on both
implementations and both profiles.

Truncation is probabilistic: an element z fails (error of about 2^(l-d) instead of below
one unit) with probability |z| / 2^l (spec §5.3). The truncation strategies keep every
example's total failure probability, the sum of |z| / 2^l over its elements, at most
2^-:data:`FAILURE_BUDGET_BITS`, so that a correctness property may demand an error below
one unit for every element; failures at large |z| are counted by their own statistical test.
"""

from __future__ import annotations

import math
from functools import cache

from hypothesis import strategies as st

from conformance.operations import COMPUTING_PARTIES, Case, PartyShares, replicate
from refimpl.ring import BINARY, Profile, Ring, element_count, encode_fixed, get_profile, prime_field
from refimpl.transport import encode_elements

PROFILE_NAMES = ("paper", "wide")
FAILURE_BUDGET_BITS = 20
"""Per example, the truncation failure probability is at most 2^-20 (see the module docstring)."""
MAX_ELEMENTS = 6
"""Largest element count of a generated shape (refimpl is pure Python)."""


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


@cache
def shapes(
    max_dims: int = 3, max_elements: int = MAX_ELEMENTS, min_dims: int = 0
) -> st.SearchStrategy[tuple[int, ...]]:
    """Row-major shapes with up to ``max_dims`` dimensions and ``max_elements`` elements.

    Includes the scalar shape ``()`` and empty shapes such as ``(0,)`` and ``(2, 0)``.
    """
    return (
        st.lists(st.integers(0, 3), min_size=min_dims, max_size=max_dims)
        .map(tuple)
        .filter(lambda shape: element_count(shape) <= max_elements)
    )


@cache
def matrix_shapes(max_dimension: int = 3) -> st.SearchStrategy[tuple[tuple[int, int], tuple[int, int]]]:
    """Shapes ((m, k), (k, n)) of a matrix product, each dimension in [0, ``max_dimension``]."""
    dimension = st.integers(0, max_dimension)
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
def cases(draw: st.DrawFn, operation: str, profile_name: str) -> Case:
    """A valid :class:`Case` of ``operation`` under profile ``profile_name``."""
    profile = get_profile(profile_name)
    arithmetic = profile.ring.name
    match operation:
        case "share_input" | "deal_input":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = draw(shapes())
            values = draw(element_lists(ring, element_count(shape)))
            owner = draw(st.integers(0, COMPUTING_PARTIES - 1)) if operation == "share_input" else 0
            return Case(operation, profile_name, ring_name, shape, values=values, owner=owner)
        case "reveal" | "reveal_checked" | "neg" | "reveal_to":
            ring_name = draw(ring_names(profile_name))
            shape = draw(shapes())
            x = draw(replicated_shares(get_ring(profile, ring_name), element_count(shape)))
            receiver = draw(st.integers(0, COMPUTING_PARTIES)) if operation == "reveal_to" else 0
            return Case(operation, profile_name, ring_name, shape, x=x, receiver=receiver)
        case "add" | "sub" | "mul":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = draw(shapes())
            count = element_count(shape)
            x = draw(replicated_shares(ring, count))
            y = draw(replicated_shares(ring, count))
            return Case(operation, profile_name, ring_name, shape, x=x, y=y)
        case "add_public" | "mul_public":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            shape = draw(shapes())
            count = element_count(shape)
            x = draw(replicated_shares(ring, count))
            scalar = st.integers(-2 * ring.modulus, 2 * ring.modulus)
            constant: int | list[int] = draw(st.one_of(scalar, element_lists(ring, count)))
            return Case(operation, profile_name, ring_name, shape, x=x, constant=constant)
        case "matmul":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            x_shape, y_shape = draw(matrix_shapes())
            x = draw(replicated_shares(ring, element_count(x_shape)))
            y = draw(replicated_shares(ring, element_count(y_shape)))
            return Case(operation, profile_name, ring_name, x_shape, x=x, y=y, y_shape=y_shape)
        case "truncate":
            shape = draw(shapes())
            count = element_count(shape)
            values = draw(fixed_point_encodings(profile, count, truncation_limit(profile, count)))
            bits = draw(st.one_of(st.just(profile.fractional_bits), st.integers(1, profile.ring_bits - 1)))
            x = draw(shares_of(profile.ring, values))
            return Case(operation, profile_name, arithmetic, shape, x=x, bits=bits)
        case "mul_truncate":
            shape = draw(shapes())
            count = element_count(shape)
            units = math.isqrt(truncation_limit(profile, count))
            x = draw(shares_of(profile.ring, draw(fixed_point_encodings(profile, count, units))))
            y = draw(shares_of(profile.ring, draw(fixed_point_encodings(profile, count, units))))
            return Case(operation, profile_name, arithmetic, shape, x=x, y=y, bits=profile.fractional_bits)
        case "matmul_truncate":
            x_shape, y_shape = draw(matrix_shapes())
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
            return Case(operation, profile_name, draw(ring_names(profile_name)), draw(shapes()))
        case "zero_share":
            return Case(
                operation,
                profile_name,
                draw(ring_names(profile_name)),
                count=draw(st.integers(0, MAX_ELEMENTS)),
            )
        case "encode_fixed":
            reals = draw(st.lists(fixed_point_values(profile), max_size=MAX_ELEMENTS))
            return Case(operation, profile_name, arithmetic, (len(reals),), reals=reals)
        case "recv_elements":
            ring_name = draw(ring_names(profile_name))
            ring = get_ring(profile, ring_name)
            count = draw(st.integers(0, 2 * MAX_ELEMENTS))
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
