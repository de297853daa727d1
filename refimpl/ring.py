"""§2 Notation: rings, signed representation, fixed point and parameter profiles.

Plain values in refimpl are flat Python lists of ``int`` in row-major order; a shape
travels beside them where one is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PRIME = 67
"""§2.1 Rings: the prime p of Z_p."""


class FixedPointRangeError(ValueError):
    """§2.3 Fixed-point encoding: a value cannot be encoded in, or is outside the safe range of, a profile."""


class ProfileError(ValueError):
    """§2.4 Parameter profiles: an unknown or inconsistent parameter profile."""


@dataclass(frozen=True)
class Ring:
    """§2.1 Rings: Z_2^l, Z_p or Z_2, identified by its modulus.

    ``name`` is ``"Z2^l"`` for the arithmetic ring, ``"Zp"`` or ``"Z2"``.
    """

    name: str
    modulus: int

    @property
    def is_power_of_two(self) -> bool:
        """§2.1 Rings: True for Z_2^l and Z_2."""
        return self.modulus & (self.modulus - 1) == 0

    @property
    def bits(self) -> int:
        """§2.1 Rings: l for Z_2^l (1 for Z_2); the bit length of p - 1 for Z_p."""
        return (self.modulus - 1).bit_length()

    @property
    def element_bytes(self) -> int:
        """§12.2 Wire encoding: bytes per element (Z_2 elements are bit-packed)."""
        if self.modulus == 2:
            return 0
        return max(1, math.ceil(self.bits / 8))


def arithmetic_ring(bits: int) -> Ring:
    """§2.1 Rings: the ring Z_2^l with l = ``bits`` (32 or 64)."""
    if bits not in (32, 64):
        raise ProfileError(f"ring bit length must be 32 or 64, got {bits}")
    return Ring(f"Z2^{bits}", 1 << bits)


def prime_field(prime: int = PRIME) -> Ring:
    """§2.1 Rings: the field Z_p used by private compare (p = 67)."""
    if prime != PRIME:
        raise ProfileError(f"only p = {PRIME} is specified, got {prime}")
    return Ring("Zp", prime)


BINARY = Ring("Z2", 2)
"""§2.1 Rings: the ring Z_2 of bits."""


@dataclass(frozen=True)
class Profile:
    """§2.4 Parameter profiles: ring bits l, fractional bits f, prime p and comparison bits k."""

    name: str
    ring_bits: int
    fractional_bits: int
    prime: int
    comparison_bits: int

    @property
    def ring(self) -> Ring:
        """§2.4 Parameter profiles: the ring Z_2^l of the profile."""
        return arithmetic_ring(self.ring_bits)

    @property
    def field(self) -> Ring:
        """§2.4 Parameter profiles: the field Z_p of the profile."""
        return prime_field(self.prime)


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", 32, 11, PRIME, 31),
    "wide": Profile("wide", 64, 13, PRIME, 31),
}
"""§2.4 Parameter profiles: the profiles by name."""


def get_profile(name: str) -> Profile:
    """§2.4 Parameter profiles: look a profile up by name."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ProfileError(f"unknown profile {name!r}; known profiles: {known}") from None


def reduce(ring: Ring, values: Sequence[int]) -> list[int]:
    """§2.1 Rings: reduce integers to their canonical representatives in [0, modulus)."""
    return [value % ring.modulus for value in values]


def to_signed(ring: Ring, values: Sequence[int]) -> list[int]:
    """§2.2 Signed representation: map [0, m) to [-floor(m/2), ceil(m/2)) (m = 2^l: [-2^(l-1), 2^(l-1)))."""
    half = (ring.modulus + 1) // 2
    return [value - ring.modulus if value >= half else value for value in values]


def encode_fixed(profile: Profile, values: Sequence[float]) -> list[int]:
    """§2.3 Fixed-point encoding: round(x * 2^f) with ties to even, as a ring element.

    Pre-condition: every value is finite and round(x * 2^f) lies in [-2^(l-1), 2^(l-1));
    otherwise :class:`FixedPointRangeError` names the first offending value and its index.
    """
    scale = 1 << profile.fractional_bits
    limit = 1 << (profile.ring_bits - 1)
    encoded = []
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise FixedPointRangeError(f"value {value!r} at index {index} is not finite")
        scaled = value * scale
        integer = round(scaled) if math.isfinite(scaled) else limit
        if not -limit <= integer < limit:
            bound = 2.0 ** (profile.ring_bits - 1 - profile.fractional_bits)
            raise FixedPointRangeError(
                f"value {value!r} at index {index} is outside the {profile.name} "
                f"profile's range [-{bound}, {bound})"
            )
        encoded.append(integer % (1 << profile.ring_bits))
    return encoded


def decode_fixed(profile: Profile, values: Sequence[int]) -> list[float]:
    """§2.3 Fixed-point encoding: decoding is signed(v) / 2^f."""
    scale = float(1 << profile.fractional_bits)
    return [value / scale for value in to_signed(profile.ring, values)]


class ShapeError(ValueError):
    """§2.5 Party indexing and replicated shares: operands whose shapes, rings or lengths mismatch."""


def element_count(shape: tuple[int, ...]) -> int:
    """§2.1 Rings: the number of elements of a row-major tensor of ``shape``."""
    count = 1
    for dimension in shape:
        if dimension < 0:
            raise ShapeError(f"negative dimension in shape {shape}")
        count *= dimension
    return count


def check_elements(ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> None:
    """§2.1 Rings: pre-condition check that ``values`` are canonical elements of ``shape``."""
    if len(values) != element_count(shape):
        raise ShapeError(f"{len(values)} values do not fill shape {shape}")
    for index, value in enumerate(values):
        if not 0 <= value < ring.modulus:
            raise ValueError(f"value {value} at index {index} is not an element of {ring.name}")


@dataclass(frozen=True)
class Share:
    """§2.5 Party indexing and replicated shares: P_i's pair (x_i, x_{i+1}).

    x = x_0 + x_1 + x_2 in ``ring``; ``first`` holds x_i and ``second`` holds x_{i+1},
    both flat in row-major order of ``shape``.
    """

    ring: Ring
    shape: tuple[int, ...]
    first: list[int]
    second: list[int]
