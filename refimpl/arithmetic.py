"""§5 Multiplication, matrix multiplication and truncation."""

from __future__ import annotations

from collections.abc import Sequence

from refimpl.randomness import component_elements, zero_share
from refimpl.ring import Ring, ShapeError, Share, element_count, to_signed
from refimpl.sharing import following, preceding
from refimpl.transport import PartyContext, recv_elements, send_elements

A_HOLDER = 0
"""§5.3 Truncation: the party that learns the masked value A = z - B."""


def _check_multiplicable(x: Share, y: Share) -> None:
    if x.ring != y.ring:
        raise ShapeError(f"ring mismatch: {x.ring.name} and {y.ring.name}")


def local_products(x: Share, y: Share) -> list[int]:
    """§5.1 Multiplication, step 1: t_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i (elementwise)."""
    _check_multiplicable(x, y)
    if x.shape != y.shape:
        raise ShapeError(f"shape mismatch: {x.shape} and {y.shape}")
    modulus = x.ring.modulus
    return [
        (xi * yi + xi * yn + xn * yi) % modulus
        for xi, xn, yi, yn in zip(x.first, x.second, y.first, y.second, strict=True)
    ]


def matmul_shape(x: Share, y: Share) -> tuple[int, int, int]:
    """§5.2 Matrix multiplication: (m, k) by (k, n), returning (m, k, n)."""
    _check_multiplicable(x, y)
    if len(x.shape) != 2 or len(y.shape) != 2 or x.shape[1] != y.shape[0]:
        raise ShapeError(f"cannot multiply matrices of shapes {x.shape} and {y.shape}")
    return x.shape[0], x.shape[1], y.shape[1]


def local_matrix_products(x: Share, y: Share) -> list[int]:
    """§5.2 Matrix multiplication, step 1: T_i = X_i Y_i + X_i Y_{i+1} + X_{i+1} Y_i."""
    rows, inner, columns = matmul_shape(x, y)
    modulus = x.ring.modulus
    products = []
    for row in range(rows):
        for column in range(columns):
            total = 0
            for k in range(inner):
                xi, xn = x.first[row * inner + k], x.second[row * inner + k]
                yi, yn = y.first[k * columns + column], y.second[k * columns + column]
                total += xi * yi + xi * yn + xn * yi
            products.append(total % modulus)
    return products


def reshare_send(ctx: PartyContext, ring: Ring, products: Sequence[int], shape: tuple[int, ...]) -> list[int]:
    """§5.1 Multiplication, step 2a: z_i = t_i + alpha_i, sent to P_{i-1}; returns z_i."""
    alpha = zero_share(ctx, ring, element_count(shape))
    masked = [(t + a) % ring.modulus for t, a in zip(products, alpha, strict=True)]
    send_elements(ctx, preceding(ctx.party), "reshare", ring, masked)
    return masked


def reshare_receive(ctx: PartyContext, ring: Ring, masked: Sequence[int], shape: tuple[int, ...]) -> Share:
    """§5.1 Multiplication, step 2b: receive z_{i+1} from P_{i+1}; P_i holds (z_i, z_{i+1})."""
    received = recv_elements(ctx, following(ctx.party), "reshare", ring, element_count(shape))
    return Share(ring, shape, list(masked), received)


def reshare(ctx: PartyContext, ring: Ring, products: Sequence[int], shape: tuple[int, ...]) -> Share:
    """§5.1 Multiplication, step 2: z_i = t_i + alpha_i, sent to P_{i-1}; P_i holds (z_i, z_{i+1})."""
    return reshare_receive(ctx, ring, reshare_send(ctx, ring, products, shape), shape)


def mul(ctx: PartyContext, x: Share, y: Share) -> Share:
    """§5.1 Multiplication: x * y elementwise; one round, one element per output per party."""
    return reshare(ctx, x.ring, local_products(x, y), x.shape)


def matmul(ctx: PartyContext, x: Share, y: Share) -> Share:
    """§5.2 Matrix multiplication: X Y with one resharing of the (m, n) result."""
    rows, _, columns = matmul_shape(x, y)
    return reshare(ctx, x.ring, local_matrix_products(x, y), (rows, columns))


def shift_a(ring: Ring, values: Sequence[int], bits: int) -> list[int]:
    """§5.3 Truncation: A' = floor(signed(A) / 2^d), the A holder's local shift."""
    return [(value >> bits) % ring.modulus for value in to_signed(ring, values)]


def shift_b(ring: Ring, values: Sequence[int], bits: int) -> list[int]:
    """§5.3 Truncation: B' = -floor(signed(-B) / 2^d), the B holders' local shift."""
    negated = [-value % ring.modulus for value in values]
    return [-(value >> bits) % ring.modulus for value in to_signed(ring, negated)]


def _check_bits(ring: Ring, bits: int) -> None:
    if not 0 < bits < ring.bits or not ring.is_power_of_two:
        raise ValueError(f"cannot truncate {ring.name} by {bits} bits")


def finish_truncation(
    ctx: PartyContext,
    ring: Ring,
    masked: Sequence[int] | None,
    mask: Sequence[int] | None,
    shape: tuple[int, ...],
    bits: int,
) -> Share:
    """§5.3 Truncation, steps 3-4: shift A and B locally; P0 reshares A' with gamma from kappa_0.

    ``masked`` is A at P0 (else ``None``); ``mask`` is B at P1 and P2 (else ``None``).
    Output: y_0 = gamma, y_1 = A' - gamma, y_2 = B'.
    """
    count = element_count(shape)
    if ctx.party == A_HOLDER:
        assert masked is not None
        gamma = component_elements(ctx, 0, ring, "trunc-gamma", count)
        sent = [(a - g) % ring.modulus for a, g in zip(shift_a(ring, masked, bits), gamma, strict=True)]
        send_elements(ctx, 1, "trunc-reshare", ring, sent)
        return Share(ring, shape, gamma, sent)
    assert mask is not None
    shifted = shift_b(ring, mask, bits)
    if ctx.party == 1:
        received = recv_elements(ctx, A_HOLDER, "trunc-reshare", ring, count)
        return Share(ring, shape, received, shifted)
    gamma = component_elements(ctx, 0, ring, "trunc-gamma", count)
    return Share(ring, shape, shifted, gamma)


def truncate_products(
    ctx: PartyContext, ring: Ring, products: Sequence[int], shape: tuple[int, ...], bits: int
) -> Share:
    """§5.4 Truncated multiplication: from 3-out-of-3 products t_i to a sharing of ~z / 2^d.

    P1 and P2 draw B and rho from kappa_2; P1 sends t_1 - rho and P2 sends
    t_2 + rho - B to P0, who forms A = t_0 + (t_1 - rho) + (t_2 + rho - B) = z - B.
    """
    _check_bits(ring, bits)
    count = element_count(shape)
    modulus = ring.modulus
    if ctx.party == A_HOLDER:
        from_1 = recv_elements(ctx, 1, "trunc-open", ring, count)
        from_2 = recv_elements(ctx, 2, "trunc-open", ring, count)
        masked = [(t + a + b) % modulus for t, a, b in zip(products, from_1, from_2, strict=True)]
        return finish_truncation(ctx, ring, masked, None, shape, bits)
    mask = component_elements(ctx, 2, ring, "trunc-mask", count)
    rho = component_elements(ctx, 2, ring, "trunc-rho", count)
    if ctx.party == 1:
        message = [(t - r) % modulus for t, r in zip(products, rho, strict=True)]
    else:
        message = [(t + r - b) % modulus for t, r, b in zip(products, rho, mask, strict=True)]
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
        masked = [(a + b + c) % ring.modulus for a, b, c in zip(x.first, x.second, from_2, strict=True)]
        return finish_truncation(ctx, ring, masked, None, x.shape, bits)
    mask = component_elements(ctx, 2, ring, "trunc-mask", count)
    if ctx.party == 2:
        message = [(a - b) % ring.modulus for a, b in zip(x.first, mask, strict=True)]
        send_elements(ctx, A_HOLDER, "trunc-open", ring, message)
    return finish_truncation(ctx, ring, None, mask, x.shape, bits)


def mul_truncate(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§5.4 Truncated multiplication: x * y / 2^d elementwise, fused (two rounds)."""
    return truncate_products(ctx, x.ring, local_products(x, y), x.shape, bits)


def matmul_truncate(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§5.4 Truncated multiplication: X Y / 2^d, fused (two rounds)."""
    rows, _, columns = matmul_shape(x, y)
    return truncate_products(ctx, x.ring, local_matrix_products(x, y), (rows, columns), bits)
