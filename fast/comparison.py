"""§7 Comparison, vectorised: private compare over Z_p, DReLU, ReLU, selection, max and argmax."""

from __future__ import annotations

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

Small = NDArray[np.int16]


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


LOOKUP_OFFSET = 1 << 13
"""Values of magnitude below 2^13 are reduced mod p by one table lookup."""


def _residues(prime: int) -> NDArray[np.uint8]:
    return (np.arange(-LOOKUP_OFFSET, LOOKUP_OFFSET) % prime).astype(np.uint8)


RESIDUES = {67: _residues(67)}


def _mod_prime(values: Small, prime: int) -> NDArray[np.uint8]:
    """values mod p for |values| < 2^13, by table lookup (faster than integer division)."""
    table = RESIDUES.get(prime)
    if table is None:
        table = RESIDUES.setdefault(prime, _residues(prime))
    return np.take(table, values + np.int16(LOOKUP_OFFSET))


def _own_part(ctx: PartyContext, share: Share) -> Small:
    """P0's components x_0 + x_1 mod p, or P1's component x_2 (Z_p values as int16)."""
    if ctx.party == 0:
        total = share.first + share.second
        total -= np.uint8(share.ring.modulus) * (total >= share.ring.modulus)
        return total.astype(np.int16)
    return share.second.astype(np.int16)


def _low_bits(values: Array, count: int) -> NDArray[np.uint8]:
    """The low ``count`` bits of each value, shape (n, count), least significant first."""
    little = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    octets = little.view(np.uint8).reshape(values.size, values.dtype.itemsize)
    return np.unpackbits(octets, axis=1, count=count, bitorder="little")


def compare_vector(ctx: PartyContext, opened: Array, material: ComparisonMaterial) -> Array:
    """§7.2 Private compare, step 1: P0's or P1's part of d, shape (count, k + 1), in Z_p.

    For j < k: d_j = 1 + c_j - r_j + sum_{i>j} (c_i + (1 - 2 c_i) r_i) - 2 c_j beta + 2 beta r_j,
    and d_k = 1 - beta + sum_i (c_i beta + (1 - 2 c_i) beta r_i), with c the opened value.
    Exactly one d_j is zero when [r mod 2^k > c mod 2^k] XOR beta = 1, none otherwise.
    P0 adds the public constants.
    """
    prime = material.mask_bits.ring.modulus
    k = material.bits
    first_party = ctx.party == 0
    bits = _own_part(ctx, material.mask_bits)
    flip = _own_part(ctx, material.flip)[:, None]
    flipped = _own_part(ctx, material.flipped_bits)
    c = _low_bits(opened, k).astype(np.int16)
    sign = 1 - 2 * c
    term = sign * bits
    if first_party:
        term += c
    suffix = np.cumsum(term[:, ::-1], axis=1, dtype=np.int16)[:, ::-1]
    vector = np.empty((opened.size, k + 1), dtype=np.int16)
    body = vector[:, :k]
    np.subtract(suffix, term, out=body)
    body -= bits
    body += 2 * (flipped - c * flip)
    if first_party:
        body += 1 + c
    equal = (sign * flipped).sum(axis=1, dtype=np.int16) + flip[:, 0] * (c.sum(axis=1, dtype=np.int16) - 1)
    vector[:, k] = equal + 1 if first_party else equal
    return _mod_prime(vector, prime)


def send_compare_vector(ctx: PartyContext, vector: Array, material: ComparisonMaterial) -> None:
    """§7.2 Private compare, step 2: P0 sends rot(m d^(0) + s), P1 sends rot(m d^(1) - s) to P2.

    m, s and the rotations are the material's kappa_1 masks (§6.2), known to P0 and P1.
    """
    prime = material.mask_bits.ring.modulus
    width = material.bits + 1
    masked = material.multipliers * vector.reshape(material.count, width)
    if ctx.party == 0:
        masked += material.blinding
    else:
        masked -= material.blinding
    doubled = np.tile(_mod_prime(masked, prime), 2)
    windows = np.lib.stride_tricks.sliding_window_view(doubled, width, axis=1)
    rotated = windows[np.arange(material.count), material.rotations]
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
