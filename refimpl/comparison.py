"""§7 Comparison: private compare over Z_p, DReLU, ReLU, selection, max and argmax.

Every comparison consumes one element of §6 comparison material. The masked input is
opened to P0 and P1 only; P0 and P1 then hand P2 a multiplicatively masked, rotated
2-out-of-2 sharing of the private-compare vector, from which P2 learns one bit that the
random flip beta hides.
"""

from __future__ import annotations

from refimpl.arithmetic import local_products, mul, reshare_receive, reshare_send
from refimpl.preprocessing import ComparisonMaterial, ComparisonPool, lift_bits
from refimpl.ring import BINARY, Ring, ShapeError, Share, element_count
from refimpl.sharing import add, add_public, concatenate, gather, mul_public, public_share, sub
from refimpl.transport import PartyContext, recv_elements, send_elements

OPENER = 2
"""§7.2 Private compare: the party that learns the masked comparison bit."""


def open_to_comparers(ctx: PartyContext, masked: Share) -> None:
    """§7.1 Masked opening, step 1: P2 sends x_2 to P0 and x_0 to P1."""
    if ctx.party == OPENER:
        send_elements(ctx, 0, "cmp-open", masked.ring, masked.first)
        send_elements(ctx, 1, "cmp-open", masked.ring, masked.second)


def receive_opened(ctx: PartyContext, masked: Share) -> list[int] | None:
    """§7.1 Masked opening, step 2: P0 and P1 add the missing component; P2 learns nothing."""
    if ctx.party == OPENER:
        return None
    count = element_count(masked.shape)
    missing = recv_elements(ctx, OPENER, "cmp-open", masked.ring, count)
    modulus = masked.ring.modulus
    return [(a + b + c) % modulus for a, b, c in zip(masked.first, masked.second, missing, strict=True)]


def _own_part(ctx: PartyContext, share: Share) -> list[int]:
    """P0's components x_0 + x_1, or P1's component x_2: a 2-out-of-2 sharing between P0 and P1."""
    if ctx.party == 0:
        return [(a + b) % share.ring.modulus for a, b in zip(share.first, share.second, strict=True)]
    return list(share.second)


def compare_vector(ctx: PartyContext, opened: list[int], material: ComparisonMaterial) -> list[int]:
    """§7.2 Private compare, step 1: P0's or P1's part of d, shape (count, k + 1), in Z_p.

    For j < k: d_j = 1 + c_j - r_j + sum_{i>j} (c_i + (1 - 2 c_i) r_i) - 2 c_j beta + 2 beta r_j,
    and d_k = 1 - beta + sum_i (c_i beta + (1 - 2 c_i) beta r_i), with c the opened value.
    Exactly one d_j is zero when [r mod 2^k > c mod 2^k] XOR beta = 1, none otherwise.
    P0 adds the public constants.
    """
    prime = material.mask_bits.ring.modulus
    k = material.bits
    bits = _own_part(ctx, material.mask_bits)
    flip = _own_part(ctx, material.flip)
    flipped = _own_part(ctx, material.flipped_bits)
    constant = 1 if ctx.party == 0 else 0
    vector = []
    for element, value in enumerate(opened):
        c = [(value >> j) & 1 for j in range(k)]
        r = bits[element * k : (element + 1) * k]
        beta_r = flipped[element * k : (element + 1) * k]
        beta = flip[element]
        above = 0
        positions = [0] * (k + 1)
        for j in reversed(range(k)):
            own = constant * (1 + c[j]) - r[j] - 2 * c[j] * beta + 2 * beta_r[j]
            positions[j] = (above + own) % prime
            above += constant * c[j] + (1 - 2 * c[j]) * r[j]
        equal = constant - beta + sum(c[i] * beta + (1 - 2 * c[i]) * beta_r[i] for i in range(k))
        positions[k] = equal % prime
        vector.extend(positions)
    return vector


def _rotate(values: list[int], width: int, rotations: list[int]) -> list[int]:
    """Row e of the (rows, width) ``values`` rotated left by rotations[e] positions."""
    rotated: list[int] = []
    for row, shift in enumerate(rotations):
        segment = values[row * width : (row + 1) * width]
        rotated.extend(segment[(j + shift) % width] for j in range(width))
    return rotated


def send_compare_vector(ctx: PartyContext, vector: list[int], material: ComparisonMaterial) -> None:
    """§7.2 Private compare, step 2: P0 sends rot(m d^(0) + s), P1 sends rot(m d^(1) - s) to P2.

    m, s and the rotations are the material's kappa_1 masks (§6.2), known to P0 and P1.
    """
    field = material.mask_bits.ring
    width = material.bits + 1
    sign = 1 if ctx.party == 0 else -1
    masked = [
        (m * d + sign * s) % field.modulus
        for m, d, s in zip(material.multipliers, vector, material.blinding, strict=True)
    ]
    send_elements(ctx, OPENER, "cmp-compare", field, _rotate(masked, width, material.rotations))


def zero_test(ctx: PartyContext, material: ComparisonMaterial) -> list[int]:
    """§7.2 Private compare, step 3: P2 adds the two vectors; beta' = 1 where a row has a zero."""
    field = material.mask_bits.ring
    width = material.bits + 1
    count = material.count
    first = recv_elements(ctx, 0, "cmp-compare", field, count * width)
    second = recv_elements(ctx, 1, "cmp-compare", field, count * width)
    totals = [(a + b) % field.modulus for a, b in zip(first, second, strict=True)]
    return [int(0 in totals[row * width : (row + 1) * width]) for row in range(count)]


def sign_bits(
    ctx: PartyContext, x: Share, material: ComparisonMaterial, during_opening: Share | None
) -> tuple[list[int], Share | None]:
    """§7.3 DReLU, steps 1-4: the public bits v with DReLU(x) = v XOR (r_k XOR beta).

    Pre-condition: |signed(x)| < 2^k. ``during_opening``, if given, is multiplied by the
    material's top bit [r_k XOR beta] in the round of the opening (for ReLU).
    """
    count = element_count(x.shape)
    if material.count != count:
        raise ShapeError(f"{material.count} elements of material for {count} comparisons")
    k = material.bits
    shifted = add_public(ctx, x, 1 << k)
    mask = Share(material.mask.ring, x.shape, material.mask.first, material.mask.second)
    masked = add(shifted, mask)
    open_to_comparers(ctx, masked)
    sent = None
    if during_opening is not None:
        top = Share(material.top.ring, x.shape, material.top.first, material.top.second)
        sent = reshare_send(ctx, x.ring, local_products(top, during_opening), x.shape)
    opened = receive_opened(ctx, masked)
    product = None if sent is None else reshare_receive(ctx, x.ring, sent, x.shape)
    if opened is not None:
        send_compare_vector(ctx, compare_vector(ctx, opened, material), material)
        top_bits = [(value >> k) & 1 for value in opened]
        if ctx.party == 0:
            send_elements(ctx, OPENER, "cmp-top", BINARY, top_bits)
        flipped = recv_elements(ctx, OPENER, "cmp-result", BINARY, count)
        return [a ^ b for a, b in zip(top_bits, flipped, strict=True)], product
    flipped = zero_test(ctx, material)
    top_bits = recv_elements(ctx, 0, "cmp-top", BINARY, count)
    send_elements(ctx, 0, "cmp-result", BINARY, flipped)
    send_elements(ctx, 1, "cmp-result", BINARY, flipped)
    return [a ^ b for a, b in zip(top_bits, flipped, strict=True)], product


def _xor_public(ctx: PartyContext, bit: Share, public: list[int]) -> Share:
    """[b XOR v] = [b] + v (1 - 2 [b]) for a shared bit b and public bits v (§4.6)."""
    return add_public(ctx, mul_public(bit, [1 - 2 * v for v in public]), public)


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
    relu_value = add(product, mul_public(difference, public))
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


def _columns(rows: int, width: int, columns: range, inner: int) -> list[int]:
    """Flat indices of ``columns`` of a (rows, width, inner) tensor, in row-major order."""
    return [
        (row * width + column) * inner + i for row in range(rows) for column in columns for i in range(inner)
    ]


def _append_column(ctx: PartyContext, winners: Share, x: Share, inner: int) -> Share:
    """The (rows, pairs, inner) winners followed by x's last column when x's width is odd."""
    rows, width = x.shape[0], x.shape[1]
    pairs = width // 2
    if width % 2 == 0:
        return winners
    last = gather(x, _columns(rows, width, range(width - 1, width), inner), (rows, 1, inner))
    merged = concatenate([winners, last])
    order = [
        (row * pairs + column) * inner + i if column < pairs else (rows * pairs + row) * inner + i
        for row in range(rows)
        for column in range(pairs + 1)
        for i in range(inner)
    ]
    return gather(merged, order, (rows, pairs + 1, inner))


def _tournament_round(
    ctx: PartyContext, values: Share, onehot: Share | None, pool: ComparisonPool
) -> tuple[Share, Share | None]:
    """One level: columns (0, 1), (2, 3), ... compete; max(a, b) = b + ReLU(a - b); a wins ties."""
    rows, width = values.shape
    pairs = width // 2
    left = gather(values, _columns(rows, width, range(0, 2 * pairs, 2), 1), (rows, pairs))
    right = gather(values, _columns(rows, width, range(1, 2 * pairs, 2), 1), (rows, pairs))
    gain, left_wins = relu_and_derivative(ctx, sub(left, right), pool)
    winners = _append_column(
        ctx, add(right, gain), Share(values.ring, (rows, width, 1), values.first, values.second), 1
    )
    next_values = Share(values.ring, winners.shape[:2], winners.first, winners.second)
    if onehot is None:
        return next_values, None
    inner = onehot.shape[2]
    left_vectors = gather(onehot, _columns(rows, width, range(0, 2 * pairs, 2), inner), (rows, pairs, inner))
    right_vectors = gather(onehot, _columns(rows, width, range(1, 2 * pairs, 2), inner), (rows, pairs, inner))
    spread = gather(
        left_wins, [index // inner for index in range(rows * pairs * inner)], (rows, pairs, inner)
    )
    chosen = add(right_vectors, mul(ctx, spread, sub(left_vectors, right_vectors)))
    return next_values, _append_column(ctx, chosen, onehot, inner)


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
    values = Share(x.ring, (rows, classes), x.first, x.second)
    onehot = None
    if with_argmax:
        identity = [
            int(column == c) for _ in range(rows) for column in range(classes) for c in range(classes)
        ]
        onehot = public_share(ctx, x.ring, identity, (rows, classes, classes))
    while values.shape[1] > 1:
        values, onehot = _tournament_round(ctx, values, onehot, pool)
    maxima = Share(x.ring, x.shape[:-1], values.first, values.second)
    if onehot is None:
        return maxima, None
    return maxima, Share(x.ring, x.shape, onehot.first, onehot.second)


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


def _top(material: ComparisonMaterial, shape: tuple[int, ...]) -> Share:
    return Share(material.top.ring, shape, material.top.first, material.top.second)
