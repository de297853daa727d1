"""§8 Non-linear approximations: exponential, reciprocal and softmax in fixed point."""

from __future__ import annotations

from refimpl.arithmetic import mul_truncate, truncate
from refimpl.comparison import maximum, relu
from refimpl.preprocessing import ComparisonPool
from refimpl.ring import Profile, ShapeError, Share, element_count, encode_fixed
from refimpl.sharing import add, add_public, gather, mul_public, sub, sum_last_axis
from refimpl.transport import PartyContext

EXP_SQUARINGS = 5
"""§8.1 Exponential: n, so that exp(x) = (1 + t + t^2/2)^(2^n) with t = x / 2^n."""

RECIPROCAL_ITERATIONS = 4
"""§8.2 Reciprocal: Newton iterations after the minimax linear start."""


def _public(profile: Profile, value: float) -> int:
    return encode_fixed(profile, [value])[0]


def exp_nonpositive(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§8.1 Exponential: e^x for x <= 0, with inputs below -2^n clamped to -2^n.

    Steps: y = -2^n + ReLU(x + 2^n); t = y / 2^n (truncation); p = 1 + t + t^2 / 2;
    square p n times. Consumes one element of comparison material per input.
    """
    profile = ctx.profile
    f = profile.fractional_bits
    limit = _public(profile, float(1 << EXP_SQUARINGS))
    clamped = add_public(ctx, relu(ctx, add_public(ctx, x, limit), pool), -limit)
    t = truncate(ctx, clamped, EXP_SQUARINGS)
    half_square = mul_truncate(ctx, t, t, f + 1)
    power = add_public(ctx, add(t, half_square), _public(profile, 1.0))
    for _ in range(EXP_SQUARINGS):
        power = mul_truncate(ctx, power, power, f)
    return power


def reciprocal(ctx: PartyContext, x: Share, upper: float) -> Share:
    """§8.2 Reciprocal: 1 / x for x in [1, upper], by Newton's iteration y <- y (2 - x y).

    The start y_0 = a - b x with b = 8 / (S^2 + 6 S + 1), a = b (S + 1), S = upper, keeps
    |1 - x y_0| <= 1 - b (S + 1) + b; each iteration squares that relative error.
    """
    if not upper >= 1.0:
        raise ValueError(f"reciprocal needs an upper bound of at least 1, got {upper}")
    profile = ctx.profile
    f = profile.fractional_bits
    slope = 8.0 / (upper * upper + 6.0 * upper + 1.0)
    estimate = add_public(
        ctx,
        truncate(ctx, mul_public(x, -_public(profile, slope) % x.ring.modulus), f),
        _public(profile, slope * (upper + 1.0)),
    )
    two = _public(profile, 2.0)
    for _ in range(RECIPROCAL_ITERATIONS):
        product = mul_truncate(ctx, x, estimate, f)
        correction = add_public(ctx, mul_public(product, x.ring.modulus - 1), two)
        estimate = mul_truncate(ctx, estimate, correction, f)
    return estimate


def _broadcast_last(x: Share, shape: tuple[int, ...]) -> Share:
    """Repeat a sharing of shape[:-1] along a new last axis of length shape[-1]."""
    width = shape[-1]
    return gather(x, [index // width for index in range(element_count(shape))], shape)


def comparisons_for_softmax(shape: tuple[int, ...]) -> int:
    """§8.3 Softmax: the comparison material it consumes: rows x (2 C - 1)."""
    if not shape or shape[-1] < 1:
        raise ShapeError(f"softmax needs a non-empty last axis, got {shape}")
    return element_count(shape) // shape[-1] * (2 * shape[-1] - 1)


def softmax(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§8.3 Softmax: over the last axis, e^(x - max) / sum e^(x - max).

    The maximum (§7.7) makes every exponent non-positive and the denominator lie in
    [1, C], the domain of §8.2 with S = C.
    """
    comparisons_for_softmax(x.shape)
    largest = maximum(ctx, x, pool)
    shifted = sub(x, _broadcast_last(largest, x.shape))
    powers = exp_nonpositive(ctx, shifted, pool)
    inverse = reciprocal(ctx, sum_last_axis(powers), float(x.shape[-1]))
    return mul_truncate(ctx, powers, _broadcast_last(inverse, x.shape), ctx.profile.fractional_bits)
