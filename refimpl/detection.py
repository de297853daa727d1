"""§11 Backdoor detection: the outlier test of Algorithm 2 (MAD) on the secondary server P3.

Pure Python over lists of ``float`` (no numpy). The median is the one numpy computes: the
middle value for an odd count, the mean of the two middle values for an even count
(§11.2). :mod:`fast.detection` computes the same values over numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from refimpl.arithmetic import local_products, matmul_truncate, mul, mul_truncate, truncate, truncate_products
from refimpl.comparison import comparisons_for_max, max_and_argmax
from refimpl.nonlinear import softmax
from refimpl.preprocessing import ComparisonPool
from refimpl.ring import Profile, ShapeError, Share, encode_fixed
from refimpl.sharing import (
    add,
    add_public,
    concatenate,
    deal_input,
    gather,
    mul_public,
    receive_input,
    receive_revealed,
    reveal_to,
    sub,
    sum_last_axis,
)
from refimpl.training import (
    Architecture,
    comparisons_for_training_step,
    forward,
    sum_all,
    transposed,
    without_bias_row,
)
from refimpl.transport import PartyContext

CONSISTENCY_CONSTANT = 1.4826
"""§11.2 Outlier detection (Algorithm 2): the MAD scale of a normal distribution."""

ANOMALY_THRESHOLD = 2.0
"""§11.2 Outlier detection (Algorithm 2): a label is flagged when its index exceeds this."""


def _check_norms(norms: Sequence[float]) -> list[float]:
    """§11.2: at least one finite, non-negative norm (``ValueError`` if not)."""
    values = [float(norm) for norm in norms]
    if not values:
        raise ValueError("Algorithm 2 needs at least one norm")
    for value in values:
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"every norm must be finite and non-negative, got {value!r}")
    return values


def compute_median(values: Sequence[float]) -> float:
    """§11.2 Outlier detection (Algorithm 2): numpy's median (mean of the two middle values if even)."""
    ordered = sorted(float(value) for value in values)
    if not ordered:
        raise ValueError("the median of no values is undefined")
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def compute_mad(norms: Sequence[float]) -> float:
    """§11.2 Outlier detection (Algorithm 2): ``CONSISTENCY_CONSTANT`` x median |norm - median|."""
    values = _check_norms(norms)
    centre = compute_median(values)
    return CONSISTENCY_CONSTANT * compute_median([abs(value - centre) for value in values])


def anomaly_indices(norms: Sequence[float]) -> list[float]:
    """§11.2 Outlier detection (Algorithm 2): |norm - median| / MAD for every label.

    When MAD is 0 (at least half of the norms equal the median), a norm equal to the median
    has index 0.0 and any other norm index ``math.inf``; so equal norms flag nothing.
    """
    values = _check_norms(norms)
    centre = compute_median(values)
    mad = CONSISTENCY_CONSTANT * compute_median([abs(value - centre) for value in values])
    indices = []
    for value in values:
        deviation = abs(value - centre)
        if mad > 0.0:
            indices.append(deviation / mad)
        else:
            indices.append(0.0 if deviation == 0.0 else math.inf)
    return indices


def flagged_labels(norms: Sequence[float]) -> list[int]:
    """§11.2 Outlier detection (Algorithm 2): labels with norm <= median and index > 2, ascending."""
    values = _check_norms(norms)
    centre = compute_median(values)
    indices = anomaly_indices(values)
    return [
        label
        for label, (value, index) in enumerate(zip(values, indices, strict=True))
        if value <= centre and index > ANOMALY_THRESHOLD
    ]


# §11.7 Secure gradient oracle: one mini-batch of Algorithm 1 among P0..P2, opened to P3.

LOSS_SCALE = -math.log(1e-7)
"""§11.3 Trigger reverse engineering (Algorithm 1): c = -ln(1e-7), Neural Cleanse's loss c (1 - p_t)."""

ORACLE_HOLDER = 3
"""§11.7 Secure gradient oracle: P3 deals mask and pattern and receives the outputs."""


@dataclass(frozen=True)
class SecureOracleOutput:
    """§11.7 Secure gradient oracle: what P3 receives, in ring units (f fractional bits).

    ``mask_gradient`` is the batch-mean d loss / d mask and ``pattern_gradient`` the batch-mean
    d loss / d q with q = pattern / 255 (P3 divides by 255 for the raw-pixel gradient);
    ``successes`` counts the blended images classified as the target and ``weighted_sum`` is
    LOSS_SCALE times the sum over the batch of the target's probability (fixed point); the
    mean loss is LOSS_SCALE - weighted_sum / B.
    """

    mask_gradient: list[int]
    pattern_gradient: list[int]
    successes: int
    weighted_sum: int


def comparisons_for_oracle_step(architecture: Architecture, batch: int) -> int:
    """§11.7 Secure gradient oracle: the ReLUs, softmax and argmax of one mini-batch."""
    return comparisons_for_training_step(architecture, batch) + comparisons_for_max(
        (batch, architecture.classes)
    )


def _rows(x: Share, rows: int) -> Share:
    """§11.7: a vector sharing of n elements repeated as ``rows`` rows, shape (rows, n), locally."""
    return Share(x.ring, (rows, x.shape[0]), list(x.first) * rows, list(x.second) * rows)


def _column_sums(x: Share) -> Share:
    """§11.7: the sums over the rows of a (rows, n) sharing, shape (n,), locally."""
    return sum_last_axis(transposed(x))


def column_inner_products(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§11.7 Secure gradient oracle: sum_b x[b, j] y[b, j] / 2^d per column j, one truncation each.

    The 3-out-of-3 products of §5.1 are summed over the rows locally and only the n sums are
    truncated and reshared (§5.4), as the matrix product of §5.2 does with its inner sums.
    """
    products = local_products(x, y)
    rows, columns = x.shape
    sums = [
        sum(products[row * columns + column] for row in range(rows)) % x.ring.modulus
        for column in range(columns)
    ]
    return truncate_products(ctx, x.ring, sums, (columns,), bits)


def oracle_batch_shift(profile: Profile, batch: int) -> int:
    """§11.7 Secure gradient oracle: f + log2(B), the batch-mean truncation (B = 2^b)."""
    if batch < 1 or batch & (batch - 1):
        raise ShapeError(f"the oracle's mini-batch must be a power of two, got {batch}")
    return profile.fractional_bits + batch.bit_length() - 1


def secure_oracle_step(
    ctx: PartyContext,
    model: list[Share] | None,
    images: Share | None,
    mask: Sequence[int] | None,
    pattern: Sequence[int] | None,
    target: int,
    pool: ComparisonPool | None,
) -> SecureOracleOutput | None:
    """§11.7 Secure gradient oracle: one mini-batch; P3 gets its :class:`SecureOracleOutput`.

    P3 (``ctx.party == 3``) passes ``mask`` (in [0, 1]) and ``pattern`` / 255 (in [0, 1]) as
    fixed-point ring values of n_0 elements, and ``None`` for the rest. P0..P2 pass the model,
    the shared mini-batch ``images`` (B x n_0, fixed point in [0, 1]) and the pool, and get
    ``None``. Servers: X' = X + m (q - X); forward; Delta = softmax - onehot(target);
    dX' = Delta propagated to layer 0's input; dm = sum_b dX'_b (q - X_b) / B,
    dq = m sum_b dX'_b / B; successes = sum of the argmax one-hot at the target column.
    """
    ring = ctx.ring
    fractional = ctx.profile.fractional_bits
    if ctx.party == ORACLE_HOLDER:
        if mask is None or pattern is None:
            raise ShapeError("P3 needs the mask and the pattern")
        features = len(mask)
        deal_input(ctx, ring, mask, (features,))
        deal_input(ctx, ring, pattern, (features,))
        opened = receive_revealed(ctx, ring, (2 * features + 2,))
        return SecureOracleOutput(
            opened[:features], opened[features : 2 * features], opened[2 * features], opened[2 * features + 1]
        )
    if model is None or images is None or pool is None:
        raise ShapeError("P0..P2 need the model, the images and the pool")
    batch, features = images.shape
    classes = model[-1].shape[1]
    if not 0 <= target < classes:
        raise ShapeError(f"target {target} is not one of {classes} classes")
    shift = oracle_batch_shift(ctx.profile, batch)
    m = receive_input(ctx, ring, ORACLE_HOLDER, (features,))
    q = receive_input(ctx, ring, ORACLE_HOLDER, (features,))
    difference = sub(_rows(q, batch), images)
    blended = add(images, mul_truncate(ctx, _rows(m, batch), difference, fractional))
    passed = forward(ctx, model, blended, pool)
    target_column = [
        (-(1 << fractional) if column == target else 0) for _ in range(batch) for column in range(classes)
    ]
    probabilities = softmax(ctx, passed.logits, pool)
    target_positions = [row * classes + target for row in range(batch)]
    scale = encode_fixed(ctx.profile, [LOSS_SCALE])[0]
    weights = truncate(ctx, mul_public(gather(probabilities, target_positions, (batch,)), scale), fractional)
    spread = gather(weights, [index // classes for index in range(batch * classes)], (batch, classes))
    delta = mul_truncate(ctx, add_public(ctx, probabilities, target_column), spread, fractional)
    onehot = max_and_argmax(ctx, passed.logits, pool)[1]
    assert onehot is not None
    hits = gather(onehot, target_positions, (batch,))
    for layer in range(len(model) - 1, -1, -1):
        back = transposed(without_bias_row(model[layer]))
        delta = matmul_truncate(ctx, delta, back, fractional)
        if layer > 0:
            delta = mul(ctx, delta, passed.derivatives[layer - 1])
    mask_gradient = column_inner_products(ctx, delta, difference, shift)
    pattern_gradient = mul_truncate(ctx, _column_sums(delta), m, shift)
    reveal_to(
        ctx, concatenate([mask_gradient, pattern_gradient, sum_all(hits), sum_all(weights)]), ORACLE_HOLDER
    )
    return None
