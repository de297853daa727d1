"""§11 Backdoor detection: Algorithm 2 (MAD) over numpy and the P3 side of Algorithm 1.

Algorithm 2 (:func:`anomaly_indices`, :func:`flagged_labels`) gives exactly the values of
:mod:`refimpl.detection`. Algorithm 1's outer loop (:func:`reverse_engineer`) is everything
the secondary server P3 runs in the clear: the tanh parametrisation, the mini-batch
schedule, the L1 regulariser, Adam, the best mask, the cost schedule and the early stop.
The per-mini-batch computation on the secret model and images is a :class:`GradientOracle`
passed in: :func:`fast.plaintext_detection.plaintext_oracle` computes it in the clear, the
secure version computes it among P0..P2 and opens only its outputs to P3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fast.arithmetic import local_products, matmul_truncate, mul, mul_truncate, truncate, truncate_products
from fast.comparison import max_and_argmax
from fast.nonlinear import softmax
from fast.preprocessing import ComparisonPool
from fast.ring import Array, Share, decode_fixed, dtype_of
from fast.sharing import (
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
from fast.training import forward, sum_all, transposed, without_bias_row
from refimpl.detection import (
    ANOMALY_THRESHOLD,
    CONSISTENCY_CONSTANT,
    LOSS_SCALE,
    ORACLE_HOLDER,
    comparisons_for_oracle_step,
    oracle_batch_shift,
)
from refimpl.ring import Profile, ShapeError, encode_fixed
from refimpl.transport import PartyContext

__all__ = [
    "ANOMALY_THRESHOLD",
    "CONSISTENCY_CONSTANT",
    "LOSS_SCALE",
    "ORACLE_HOLDER",
    "TANH_EPSILON",
    "Adam",
    "BatchOrder",
    "CostSchedule",
    "DetectionSettings",
    "GradientOracle",
    "LabelResult",
    "OracleResult",
    "SecureOracleOutput",
    "anomaly_indices",
    "comparisons_for_oracle_step",
    "compute_mad",
    "compute_median",
    "flagged_labels",
    "initial_tanh",
    "label_report",
    "label_start",
    "mask_from_tanh",
    "oracle_batch_shift",
    "oracle_result",
    "pattern_from_tanh",
    "reverse_engineer",
    "secure_oracle_step",
]

Matrix = NDArray[np.float64]

TANH_EPSILON = 1e-7
"""§11.3 Trigger reverse engineering (Algorithm 1): the eps of the tanh maps of mask and pattern."""


def _norm_array(norms: ArrayLike) -> Matrix:
    """§11.2: a 1-D float64 array of finite, non-negative norms (``ValueError`` if not)."""
    values = np.asarray(norms, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("Algorithm 2 needs at least one norm")
    if not np.all(np.isfinite(values)) or np.any(values < 0.0):
        raise ValueError("every norm must be finite and non-negative")
    return values


def compute_median(values: ArrayLike) -> float:
    """§11.2 Outlier detection (Algorithm 2): ``np.median`` (mean of the two middle values if even)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("the median of no values is undefined")
    return float(np.median(array))


def compute_mad(norms: ArrayLike) -> float:
    """§11.2 Outlier detection (Algorithm 2): ``CONSISTENCY_CONSTANT`` x median |norm - median|."""
    values = _norm_array(norms)
    return CONSISTENCY_CONSTANT * float(np.median(np.abs(values - np.median(values))))


def anomaly_indices(norms: ArrayLike) -> list[float]:
    """§11.2 Outlier detection (Algorithm 2): |norm - median| / MAD (MAD 0: 0.0 or inf)."""
    values = _norm_array(norms)
    centre = np.median(values)
    deviations = np.abs(values - centre)
    mad = CONSISTENCY_CONSTANT * float(np.median(deviations))
    if mad > 0.0:
        with np.errstate(over="ignore"):  # a subnormal MAD gives inf, as in refimpl
            return [float(index) for index in deviations / mad]
    return [0.0 if deviation == 0.0 else math.inf for deviation in deviations.tolist()]


def flagged_labels(norms: ArrayLike) -> list[int]:
    """§11.2 Outlier detection (Algorithm 2): labels with norm <= median and index > 2, ascending."""
    values = _norm_array(norms)
    centre = float(np.median(values))
    indices = np.array(anomaly_indices(values))
    return [int(label) for label in np.flatnonzero((values <= centre) & (indices > ANOMALY_THRESHOLD))]


@dataclass(frozen=True)
class DetectionSettings:
    """§11.3 Trigger reverse engineering (Algorithm 1): the constants, Neural Cleanse's as run.

    The defaults are normative.
    """

    side: int = 28
    batch_size: int = 32
    batches_per_step: int = 3
    max_steps: int = 50
    learning_rate: float = 0.1
    beta1: float = 0.5
    beta2: float = 0.9
    adam_epsilon: float = 1e-8
    init_cost: float = 1e-3
    cost_up: float = 2.0
    cost_down: float = 2.0**1.5
    patience: int = 5
    attack_threshold: float = 0.99
    early_stop_patience_factor: int = 5
    early_stop_threshold: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("side", "batch_size", "batches_per_step", "max_steps", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class OracleResult:
    """§11.4 The gradient oracle: its outputs for one mini-batch, the only values P3 receives."""

    mask_gradient: Matrix
    """Batch-mean d loss / d mask, shape (side, side)."""
    pattern_gradient: Matrix
    """Batch-mean d loss / d pattern (raw pixel scale), shape (side, side)."""
    successes: int
    """How many blended images of the batch the model classifies as the target."""
    mean_loss: float
    """Batch-mean cross-entropy of the target label."""


GradientOracle = Callable[[Matrix, Matrix, NDArray[np.int64], int], OracleResult]
"""§11.4 The gradient oracle: ``oracle(mask, pattern, batch_indices, target) -> OracleResult``."""


def mask_from_tanh(w: Matrix) -> Matrix:
    """§11.3 Trigger reverse engineering (Algorithm 1): mask = tanh(w) / (2 - eps) + 1/2, in (0, 1)."""
    return np.tanh(w) / (2.0 - TANH_EPSILON) + 0.5


def pattern_from_tanh(v: Matrix) -> Matrix:
    """§11.3 Trigger reverse engineering (Algorithm 1): pattern = 255 (tanh(v) / (2 - eps) + 1/2)."""
    return (np.tanh(v) / (2.0 - TANH_EPSILON) + 0.5) * 255.0


def initial_tanh(rng: np.random.Generator, side: int) -> tuple[Matrix, Matrix]:
    """§11.3 Trigger reverse engineering (Algorithm 1): the initial (w, v).

    A mask U[0,1), then a pattern U[0,255), mapped back through artanh.
    """
    mask = rng.random((side, side))
    pattern = rng.random((side, side)) * 255.0
    w = np.arctanh((mask - 0.5) * (2.0 - TANH_EPSILON))
    v = np.arctanh((pattern / 255.0 - 0.5) * (2.0 - TANH_EPSILON))
    return w, v


class BatchOrder:
    """§11.3 Trigger reverse engineering (Algorithm 1): the mini-batch order.

    Consecutive slices of permutations of the images; a short tail is dropped.
    """

    def __init__(self, rng: np.random.Generator, count: int, batch_size: int) -> None:
        if count < batch_size:
            raise ValueError(f"need at least {batch_size} detection images, got {count}")
        self.rng, self.count, self.batch_size = rng, count, batch_size
        self.order: NDArray[np.int64] = rng.permutation(count)
        self.position = 0

    def next_batch(self) -> NDArray[np.int64]:
        """The indices of the next mini-batch (a fresh permutation when fewer than a batch remain)."""
        if self.position + self.batch_size > self.count:
            self.order = self.rng.permutation(self.count)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch


def label_start(
    settings: DetectionSettings, target: int, image_count: int
) -> tuple[Matrix, Matrix, BatchOrder]:
    """§11.3 Trigger reverse engineering (Algorithm 1): a label's public start, from (seed, target).

    rng = ``default_rng([seed, target])`` gives the initial (w, v) (:func:`initial_tanh`), then
    the mini-batch order (:class:`BatchOrder`). Everything here is public: the servers
    recompute the order to check P3's control messages (§11.8).
    """
    rng = np.random.default_rng([settings.seed, target])
    w, v = initial_tanh(rng, settings.side)
    return w, v, BatchOrder(rng, image_count, settings.batch_size)


class Adam:
    """§11.3 Trigger reverse engineering (Algorithm 1): Adam with bias correction, on (w, v)."""

    def __init__(self, settings: DetectionSettings, shape: tuple[int, ...]) -> None:
        self.settings = settings
        self.steps = 0
        self.first = [np.zeros(shape), np.zeros(shape)]
        self.second = [np.zeros(shape), np.zeros(shape)]

    def update(self, parameters: list[Matrix], gradients: list[Matrix]) -> list[Matrix]:
        """One Adam step: returns the new parameters."""
        s = self.settings
        self.steps += 1
        updated = []
        for i, (value, gradient) in enumerate(zip(parameters, gradients, strict=True)):
            self.first[i] = s.beta1 * self.first[i] + (1.0 - s.beta1) * gradient
            self.second[i] = s.beta2 * self.second[i] + (1.0 - s.beta2) * gradient * gradient
            first_hat = self.first[i] / (1.0 - s.beta1**self.steps)
            second_hat = self.second[i] / (1.0 - s.beta2**self.steps)
            updated.append(value - s.learning_rate * first_hat / (np.sqrt(second_hat) + s.adam_epsilon))
        return updated


@dataclass
class CostSchedule:
    """§11.3 Trigger reverse engineering (Algorithm 1): the cost schedule and early stop.

    As Neural Cleanse's code runs them.
    """

    settings: DetectionSettings
    cost: float = 0.0
    set_counter: int = 0
    up_counter: int = 0
    down_counter: int = 0
    up_flag: bool = False
    down_flag: bool = False
    early_stop_counter: int = 0
    early_stop_best: float = math.inf

    def after_step(self, attack_success: float, best_norm: float) -> bool:
        """Update the cost from the step's attack success; True when the early stop fires."""
        s = self.settings
        stop = False
        if best_norm < math.inf:
            if best_norm >= s.early_stop_threshold * self.early_stop_best:
                self.early_stop_counter += 1
            else:
                self.early_stop_counter = 0
        self.early_stop_best = min(best_norm, self.early_stop_best)
        if (
            self.down_flag
            and self.up_flag
            and self.early_stop_counter >= s.early_stop_patience_factor * s.patience
        ):
            stop = True
        if stop:
            return True
        succeeded = attack_success >= s.attack_threshold
        if self.cost == 0.0 and succeeded:
            self.set_counter += 1
            if self.set_counter >= s.patience:
                self.cost = s.init_cost
                self.up_counter = self.down_counter = 0
                self.up_flag = self.down_flag = False
        else:
            self.set_counter = 0
        if succeeded:
            self.up_counter += 1
            self.down_counter = 0
        else:
            self.up_counter = 0
            self.down_counter += 1
        if self.up_counter >= s.patience:
            self.up_counter = 0
            self.cost *= s.cost_up
            self.up_flag = True
        elif self.down_counter >= s.patience:
            self.down_counter = 0
            self.cost /= s.cost_down
            self.down_flag = True
        return False


@dataclass
class LabelResult:
    """§11.3 Trigger reverse engineering (Algorithm 1): what it returns for one candidate target label."""

    target: int
    steps: int
    best_norm: float
    """L1 norm of the best mask: the mask after the best step (the last mask if none qualified)."""
    best_attack_success: float
    """Attack success of the step that produced the best mask (of the last step if none)."""
    found: bool
    """Whether some step reached the attack-success threshold."""
    mask: Matrix
    pattern: Matrix
    mini_batches: int
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    """(step, cost, attack success, mean L1 norm) of every step."""


def reverse_engineer(
    oracle: GradientOracle,
    target: int,
    image_count: int,
    settings: DetectionSettings,
    progress: Callable[[int, int, float, float, float], None] | None = None,
) -> LabelResult:
    """§11.3 Trigger reverse engineering (Algorithm 1): P3's loop around the oracle, for one label.

    1. (w, v) and the batch order from :func:`label_start`.
    2. Each step: ``batches_per_step`` mini-batches; for each, mask and pattern from (w, v),
       the oracle's batch-mean gradients, plus the regulariser gradient ``cost`` (d sum(mask)),
       chained through the tanh maps, one Adam step.
    3. After the step: mean attack success and mean L1 norm over its mini-batches; the best
       mask is kept when success >= threshold and the norm < the best; the cost schedule.
    """
    s = settings
    w, v, batches = label_start(s, target, image_count)
    adam = Adam(s, w.shape)
    schedule = CostSchedule(s)
    best_regulariser, best_success = math.inf, 0.0
    best_mask, best_pattern = mask_from_tanh(w), pattern_from_tanh(v)
    last_norm, last_success = 0.0, 0.0
    history: list[tuple[int, float, float, float]] = []
    mini_batches = 0
    steps = 0
    for step in range(s.max_steps):
        steps = step + 1
        successes, seen, norms = 0, 0, 0.0
        for _ in range(s.batches_per_step):
            mask, pattern = mask_from_tanh(w), pattern_from_tanh(v)
            batch = batches.next_batch()
            result = oracle(mask, pattern, batch, target)
            mini_batches += 1
            successes += result.successes
            seen += batch.size
            norms += float(np.sum(np.abs(mask)))
            mask_gradient = result.mask_gradient + schedule.cost
            tanh_w, tanh_v = np.tanh(w), np.tanh(v)
            grad_w = mask_gradient * (1.0 - tanh_w * tanh_w) / (2.0 - TANH_EPSILON)
            grad_v = result.pattern_gradient * 255.0 * (1.0 - tanh_v * tanh_v) / (2.0 - TANH_EPSILON)
            w, v = adam.update([w, v], [grad_w, grad_v])
        last_success = successes / seen
        last_norm = norms / s.batches_per_step
        history.append((steps, schedule.cost, last_success, last_norm))
        if progress is not None:
            progress(target, steps, schedule.cost, last_success, last_norm)
        if last_success >= s.attack_threshold and last_norm < best_regulariser:
            best_regulariser, best_success = last_norm, last_success
            best_mask, best_pattern = mask_from_tanh(w), pattern_from_tanh(v)
        if schedule.after_step(last_success, best_regulariser):
            break
    found = best_regulariser < math.inf
    if not found:
        best_success = last_success
        best_mask, best_pattern = mask_from_tanh(w), pattern_from_tanh(v)
    return LabelResult(
        target,
        steps,
        float(np.sum(best_mask)),
        best_success,
        found,
        best_mask,
        best_pattern,
        mini_batches,
        history,
    )


def label_report(results: list[LabelResult], seconds: list[float]) -> dict[str, Any]:
    """§11.2 Outlier detection (Algorithm 2): on the labels' best norms, as the report's table.

    Per label: steps, mini-batches, best L1 norm, attack success of the best mask, whether the
    threshold was reached, anomaly index and seconds; then the flagged labels and the totals.
    """
    norms = [result.best_norm for result in results]
    indices = anomaly_indices(norms)
    return {
        "labels": [
            {
                "label": result.target,
                "steps": result.steps,
                "mini_batches": result.mini_batches,
                "best_l1_norm": result.best_norm,
                "attack_success": result.best_attack_success,
                "reached_threshold": result.found,
                "anomaly_index": index,
                "seconds": spent,
            }
            for result, index, spent in zip(results, indices, seconds, strict=True)
        ],
        "flagged_labels": [results[i].target for i in flagged_labels(norms)],
        "mini_batches": sum(result.mini_batches for result in results),
        "seconds": sum(seconds),
    }


# §11.7 Secure gradient oracle: the steps of refimpl.detection over numpy arrays.


@dataclass(frozen=True)
class SecureOracleOutput:
    """§11.7 Secure gradient oracle: what P3 receives, in ring units (f fractional bits)."""

    mask_gradient: Array
    pattern_gradient: Array
    successes: int
    weighted_sum: int


def _rows(x: Share, rows: int) -> Share:
    """§11.7: a vector sharing of n elements repeated as ``rows`` rows, shape (rows, n), locally."""
    n = x.shape[0]
    first = np.broadcast_to(x.first.reshape(1, n), (rows, n)).copy()
    second = np.broadcast_to(x.second.reshape(1, n), (rows, n)).copy()
    return Share(x.ring, (rows, n), first, second)


def _column_sums(x: Share) -> Share:
    """§11.7: the sums over the rows of a (rows, n) sharing, shape (n,), locally."""
    return sum_last_axis(transposed(x))


def column_inner_products(ctx: PartyContext, x: Share, y: Share, bits: int) -> Share:
    """§11.7 Secure gradient oracle: sum_b x[b, j] y[b, j] / 2^d per column j, one truncation each."""
    rows, columns = x.shape
    products = local_products(x, y).reshape(rows, columns)
    sums = products.sum(axis=0, dtype=dtype_of(x.ring))  # a 2^l ring wraps natively
    return truncate_products(ctx, x.ring, sums, (columns,), bits)


def secure_oracle_step(
    ctx: PartyContext,
    model: list[Share] | None,
    images: Share | None,
    mask: Array | None,
    pattern: Array | None,
    target: int,
    pool: ComparisonPool | None,
) -> SecureOracleOutput | None:
    """§11.7 Secure gradient oracle: one mini-batch; P3 gets its :class:`SecureOracleOutput`."""
    ring = ctx.ring
    fractional = ctx.profile.fractional_bits
    if ctx.party == ORACLE_HOLDER:
        if mask is None or pattern is None:
            raise ShapeError("P3 needs the mask and the pattern")
        features = int(np.asarray(mask).size)
        deal_input(ctx, ring, mask, (features,))
        deal_input(ctx, ring, pattern, (features,))
        opened = receive_revealed(ctx, ring, (2 * features + 2,))
        return SecureOracleOutput(
            opened[:features],
            opened[features : 2 * features],
            int(opened[2 * features]),
            int(opened[2 * features + 1]),
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
    target_column = np.zeros((batch, classes), dtype=object)
    target_column[:, target] = -(1 << fractional)
    probabilities = softmax(ctx, passed.logits, pool)
    target_positions = np.arange(batch) * classes + target
    scale = encode_fixed(ctx.profile, [LOSS_SCALE])[0]
    weights = truncate(ctx, mul_public(gather(probabilities, target_positions, (batch,)), scale), fractional)
    spread = gather(weights, np.arange(batch * classes) // classes, (batch, classes))
    delta = mul_truncate(
        ctx, add_public(ctx, probabilities, target_column % ring.modulus), spread, fractional
    )
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


def oracle_result(profile: Profile, output: SecureOracleOutput, side: int, batch: int) -> OracleResult:
    """§11.7 Secure gradient oracle: P3 decodes its output into an :class:`OracleResult`.

    The pattern gradient is per raw pixel (d loss / d q divided by 255, as in §11.4) and the
    mean loss is LOSS_SCALE minus the opened weighted sum divided by the batch size B.
    """
    mask_gradient = decode_fixed(profile, output.mask_gradient).reshape(side, side)
    pattern_gradient = decode_fixed(profile, output.pattern_gradient).reshape(side, side) / 255.0
    weighted = float(decode_fixed(profile, np.array([output.weighted_sum], dtype=np.uint64))[0])
    mean_loss = LOSS_SCALE - weighted / batch
    return OracleResult(mask_gradient, pattern_gradient, output.successes, mean_loss)
