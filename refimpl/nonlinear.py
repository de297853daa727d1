"""§8 Non-linear approximations: exponential, reciprocal, softmax and logarithm in fixed point."""

from __future__ import annotations

import math

from refimpl.arithmetic import mul_truncate, truncate
from refimpl.comparison import maximum, relu
from refimpl.preprocessing import ComparisonPool
from refimpl.ring import Profile, ShapeError, Share, element_count, encode_fixed
from refimpl.sharing import add, add_public, gather, mul_public, public_share, sub, sum_last_axis
from refimpl.transport import PartyContext

EXP_SQUARINGS = 5
"""§8.1 Exponential: n, so that exp(x) = (1 + t + t^2/2)^(2^n) with t = x / 2^n."""

RECIPROCAL_ITERATIONS = 4
"""§8.2 Reciprocal: Newton iterations after the minimax linear start."""

LOG_DEGREE = 10
"""§8.4 Logarithm: the degree of the polynomial that interpolates ln on [1, S]."""


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


def softmax_parts(ctx: PartyContext, x: Share, pool: ComparisonPool) -> tuple[Share, Share, Share]:
    """§8.3 Softmax, steps 1-5: d = x - max (over the last axis), e^d and the row sums of e^d."""
    comparisons_for_softmax(x.shape)
    largest = maximum(ctx, x, pool)
    shifted = sub(x, _broadcast_last(largest, x.shape))
    powers = exp_nonpositive(ctx, shifted, pool)
    return shifted, powers, sum_last_axis(powers)


def normalise(ctx: PartyContext, powers: Share, sums: Share) -> Share:
    """§8.3 Softmax, steps 6-7: e^d times the reciprocal of its row sum (in [1, C])."""
    inverse = reciprocal(ctx, sums, float(powers.shape[-1]))
    return mul_truncate(ctx, powers, _broadcast_last(inverse, powers.shape), ctx.profile.fractional_bits)


def softmax(ctx: PartyContext, x: Share, pool: ComparisonPool) -> Share:
    """§8.3 Softmax: over the last axis, e^(x - max) / sum e^(x - max).

    The maximum (§7.7) makes every exponent non-positive and the denominator lie in
    [1, C], the domain of §8.2 with S = C.
    """
    _, powers, sums = softmax_parts(ctx, x, pool)
    return normalise(ctx, powers, sums)


def log_coefficients(upper: float) -> list[float]:
    """§8.4 Logarithm: a_0..a_n with ln(x) ~ sum a_i t^i, t = (2x - S - 1) / (S - 1), S = ``upper``.

    The polynomial of degree n = ``LOG_DEGREE`` that interpolates ln at the n + 1 Chebyshev
    nodes of [1, S], written in powers of t (float64, computed the same way everywhere).
    """
    if not upper > 1.0:
        raise ValueError(f"the logarithm needs an upper bound above 1, got {upper}")
    count = LOG_DEGREE + 1
    centre, radius = (upper + 1.0) / 2.0, (upper - 1.0) / 2.0
    angles = [math.pi * (node + 0.5) / count for node in range(count)]
    values = [math.log(centre + radius * math.cos(angle)) for angle in angles]
    chebyshev = [
        (2.0 if order else 1.0)
        / count
        * sum(v * math.cos(order * a) for v, a in zip(values, angles, strict=True))
        for order in range(count)
    ]
    powers: list[list[float]] = [[1.0], [0.0, 1.0]]  # T_0, T_1 in powers of t
    for order in range(2, count):
        following = [0.0] * (order + 1)
        for power, weight in enumerate(powers[order - 1]):
            following[power + 1] += 2.0 * weight
        for power, weight in enumerate(powers[order - 2]):
            following[power] -= weight
        powers.append(following)
    return [
        sum(chebyshev[order] * powers[order][power] for order in range(power, count))
        for power in range(count)
    ]


def log_bounded(ctx: PartyContext, x: Share, upper: float) -> Share:
    """§8.4 Logarithm: ln x for x in [1, upper], by Horner's rule on t = (2x - S - 1) / (S - 1).

    One truncation for t, then ``LOG_DEGREE`` truncated multiplications in sequence; no
    comparison material.
    """
    profile = ctx.profile
    f = profile.fractional_bits
    modulus = x.ring.modulus
    coefficients = log_coefficients(upper)
    scaled = truncate(ctx, mul_public(x, _public(profile, 2.0 / (upper - 1.0)) % modulus), f)
    t = add_public(ctx, scaled, _public(profile, -(upper + 1.0) / (upper - 1.0)) % modulus)
    value = public_share(ctx, x.ring, [_public(profile, coefficients[-1]) % modulus] * len(x.first), x.shape)
    for coefficient in reversed(coefficients[:-1]):
        value = add_public(ctx, mul_truncate(ctx, value, t, f), _public(profile, coefficient) % modulus)
    return value
