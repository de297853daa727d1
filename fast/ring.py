"""§2 Notation, vectorised: rings as numpy dtypes, signed views and fixed point.

Plain values are numpy arrays: Z_2^64 as ``uint64``, Z_2^32 as ``uint32``, Z_p and Z_2 as
``uint8``. Ring, profile and error types are those of :mod:`refimpl.ring`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refimpl.ring import (
    BINARY,
    PRIME,
    PROFILES,
    FixedPointRangeError,
    Profile,
    ProfileError,
    Ring,
    ShapeError,
    arithmetic_ring,
    element_count,
    get_profile,
    prime_field,
)

__all__ = [
    "BINARY",
    "PRIME",
    "PROFILES",
    "FixedPointRangeError",
    "Profile",
    "ProfileError",
    "Ring",
    "ShapeError",
    "Share",
    "arithmetic_ring",
    "check_elements",
    "decode_fixed",
    "element_count",
    "encode_fixed",
    "get_profile",
    "prime_field",
    "reduce",
    "to_signed",
]

Array = NDArray[np.unsignedinteger]


def dtype_of(ring: Ring) -> type[np.unsignedinteger]:
    """The numpy dtype that holds the canonical elements of ``ring``."""
    if ring.modulus == 1 << 64:
        return np.uint64
    if ring.modulus == 1 << 32:
        return np.uint32
    return np.uint8


def wraps_natively(ring: Ring) -> bool:
    """True for Z_2^32 and Z_2^64, whose numpy arithmetic wraps modulo the ring."""
    return ring.modulus in (1 << 32, 1 << 64)


def _result(a: Array, b: Array) -> Array:
    """An output array for a binary operation (keeps 0-d operands arrays, never numpy scalars)."""
    return np.empty(np.broadcast_shapes(np.shape(a), np.shape(b)), dtype=np.result_type(a, b))


def _reduce_once(ring: Ring, values: Array) -> Array:
    """values - p where values >= p, for uint8 values below 2p (at most 2 * 66 + 1 here)."""
    values -= np.uint8(ring.modulus) * (values >= ring.modulus)
    return values


PRODUCT_TABLES: dict[int, NDArray[np.uint8]] = {}


def _product_table(modulus: int) -> NDArray[np.uint8]:
    """(a * b) mod p for all a, b in [0, p), flattened with index a * p + b."""
    table = PRODUCT_TABLES.get(modulus)
    if table is None:
        residues = np.arange(modulus, dtype=np.int64)
        table = PRODUCT_TABLES.setdefault(
            modulus, (np.outer(residues, residues) % modulus).astype(np.uint8).ravel()
        )
    return table


def ring_add(ring: Ring, a: Array, b: Array) -> Array:
    """a + b in ``ring``."""
    if wraps_natively(ring):
        return np.add(a, b, out=_result(a, b))
    if ring.modulus == 2:
        return a ^ b
    return _reduce_once(ring, np.add(a, b, out=_result(a, b)))


def ring_sub(ring: Ring, a: Array, b: Array) -> Array:
    """a - b in ``ring``."""
    if wraps_natively(ring):
        return np.subtract(a, b, out=_result(a, b))
    if ring.modulus == 2:
        return a ^ b
    return _reduce_once(ring, np.add(a, np.uint8(ring.modulus) - b, out=_result(a, b)))


def ring_mul(ring: Ring, a: Array, b: Array) -> Array:
    """a * b in ``ring`` (elementwise)."""
    if wraps_natively(ring):
        return np.multiply(a, b, out=_result(a, b))
    if ring.modulus == 2:
        return a & b
    index = np.multiply(a, ring.modulus, dtype=np.intp) + b
    product = np.empty(np.shape(index), dtype=np.uint8)
    np.take(_product_table(ring.modulus), index, out=product)
    return product


def ring_neg(ring: Ring, a: Array) -> Array:
    """-a in ``ring``."""
    if wraps_natively(ring):
        return np.negative(a, out=np.empty_like(a))
    if ring.modulus == 2:
        return a.copy()
    return _reduce_once(ring, np.subtract(np.uint8(ring.modulus), a, out=np.empty_like(a)))


def reduce(ring: Ring, values: ArrayLike) -> Array:
    """§2.1 Rings: reduce integers to their canonical representatives in [0, modulus)."""
    array = np.asarray(values)
    if array.dtype == object:
        return np.array(array % ring.modulus, dtype=object).astype(dtype_of(ring))
    if wraps_natively(ring):
        return array.astype(np.int64 if array.dtype.kind == "i" else array.dtype).astype(dtype_of(ring))
    return (array.astype(np.int64) % ring.modulus).astype(dtype_of(ring))


def to_signed(ring: Ring, values: Array) -> NDArray[np.int64]:
    """§2.2 Signed representation: map [0, m) to [-floor(m/2), ceil(m/2)) (m = 2^l: [-2^(l-1), 2^(l-1)))."""
    if ring.modulus == 1 << 64:
        return values.astype(np.uint64).view(np.int64)
    if ring.modulus == 1 << 32:
        return values.astype(np.uint32).view(np.int32).astype(np.int64)
    signed = values.astype(np.int64)
    return np.where(signed >= (ring.modulus + 1) // 2, signed - ring.modulus, signed)


def encode_fixed(profile: Profile, values: ArrayLike) -> Array:
    """§2.3 Fixed-point encoding: round(x * 2^f) with ties to even, as a ring element.

    Pre-condition: every value is finite and round(x * 2^f) lies in [-2^(l-1), 2^(l-1));
    otherwise :class:`FixedPointRangeError` names the first offending value and its index.
    """
    array = np.asarray(values, dtype=np.float64)
    flat = array.reshape(-1)
    finite = np.isfinite(flat)
    if not finite.all():
        index = int(np.argmin(finite))
        raise FixedPointRangeError(f"value {flat[index]!r} at index {index} is not finite")
    with np.errstate(over="ignore"):
        scaled = np.rint(flat * float(1 << profile.fractional_bits))
    limit = float(1 << (profile.ring_bits - 1))
    inside = (scaled >= -limit) & (scaled < limit)
    if not inside.all():
        index = int(np.argmin(inside))
        bound = 2.0 ** (profile.ring_bits - 1 - profile.fractional_bits)
        raise FixedPointRangeError(
            f"value {float(flat[index])!r} at index {index} is outside the {profile.name} "
            f"profile's range [-{bound}, {bound})"
        )
    return scaled.astype(np.int64).astype(dtype_of(profile.ring)).reshape(array.shape)


def decode_fixed(profile: Profile, values: Array) -> NDArray[np.float64]:
    """§2.3 Fixed-point encoding: decoding is signed(v) / 2^f."""
    return to_signed(profile.ring, values).astype(np.float64) / float(1 << profile.fractional_bits)


def check_elements(ring: Ring, values: Array, shape: tuple[int, ...]) -> None:
    """§2.1 Rings: pre-condition check that ``values`` are canonical elements of ``shape``."""
    if tuple(values.shape) != tuple(shape):
        raise ShapeError(f"values of shape {tuple(values.shape)} do not fill shape {tuple(shape)}")
    if values.dtype != dtype_of(ring):
        raise ValueError(f"values of dtype {values.dtype} are not elements of {ring.name}")
    if not wraps_natively(ring) and values.size and int(values.max()) >= ring.modulus:
        index = int(np.argmax(values.reshape(-1) >= ring.modulus))
        raise ValueError(
            f"value {int(values.reshape(-1)[index])} at index {index} is not an element of {ring.name}"
        )


@dataclass(frozen=True)
class Share:
    """§2.5 Party indexing and replicated shares: P_i's pair (x_i, x_{i+1}) as arrays of ``shape``."""

    ring: Ring
    shape: tuple[int, ...]
    first: Array
    second: Array
