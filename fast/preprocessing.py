"""§6 Preprocessing, vectorised: the dealer-free offline phase of :mod:`refimpl.preprocessing`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fast.arithmetic import mul, reshare
from fast.randomness import draw_below, draw_integers, party_randomness, prss_share
from fast.ring import Array, Share, dtype_of
from fast.sharing import add, mul_public, share_input, sub
from refimpl.ring import BINARY, Profile, Ring, element_count
from refimpl.transport import COMPUTING_PARTIES, PartyContext


@dataclass(frozen=True)
class ComparisonMaterial:
    """§6.2 Comparison material: what one DReLU on each of ``count`` elements consumes.

    ``mask`` is [r] in Z_2^l (shape (count,)); ``mask_bits`` holds [r_j]_p for j < k
    (shape (count, k), least significant bit first); ``flip`` is [beta]_p; ``flipped_bits``
    holds [beta r_j]_p; ``top`` is [r_k XOR beta] in Z_2^l. ``multipliers`` (in [1, p)),
    ``blinding`` (in Z_p), both (count, k + 1), and ``rotations`` (in [0, k + 1)) are drawn
    from kappa_1 and known to P0 and P1 only; P2 holds empty arrays.
    """

    count: int
    bits: int
    mask: Share
    mask_bits: Share
    flip: Share
    flipped_bits: Share
    top: Share
    multipliers: NDArray[np.int16]
    blinding: NDArray[np.int16]
    rotations: NDArray[np.intp]


def component_share(
    ctx: PartyContext, ring: Ring, component: int, values: Array, shape: tuple[int, ...]
) -> Share:
    """§6.1 Bit lifting: the sharing whose component ``component`` is ``values`` and the others zero.

    Only the two holders of the component know ``values``; the third party passes zeros.
    """
    shape = tuple(shape)
    zeros = np.zeros(shape, dtype=dtype_of(ring))
    known = np.asarray(values).reshape(shape).astype(dtype_of(ring))
    first = known if ctx.party == component else zeros
    second = known if (ctx.party + 1) % COMPUTING_PARTIES == component else zeros
    return Share(ring, shape, first, second)


def lift_bits(ctx: PartyContext, bits: Share, ring: Ring) -> Share:
    """§6.1 Bit lifting: a sharing in Z_2 of bits b = b_0 XOR b_1 XOR b_2 becomes one in ``ring``.

    P0 knows e = b_0 XOR b_1 and inputs it (§4.1); g = b_2 is component 2 of a sharing
    held by P1 and P2; then b = e + g - 2 e g with one multiplication (§5.1).
    """
    if bits.ring != BINARY:
        raise ValueError(f"lift_bits expects a sharing in Z2, got {bits.ring.name}")
    known = (bits.first ^ bits.second).astype(dtype_of(ring)) if ctx.party == 0 else None
    either = share_input(ctx, ring, 0, known, bits.shape)
    last = bits.second if ctx.party == 1 else bits.first
    other = component_share(ctx, ring, 2, last, bits.shape)
    both = mul(ctx, either, other)
    return sub(add(either, other), mul_public(both, 2))


def _bits_of(values: Array, width: int) -> Array:
    """The low ``width`` bits of each value, shape (count, width), least significant first."""
    words = np.ascontiguousarray(values, dtype="<u8").reshape(-1, 1).view(np.uint8)
    return np.unpackbits(words, axis=1, count=width, bitorder="little")


def _column(x: Share, column: int) -> Share:
    return Share(
        x.ring,
        (x.shape[0],),
        np.ascontiguousarray(x.first[:, column]),
        np.ascontiguousarray(x.second[:, column]),
    )


def _stack_columns(parts: list[Share]) -> Share:
    first = np.stack([part.first for part in parts], axis=1)
    second = np.stack([part.second for part in parts], axis=1)
    return Share(parts[0].ring, tuple(first.shape), first, second)


def _shift_up(x: Share) -> Share:
    """Multiply each row's bit vector by 2: bit j takes bit j - 1, bit 0 becomes 0."""

    def shifted(values: Array) -> Array:
        moved = np.zeros_like(values)
        moved[:, 1:] = values[:, :-1]
        return moved

    return Share(x.ring, x.shape, shifted(x.first), shifted(x.second))


def mask_bits(ctx: PartyContext, mask: Share, width: int) -> Share:
    """§6.3 Bit decomposition of the mask: Z_2 sharings of the low ``width`` bits of r.

    r = r_0 + r_1 + r_2 with r_c the PRSS component c. Its bits are first reduced to two
    summands S = r_0 XOR r_1 XOR r_2 and M = majority(r_0, r_1, r_2), whose three products
    P_i computes alone; then S + 2M is added by a ripple-carry adder (one AND per bit).
    Output shape (count, width), least significant bit first.
    """
    count = element_count(mask.shape)
    shape = (count, width)
    parity = Share(
        BINARY, shape, _bits_of(mask.first.reshape(-1), width), _bits_of(mask.second.reshape(-1), width)
    )
    majority = reshare(ctx, BINARY, parity.first & parity.second, shape)
    carried = _shift_up(majority)
    propagate = add(parity, carried)
    generate = mul(ctx, parity, carried)
    carries = [_column(generate, 0)]
    for bit in range(1, width - 1):
        through = mul(ctx, _column(propagate, bit), carries[-1])
        carries.append(add(_column(generate, bit), through))
    zero = np.zeros(count, dtype=np.uint8)
    carry_in = _stack_columns([Share(BINARY, (count,), zero, zero), *carries])
    return add(propagate, carry_in)


def generate_comparison_material(ctx: PartyContext, profile: Profile, count: int) -> ComparisonMaterial:
    """§6.2 Comparison material: generate it for ``count`` elements without a dealer.

    Steps: [r] by PRSS; bits r_0..r_k by §6.3; beta by PRSS in Z_2; lift r_0..r_{k-1} and
    beta to Z_p and r_k XOR beta to Z_2^l (§6.1); [beta r_j]_p by one multiplication.
    """
    k = profile.comparison_bits
    ring, field_ring = profile.ring, profile.field
    mask = prss_share(ctx, ring, (count,))
    bits = mask_bits(ctx, mask, k + 1)
    flip_bit = prss_share(ctx, BINARY, (count,))
    low_and_flip = Share(
        BINARY,
        (count, k + 1),
        np.concatenate([bits.first[:, :k], flip_bit.first[:, None]], axis=1),
        np.concatenate([bits.second[:, :k], flip_bit.second[:, None]], axis=1),
    )
    lifted = lift_bits(ctx, low_and_flip, field_ring)
    low_p = Share(field_ring, (count, k), lifted.first[:, :k].copy(), lifted.second[:, :k].copy())
    flip = _column(lifted, k)
    top = lift_bits(ctx, add(_column(bits, k), flip_bit), ring)
    repeated = Share(
        field_ring,
        (count, k),
        np.repeat(flip.first[:, None], k, axis=1),
        np.repeat(flip.second[:, None], k, axis=1),
    )
    flipped_bits = mul(ctx, repeated, low_p)
    multipliers, blinding, rotations = compare_masks(ctx, field_ring, count, k + 1)
    return ComparisonMaterial(
        count, k, mask, low_p, flip, flipped_bits, top, multipliers, blinding, rotations
    )


def compare_masks(
    ctx: PartyContext, field: Ring, count: int, width: int
) -> tuple[NDArray[np.int16], NDArray[np.int16], NDArray[np.intp]]:
    """§6.2 Comparison material: P0's and P1's masks for private compare, drawn from kappa_1.

    Multipliers 1 + draw_below(p - 1) and blinding draw_below(p), count x width each, then
    one rotation per element by draw_integers(width). P2 does not hold kappa_1 and draws nothing.
    """
    streams = party_randomness(ctx).components
    if 1 not in streams:
        return np.zeros((0, width), np.int16), np.zeros((0, width), np.int16), np.zeros(0, np.intp)
    stream = streams[1]
    multipliers = draw_below(stream, "cmp-multiplier", count * width, field.modulus - 1).astype(np.int16) + 1
    blinding = draw_below(stream, "cmp-blind", count * width, field.modulus).astype(np.int16)
    rotations = draw_integers(stream, "cmp-rotation", count, width).astype(np.intp)
    return multipliers.reshape(count, width), blinding.reshape(count, width), rotations


@dataclass
class ComparisonPool:
    """§6.4 Providers: comparison material generated offline, consumed online in order."""

    material: ComparisonMaterial
    used: int = field(default=0)

    def take(self, count: int) -> ComparisonMaterial:
        """§6.4 Providers: the next ``count`` elements of material; raises when the pool is exhausted."""
        if self.used + count > self.material.count:
            raise RuntimeError(
                f"comparison material exhausted: {count} requested, {self.material.count - self.used} left"
            )
        start, self.used = self.used, self.used + count
        return slice_material(self.material, start, count)


def slice_material(material: ComparisonMaterial, start: int, count: int) -> ComparisonMaterial:
    """§6.2 Comparison material: elements [start, start + count) of ``material``."""

    def rows(share: Share) -> Share:
        shape = (count, *share.shape[1:])
        return Share(
            share.ring, shape, share.first[start : start + count], share.second[start : start + count]
        )

    return ComparisonMaterial(
        count,
        material.bits,
        rows(material.mask),
        rows(material.mask_bits),
        rows(material.flip),
        rows(material.flipped_bits),
        rows(material.top),
        material.multipliers[start : start + count],
        material.blinding[start : start + count],
        material.rotations[start : start + count],
    )


def generate_comparison_pool(ctx: PartyContext, profile: Profile, count: int) -> ComparisonPool:
    """§6.4 Providers: the offline phase for ``count`` comparisons, generated without a dealer."""
    return ComparisonPool(generate_comparison_material(ctx, profile, count))
