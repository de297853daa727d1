"""§7 Comparison, vectorised: private compare over Z_p, DReLU, ReLU, selection, max and argmax."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from fast.arithmetic import local_products, mul, reshare_receive, reshare_send
from fast.preprocessing import ComparisonMaterial, ComparisonPool, lift_bits
from fast.ring import Array, Share
from fast.sharing import add, add_public, mul_public, public_share, sub
from fast.transport import recv_elements, send_elements
from refimpl.comparison import OPENER
from refimpl.ring import BINARY, Ring, ShapeError, element_count
from refimpl.transport import PartyContext

__all__ = [
    "OPENER",
    "argmax",
    "bit_to_ring",
    "compare",
    "compare_vector",
    "comparisons_for_max",
    "drelu",
    "max_and_argmax",
    "maximum",
    "open_to_comparers",
    "receive_opened",
    "relu",
    "relu_and_derivative",
    "select_shares",
    "send_compare_vector",
    "sign_bits",
    "zero_test",
]


def open_to_comparers(ctx: PartyContext, masked: Share) -> None:
    """§7.1 Masked opening, step 1: P2 sends x_2 to P0 and x_0 to P1."""
    if ctx.party == OPENER:
        send_elements(ctx, 0, "cmp-open", masked.ring, masked.first)
        send_elements(ctx, 1, "cmp-open", masked.ring, masked.second)


def receive_opened(ctx: PartyContext, masked: Share) -> Array | None:
    """§7.1 Masked opening, step 2: P0 and P1 add the missing component; P2 learns nothing."""
    if ctx.party == OPENER:
        return None
    count = element_count(masked.shape)
    missing = recv_elements(ctx, OPENER, "cmp-open", masked.ring, count)
    return masked.first.reshape(-1) + masked.second.reshape(-1) + missing


REDUCTION_OFFSET = 8192
"""The kernels reduce a small integer x (|x| < 8192) mod p as residues[x + 8192]."""


@functools.cache
def _residues(prime: int) -> NDArray[np.uint8]:
    return (np.arange(-REDUCTION_OFFSET, REDUCTION_OFFSET) % prime).astype(np.uint8)


def _compare_vector_rows(
    opened: NDArray[np.uint64],
    bits_first: NDArray[np.uint8],
    bits_second: NDArray[np.uint8],
    flip_first: NDArray[np.uint8],
    flip_second: NDArray[np.uint8],
    flipped_first: NDArray[np.uint8],
    flipped_second: NDArray[np.uint8],
    first_party: bool,
    residues: NDArray[np.uint8],
    out: NDArray[np.uint8],
) -> None:
    """The loop of :func:`compare_vector`, one element per row, positions from the top down.

    Every intermediate stays below 8192 in magnitude: the running sums are kept reduced.
    """
    count, k = bits_first.shape
    offset = REDUCTION_OFFSET
    for e in range(count):
        value = opened[e]
        flip = (
            (np.int64(flip_first[e]) + np.int64(flip_second[e])) if first_party else np.int64(flip_second[e])
        )
        flip = np.int64(residues[flip + offset])
        suffix = np.int64(0)
        equal = np.int64(0)
        ones = np.int64(0)
        for j in range(k - 1, -1, -1):
            c = np.int64((value >> np.uint64(j)) & np.uint64(1))
            if first_party:
                bit = np.int64(bits_first[e, j]) + np.int64(bits_second[e, j])
                flipped = np.int64(flipped_first[e, j]) + np.int64(flipped_second[e, j])
                body = suffix - bit + 2 * (flipped - c * flip) + 1 + c
                term = bit + c if c == 0 else c - bit
            else:
                bit = np.int64(bits_second[e, j])
                flipped = np.int64(flipped_second[e, j])
                body = suffix - bit + 2 * (flipped - c * flip)
                term = bit if c == 0 else -bit
            out[e, j] = residues[body + offset]
            suffix = np.int64(residues[suffix + term + offset])
            equal = np.int64(residues[equal + (flipped if c == 0 else -flipped) + offset])
            ones += c
        last = equal + flip * (ones - 1) + (1 if first_party else 0)
        out[e, k] = residues[last + offset]


_compare_vector_kernel: Callable[..., None] = numba.njit(nogil=True, cache=True)(_compare_vector_rows)


def compare_vector(ctx: PartyContext, opened: Array, material: ComparisonMaterial) -> Array:
    """§7.2 Private compare, step 1: P0's or P1's part of d, shape (count, k + 1), in Z_p.

    For j < k: d_j = 1 + c_j - r_j + sum_{i>j} (c_i + (1 - 2 c_i) r_i) - 2 c_j beta + 2 beta r_j,
    and d_k = 1 - beta + sum_i (c_i beta + (1 - 2 c_i) beta r_i), with c the opened value.
    Exactly one d_j is zero when [r mod 2^k > c mod 2^k] XOR beta = 1, none otherwise.
    P0 adds the public constants (and, holding two components, sums them).
    """
    k = material.bits
    out = np.empty((opened.size, k + 1), dtype=np.uint8)
    _compare_vector_kernel(
        np.ascontiguousarray(opened.reshape(-1), dtype=np.uint64),
        material.mask_bits.first,
        material.mask_bits.second,
        material.flip.first,
        material.flip.second,
        material.flipped_bits.first,
        material.flipped_bits.second,
        ctx.party == 0,
        _residues(material.mask_bits.ring.modulus),
        out,
    )
    return out


def _mask_and_rotate_rows(
    vector: NDArray[np.uint8],
    multipliers: NDArray[np.int16],
    blinding: NDArray[np.int16],
    rotations: NDArray[np.intp],
    sign: int,
    residues: NDArray[np.uint8],
    out: NDArray[np.uint8],
) -> None:
    """The loop of :func:`send_compare_vector`: out[e, t] = (m d + sign s)[e, (t + rot_e) mod width] mod p.

    m d + sign s lies in (-p, p^2), inside the residue table's range.
    """
    count, width = vector.shape
    offset = REDUCTION_OFFSET
    for e in range(count):
        j = np.int64(rotations[e])
        for t in range(width):
            value = np.int64(multipliers[e, j]) * np.int64(vector[e, j]) + sign * np.int64(blinding[e, j])
            out[e, t] = residues[value + offset]
            j += 1
            if j == width:
                j = np.int64(0)


_mask_and_rotate_kernel: Callable[..., None] = numba.njit(nogil=True, cache=True)(_mask_and_rotate_rows)


def send_compare_vector(ctx: PartyContext, vector: Array, material: ComparisonMaterial) -> None:
    """§7.2 Private compare, step 2: P0 sends rot(m d^(0) + s), P1 sends rot(m d^(1) - s) to P2.

    m, s and the rotations are the material's kappa_1 masks (§6.2), known to P0 and P1.
    """
    width = material.bits + 1
    rotated = np.empty((material.count, width), dtype=np.uint8)
    _mask_and_rotate_kernel(
        np.ascontiguousarray(vector.reshape(material.count, width), dtype=np.uint8),
        material.multipliers,
        material.blinding,
        material.rotations,
        1 if ctx.party == 0 else -1,
        _residues(material.mask_bits.ring.modulus),
        rotated,
    )
    send_elements(ctx, OPENER, "cmp-compare", material.mask_bits.ring, rotated)


def zero_test(ctx: PartyContext, material: ComparisonMaterial) -> Array:
    """§7.2 Private compare, step 3: P2 adds the two vectors; beta' = 1 where a row has a zero."""
    field_ring = material.mask_bits.ring
    width = material.bits + 1
    count = material.count
    first = recv_elements(ctx, 0, "cmp-compare", field_ring, count * width)
    second = recv_elements(ctx, 1, "cmp-compare", field_ring, count * width)
    # Both parts lie in [0, p), so their sum is 0 mod p exactly when it is 0 or p.
    totals = (first + second).reshape(count, width)
    zeros = (totals == 0) | (totals == np.uint8(field_ring.modulus))
    found: Array = zeros.any(axis=1).astype(np.uint8)
    return found


def sign_bits(
    ctx: PartyContext, x: Share, material: ComparisonMaterial, during_opening: Share | None
) -> tuple[Array, Share | None]:
    """§7.3 DReLU, steps 1-4: the public bits v with DReLU(x) = v XOR (r_k XOR beta).

    Pre-condition: |signed(x)| < 2^k. ``during_opening``, if given, is multiplied by the
    material's top bit [r_k XOR beta] in the round of the opening (for ReLU).
    """
    count = element_count(x.shape)
    if material.count != count:
        raise ShapeError(f"{material.count} elements of material for {count} comparisons")
    k = material.bits
    shifted = add_public(ctx, x, 1 << k)
    mask = Share(
        material.mask.ring,
        x.shape,
        material.mask.first.reshape(x.shape),
        material.mask.second.reshape(x.shape),
    )
    masked = add(shifted, mask)
    open_to_comparers(ctx, masked)
    sent = None
    if during_opening is not None:
        sent = reshare_send(ctx, x.ring, local_products(_top(material, x.shape), during_opening), x.shape)
    opened = receive_opened(ctx, masked)
    product = None if sent is None else reshare_receive(ctx, x.ring, sent, x.shape)
    if opened is not None:
        send_compare_vector(ctx, compare_vector(ctx, opened, material), material)
        top_bits = ((opened >> np.uint64(k)) & np.uint64(1)).astype(np.uint8)
        if ctx.party == 0:
            send_elements(ctx, OPENER, "cmp-top", BINARY, top_bits)
        flipped = recv_elements(ctx, OPENER, "cmp-result", BINARY, count)
        return top_bits ^ flipped, product
    flipped = zero_test(ctx, material)
    top_bits = recv_elements(ctx, 0, "cmp-top", BINARY, count)
    send_elements(ctx, 0, "cmp-result", BINARY, flipped)
    send_elements(ctx, 1, "cmp-result", BINARY, flipped)
    return top_bits ^ flipped, product


def _xor_public(ctx: PartyContext, bit: Share, public: Array) -> Share:
    """[b XOR v] = [b] + v (1 - 2 [b]) for a shared bit b and public bits v (§4.6)."""
    signs = (1 - 2 * public.astype(np.int64)).reshape(bit.shape)
    return add_public(ctx, mul_public(bit, signs), public.reshape(bit.shape).astype(np.int64))


def _top(material: ComparisonMaterial, shape: tuple[int, ...]) -> Share:
    return Share(
        material.top.ring, shape, material.top.first.reshape(shape), material.top.second.reshape(shape)
    )


def drelu(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§7.3 DReLU: [x >= 0] as 0 or 1 in Z_2^l; three rounds, one element of material each.

    Pre-condition: |signed(x)| < 2^k (k = the profile's comparison bits).
    """
    material = pool.take(element_count(x.shape))
    public, _ = sign_bits(ctx, x, material, None)
    return _xor_public(ctx, _top(material, x.shape), public)


def relu_and_derivative(ctx: PartyContext, x: Share, pool: ComparisonPool) -> tuple[Share, Share]:
    """§7.4 ReLU: (max(x, 0), [x >= 0]) with one DReLU; three rounds.

    With u = r_k XOR beta and w = u x (multiplied while the mask is opened),
    ReLU(x) = w + v (x - 2 w) for the public bits v of §7.3.
    """
    material = pool.take(element_count(x.shape))
    public, product = sign_bits(ctx, x, material, x)
    assert product is not None
    difference = sub(x, mul_public(product, 2))
    relu_value = add(product, mul_public(difference, public.reshape(x.shape).astype(np.int64)))
    return relu_value, _xor_public(ctx, _top(material, x.shape), public)


def relu(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§7.4 ReLU: max(x, 0); three rounds."""
    return relu_and_derivative(ctx, x, pool)[0]


def compare(ctx: PartyContext, x: Share, y: Share, pool: ComparisonPool) -> Share:
    """§7.5 Comparison of two shared values: [x >= y] = DReLU(x - y).

    Pre-condition: |signed(x - y)| < 2^k.
    """
    return drelu(ctx, sub(x, y), pool)


def select_shares(ctx: PartyContext, bit: Share, x: Share, y: Share) -> Share:
    """§7.6 Select: bit ? x : y = y + bit (x - y), for a shared bit in Z_2^l; one multiplication."""
    return add(y, mul(ctx, bit, sub(x, y)))


def comparisons_for_max(shape: tuple[int, ...]) -> int:
    """§7.7 Maximum and argmax: the material they consume, rows x (columns - 1)."""
    if not shape or shape[-1] < 1:
        raise ShapeError(f"max over the last axis needs a non-empty last axis, got {shape}")
    return element_count(shape) // shape[-1] * (shape[-1] - 1)


def _columns(x: Share, columns: slice) -> Share:
    first, second = x.first[:, columns], x.second[:, columns]
    return Share(x.ring, tuple(first.shape), np.ascontiguousarray(first), np.ascontiguousarray(second))


def _append_column(winners: Share, x: Share) -> Share:
    """The winners followed by x's last column when x's width is odd."""
    if x.shape[1] % 2 == 0:
        return winners
    first = np.concatenate([winners.first, x.first[:, -1:]], axis=1)
    second = np.concatenate([winners.second, x.second[:, -1:]], axis=1)
    return Share(x.ring, tuple(first.shape), first, second)


def _tournament_round(
    ctx: PartyContext, values: Share, onehot: Share | None, pool: ComparisonPool
) -> tuple[Share, Share | None]:
    """One level: columns (0, 1), (2, 3), ... compete; max(a, b) = b + ReLU(a - b); a wins ties."""
    pairs = values.shape[1] // 2
    left, right = _columns(values, slice(0, 2 * pairs, 2)), _columns(values, slice(1, 2 * pairs, 2))
    gain, left_wins = relu_and_derivative(ctx, sub(left, right), pool)
    next_values = _append_column(add(right, gain), values)
    if onehot is None:
        return next_values, None
    left_vectors = _columns(onehot, slice(0, 2 * pairs, 2))
    right_vectors = _columns(onehot, slice(1, 2 * pairs, 2))
    inner = onehot.shape[2]
    spread = Share(
        left_wins.ring,
        left_vectors.shape,
        np.repeat(left_wins.first[:, :, None], inner, axis=2),
        np.repeat(left_wins.second[:, :, None], inner, axis=2),
    )
    chosen = add(right_vectors, mul(ctx, spread, sub(left_vectors, right_vectors)))
    return next_values, _append_column(chosen, onehot)


def max_and_argmax(
    ctx: PartyContext, x: Share, pool: ComparisonPool, with_argmax: bool = True
) -> tuple[Share, Share | None]:
    """§7.7 Maximum and argmax: over the last axis, by a tournament of ceil(log2 C) levels.

    Returns the maxima (shape x.shape[:-1]) and, if ``with_argmax``, a one-hot sharing of the
    first position holding the maximum (shape x.shape). Consumes comparisons_for_max(x.shape)
    elements of material. Pre-condition: pairwise differences below 2^k in magnitude.
    """
    comparisons_for_max(x.shape)
    classes = x.shape[-1]
    rows = element_count(x.shape) // classes
    values = Share(x.ring, (rows, classes), x.first.reshape(rows, classes), x.second.reshape(rows, classes))
    onehot = None
    if with_argmax:
        identity = np.broadcast_to(np.eye(classes, dtype=np.int64), (rows, classes, classes))
        onehot = public_share(ctx, x.ring, identity, (rows, classes, classes))
    while values.shape[1] > 1:
        values, onehot = _tournament_round(ctx, values, onehot, pool)
    maxima = Share(
        x.ring, x.shape[:-1], values.first.reshape(x.shape[:-1]), values.second.reshape(x.shape[:-1])
    )
    if onehot is None:
        return maxima, None
    return maxima, Share(x.ring, x.shape, onehot.first.reshape(x.shape), onehot.second.reshape(x.shape))


def maximum(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§7.7 Maximum and argmax: the maximum over the last axis."""
    return max_and_argmax(ctx, x, pool, with_argmax=False)[0]


def argmax(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§7.7 Maximum and argmax: a one-hot sharing of the (first) maximum's position, shape x.shape."""
    onehot = max_and_argmax(ctx, x, pool)[1]
    assert onehot is not None
    return onehot


def bit_to_ring(ctx: PartyContext, bit: Share, ring: Ring) -> Share:
    """§7.8 Bit conversion: a shared bit in Z_2 as a sharing of 0 or 1 in ``ring`` (§6.1 lifting)."""
    return lift_bits(ctx, bit, ring)
