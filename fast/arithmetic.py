"""§5 Multiplication, matrix multiplication and truncation, vectorised.

Ring matrix products run through BLAS: operands are split into signed limbs small enough
that every float64 dot product is an exact integer, and the limb products are recombined
modulo 2^l.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from fast.randomness import component_elements, zero_share
from fast.ring import (
    Array,
    Share,
    dtype_of,
    ring_add,
    ring_mul,
    ring_neg,
    ring_sub,
    to_signed,
    wraps_natively,
)
from fast.transport import recv_elements, send_elements
from refimpl.arithmetic import A_HOLDER
from refimpl.ring import Ring, ShapeError, element_count
from refimpl.sharing import following, preceding
from refimpl.transport import PartyContext

__all__ = [
    "A_HOLDER",
    "finish_truncation",
    "local_matrix_products",
    "local_products",
    "matmul",
    "matmul_shape",
    "matmul_truncate",
    "mul",
    "mul_truncate",
    "reshare",
    "reshare_receive",
    "reshare_send",
    "ring_matmul",
    "shift_a",
    "shift_b",
    "truncate",
    "truncate_products",
]

EXACT_FLOAT_BITS = 53


def _check_multiplicable(x: Share, y: Share) -> None:
    if x.ring != y.ring:
        raise ShapeError(f"ring mismatch: {x.ring.name} and {y.ring.name}")


def local_products(x: Share, y: Share) -> Array:
    """§5.1 Multiplication, step 1: t_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i (elementwise)."""
    _check_multiplicable(x, y)
    if x.shape != y.shape:
        raise ShapeError(f"shape mismatch: {x.shape} and {y.shape}")
    ring = x.ring
    both = ring_add(ring, y.first, y.second)
    return ring_add(ring, ring_mul(ring, x.first, both), ring_mul(ring, x.second, y.first))


def matmul_shape(x: Share, y: Share) -> tuple[int, int, int]:
    """§5.2 Matrix multiplication: (m, k) by (k, n), returning (m, k, n)."""
    _check_multiplicable(x, y)
    if len(x.shape) != 2 or len(y.shape) != 2 or x.shape[1] != y.shape[0]:
        raise ShapeError(f"cannot multiply matrices of shapes {x.shape} and {y.shape}")
    return x.shape[0], x.shape[1], y.shape[1]


def limb_layout(bits: int, inner: int) -> tuple[int, int]:
    """The fewest limbs (and their width b) with inner * 4^(b-1) <= 2^53, so sums stay exact."""
    limbs = 1
    while True:
        width = math.ceil(bits / limbs)
        if inner * 4.0 ** (width - 1) <= 2.0**EXACT_FLOAT_BITS:
            return limbs, width
        limbs += 1


def limb_widths(bits: int, limbs: int, width: int) -> list[int]:
    """The widths w_j of the limbs: ``width`` each, the last one what is left of ``bits``."""
    return [width] * (limbs - 1) + [bits - width * (limbs - 1)]


def _limb_constants(bits: int, limbs: int, width: int) -> tuple[int, NDArray[np.uint64], NDArray[np.float64]]:
    """The offset sum_j 2^(w_j - 1) 2^(width j) mod 2^64, the limb masks and the halves 2^(w_j - 1)."""
    widths = limb_widths(bits, limbs, width)
    offset = sum(1 << (limb_bits - 1 + width * index) for index, limb_bits in enumerate(widths))
    masks = np.array([(1 << limb_bits) - 1 for limb_bits in widths], dtype=np.uint64)
    halves = np.array([float(1 << (limb_bits - 1)) for limb_bits in widths])
    return offset % (1 << 64), masks, halves


def _split_rows(
    values: NDArray[np.uint64],
    offset: np.uint64,
    width: int,
    masks: NDArray[np.uint64],
    halves: NDArray[np.float64],
    out: NDArray[np.float64],
    stacked: bool,
) -> None:
    """Limb j of values[r, c] into out[j * rows + r, c], or into out[r, j * columns + c] when ``stacked``."""
    rows, columns = values.shape
    limbs = masks.size
    for r in range(rows):
        for c in range(columns):
            shifted = values[r, c] + offset
            for j in range(limbs):
                field = np.int64((shifted >> np.uint64(width * j)) & masks[j])
                limb = np.float64(field) - halves[j]
                if stacked:
                    out[r, j * columns + c] = limb
                else:
                    out[j * rows + r, c] = limb


_split_kernel: Callable[..., None] = numba.njit(nogil=True, cache=True)(_split_rows)


def _accumulate_rows(
    block: NDArray[np.float64], columns: int, first_shift: int, width: int, total: NDArray[np.uint64]
) -> None:
    """total += sum_j block[:, j columns : (j + 1) columns] * 2^(first_shift + width j) mod 2^64."""
    rows = total.shape[0]
    parts = block.shape[1] // columns
    for r in range(rows):
        for c in range(columns):
            accumulated = total[r, c]
            for j in range(parts):
                exact = np.uint64(np.int64(block[r, j * columns + c]))
                accumulated += exact << np.uint64(first_shift + width * j)
            total[r, c] = accumulated


_accumulate_kernel: Callable[..., None] = numba.njit(nogil=True, cache=True)(_accumulate_rows)


def signed_limbs(values: Array, bits: int, limbs: int, width: int) -> list[NDArray[np.float64]]:
    """Split values mod 2^bits into signed limbs L_j in [-2^(w_j-1), 2^(w_j-1)) with sum L_j 2^(width j).

    Adding the offset sum_j 2^(w_j - 1) 2^(width j) makes every limb an unsigned field
    u_j = L_j + 2^(w_j - 1), so each limb is one shift, one mask and one subtraction.
    """
    matrix = np.ascontiguousarray(values, dtype=np.uint64).reshape(values.shape[0], -1)
    offset, masks, halves = _limb_constants(bits, limbs, width)
    out = np.empty((limbs * matrix.shape[0], matrix.shape[1]))
    _split_kernel(matrix, np.uint64(offset), width, masks, halves, out, False)
    rows = matrix.shape[0]
    return [out[j * rows : (j + 1) * rows].reshape(values.shape) for j in range(limbs)]


def stacked_limbs(values: Array, bits: int, limbs: int, width: int) -> NDArray[np.float64]:
    """The signed limbs of a matrix side by side: [L_0 | L_1 | ...], shape (rows, limbs * columns)."""
    matrix = np.ascontiguousarray(values, dtype=np.uint64)
    offset, masks, halves = _limb_constants(bits, limbs, width)
    out = np.empty((matrix.shape[0], limbs * matrix.shape[1]))
    _split_kernel(matrix, np.uint64(offset), width, masks, halves, out, True)
    return out


def ring_matmul(ring: Ring, a: Array, b: Array) -> Array:
    """(m, k) @ (k, n) exactly in ``ring``, through float64 BLAS on signed limbs."""
    inner = a.shape[1]
    if not wraps_natively(ring):
        exact = a.astype(np.float64) @ b.astype(np.float64)
        if inner * (ring.modulus - 1) ** 2 >= 2**EXACT_FLOAT_BITS:
            raise ValueError(f"inner dimension {inner} too large for exact {ring.name} products")
        return (exact.astype(np.int64) % ring.modulus).astype(np.uint8)
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=dtype_of(ring))
    bits = ring.bits
    limbs, width = limb_layout(bits, inner)
    a_limbs = signed_limbs(a, bits, limbs, width)
    b_stacked = stacked_limbs(b, bits, limbs, width)
    columns = b.shape[1]
    total = np.zeros((a.shape[0], columns), dtype=np.uint64)
    for i in range(limbs):
        block = a_limbs[i] @ b_stacked[:, : columns * (limbs - i)]
        _accumulate_kernel(block, columns, width * i, width, total)
    return total.astype(dtype_of(ring))


def local_matrix_products(x: Share, y: Share) -> Array:
    """§5.2 Matrix multiplication, step 1: T_i = X_i Y_i + X_i Y_{i+1} + X_{i+1} Y_i."""
    matmul_shape(x, y)
    ring = x.ring
    left = np.concatenate([x.first, x.second], axis=1)
    right = np.concatenate([ring_add(ring, y.first, y.second), y.first], axis=0)
    return ring_matmul(ring, left, right)


def reshare_send(ctx: PartyContext, ring: Ring, products: Array, shape: tuple[int, ...]) -> Array:
    """§5.1 Multiplication, step 2a: z_i = t_i + alpha_i, sent to P_{i-1}; returns z_i."""
    shape = tuple(shape)
    alpha = zero_share(ctx, ring, element_count(shape)).reshape(shape)
    masked = ring_add(ring, products.reshape(shape), alpha)
    send_elements(ctx, preceding(ctx.party), "reshare", ring, masked)
    return masked


def reshare_receive(ctx: PartyContext, ring: Ring, masked: Array, shape: tuple[int, ...]) -> Share:
    """§5.1 Multiplication, step 2b: receive z_{i+1} from P_{i+1}; P_i holds (z_i, z_{i+1})."""
    shape = tuple(shape)
    received = recv_elements(ctx, following(ctx.party), "reshare", ring, element_count(shape)).reshape(shape)
    return Share(ring, shape, masked.reshape(shape), received)


def reshare(ctx: PartyContext, ring: Ring, products: Array, shape: tuple[int, ...]) -> Share:
    """§5.1 Multiplication, step 2: z_i = t_i + alpha_i, sent to P_{i-1}; P_i holds (z_i, z_{i+1})."""
    return reshare_receive(ctx, ring, reshare_send(ctx, ring, products, shape), shape)


def mul(ctx: PartyContext, x: Share, y: Share) -> Share:
    """§5.1 Multiplication: x * y elementwise; one round, one element per output per party."""
    return reshare(ctx, x.ring, local_products(x, y), x.shape)


def matmul(ctx: PartyContext, x: Share, y: Share) -> Share:
    """§5.2 Matrix multiplication: X Y with one resharing of the (m, n) result."""
    rows, _, columns = matmul_shape(x, y)
    return reshare(ctx, x.ring, local_matrix_products(x, y), (rows, columns))


def shift_a(ring: Ring, values: Array, bits: int) -> Array:
    """§5.3 Truncation: A' = floor(signed(A) / 2^d), the A holder's local shift."""
    return (to_signed(ring, values) >> np.int64(bits)).astype(dtype_of(ring))


def shift_b(ring: Ring, values: Array, bits: int) -> Array:
    """§5.3 Truncation: B' = -floor(signed(-B) / 2^d), the B holders' local shift."""
    shifted = (to_signed(ring, ring_neg(ring, values)) >> np.int64(bits)).astype(dtype_of(ring))
    return ring_neg(ring, shifted)


def _check_bits(ring: Ring, bits: int) -> None:
    if not 0 < bits < ring.bits or not ring.is_power_of_two:
        raise ValueError(f"cannot truncate {ring.name} by {bits} bits")


def finish_truncation(
    ctx: PartyContext, ring: Ring, masked: Array | None, mask: Array | None, shape: tuple[int, ...], bits: int
) -> Share:
    """§5.3 Truncation, steps 3-4: shift A and B locally; P0 reshares A' with gamma from kappa_0.

    ``masked`` is A at P0 (else ``None``); ``mask`` is B at P1 and P2 (else ``None``).
    Output: y_0 = gamma, y_1 = A' - gamma, y_2 = B'.
    """
    shape = tuple(shape)
    count = element_count(shape)
    if ctx.party == A_HOLDER:
        assert masked is not None
        gamma = component_elements(ctx, 0, ring, "trunc-gamma", count).reshape(shape)
        sent = ring_sub(ring, shift_a(ring, masked, bits).reshape(shape), gamma)
        send_elements(ctx, 1, "trunc-reshare", ring, sent)
        return Share(ring, shape, gamma, sent)
    assert mask is not None
    shifted = shift_b(ring, mask, bits).reshape(shape)
    if ctx.party == 1:
        received = recv_elements(ctx, A_HOLDER, "trunc-reshare", ring, count).reshape(shape)
        return Share(ring, shape, received, shifted)
    gamma = component_elements(ctx, 0, ring, "trunc-gamma", count).reshape(shape)
    return Share(ring, shape, shifted, gamma)


def truncate_products(
    ctx: PartyContext, ring: Ring, products: Array, shape: tuple[int, ...], bits: int
) -> Share:
    """§5.4 Truncated multiplication: from 3-out-of-3 products t_i to a sharing of ~z / 2^d.

    P1 and P2 draw B and rho from kappa_2; P1 sends t_1 - rho and P2 sends
    t_2 + rho - B to P0, who forms A = t_0 + (t_1 - rho) + (t_2 + rho - B) = z - B.
    """
    _check_bits(ring, bits)
    count = element_count(shape)
    flat = products.reshape(-1)
    if ctx.party == A_HOLDER:
        from_1 = recv_elements(ctx, 1, "trunc-open", ring, count)
        from_2 = recv_elements(ctx, 2, "trunc-open", ring, count)
        masked = ring_add(ring, ring_add(ring, flat, from_1), from_2)
        return finish_truncation(ctx, ring, masked, None, shape, bits)
    mask = component_elements(ctx, 2, ring, "trunc-mask", count)
    rho = component_elements(ctx, 2, ring, "trunc-rho", count)
    if ctx.party == 1:
        message = ring_sub(ring, flat, rho)
    else:
        message = ring_sub(ring, ring_add(ring, flat, rho), mask)
    send_elements(ctx, A_HOLDER, "trunc-open", ring, message)
    return finish_truncation(ctx, ring, None, mask, shape, bits)


def truncate(ctx: PartyContext, x: Share, bits: int) -> Share:
    """§5.3 Truncation: a sharing of x / 2^d (probabilistic, error below one unit).

    P1 and P2 draw B from kappa_2; P2 sends x_2 - B to P0, who forms
    A = x_0 + x_1 + (x_2 - B) = x - B. Two rounds, one element from P2 and one from P0.
    """
    ring = x.ring
    _check_bits(ring, bits)
    count = element_count(x.shape)
    if ctx.party == A_HOLDER:
        from_2 = recv_elements(ctx, 2, "trunc-open", ring, count)
        masked = ring_add(ring, ring_add(ring, x.first.reshape(-1), x.second.reshape(-1)), from_2)
        return finish_truncation(ctx, ring, masked, None, x.shape, bits)
    mask = component_elements(ctx, 2, ring, "trunc-mask", count)
    if ctx.party == 2:
        send_elements(ctx, A_HOLDER, "trunc-open", ring, ring_sub(ring, x.first.reshape(-1), mask))
    return finish_truncation(ctx, ring, None, mask, x.shape, bits)


def mul_truncate(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§5.4 Truncated multiplication: x * y / 2^d elementwise, fused (two rounds)."""
    return truncate_products(ctx, x.ring, local_products(x, y), x.shape, bits)


def matmul_truncate(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§5.4 Truncated multiplication: X Y / 2^d, fused (two rounds)."""
    rows, _, columns = matmul_shape(x, y)
    return truncate_products(ctx, x.ring, local_matrix_products(x, y), (rows, columns), bits)
