"""Error bounds and truncation-failure probabilities of the §8 approximations.

Every bound holds for one evaluation unless a probabilistic truncation in it fails (§5.3:
a truncation of z fails with probability |z| / 2^l and then makes the result meaningless);
each probabilistic truncation is otherwise off by less than one unit u = 2^-f. The bounds
follow the error analysis of spec §8 (approximation, then rounding), evaluated pointwise
with the exact recurrences (second-order terms included), so that they are rigorous in
binary64 up to a slack of 1e-12:

* :func:`exp_bound` (§8.1): |q_n - e^x| <= |P^N - e^x| + eps_n with t = max(x, -N) / N,
  P = 1 + t + t^2/2, eps_0 = (2 + |t|) u + u^2 / 2 and
  eps_{j+1} = 2 P^(2^j) eps_j + eps_j^2 + u; at x = 0 every step is exact (0).
* :func:`reciprocal_error` (§8.2): the relative error e_4 = 1 - x y_4 of Newton's iteration
  from the linear start, with e_0 bounded by |1 - a x + b x^2| plus the encodings of a and b
  and the first truncation (x u / 2 + x^2 u / 2 + x u) and
  |e_{i+1}| <= e_i^2 + (1 + |e_i|) u + x u; :func:`reciprocal_bound` = |e_4| / x.
* :func:`softmax_bounds` (§8.3): per probability,
  (eps_i + s_i E) / (Sigma - E) + (e_i + eps_i) |e_4| / (Sigma - E) + u with
  E = sum_j eps_j and e_4 the reciprocal's relative error on [Sigma - E, Sigma + E], S = C.

The failure probabilities (:func:`exp_failure_probability` and friends) bound, by a union
over an evaluation's truncations, the probability that any of them fails, from the
magnitudes of the truncated values that the same analysis bounds.

The acceptance targets for ``wide`` are :data:`WIDE_EXP_TARGET` (spec §8.1's analytic bound
at f = 13), :data:`WIDE_RECIPROCAL_TARGET` and :data:`SOFTMAX_TARGET` (the issue's).

:func:`training_step_bound` (§9.4) evaluates the entrywise error bound of one secure training
step against the exact step from the same decoded model and inputs, with sigma =
:func:`softmax_error`.

:class:`FailureAllowance` turns the failure probabilities into an explicit allowance: a
property that may legitimately see failures (``paper``, l = 32) counts the evaluations
beyond their bound and requires the count to stay within mu + 6 sqrt(mu) + 6, mu the sum of
the failure probabilities of the evaluations so far (by Bernstein's inequality the count of
independent failures exceeds that with probability below 10^-6 at any point). Only *gross*
errors count (:func:`is_truncation_failure`): an error beyond its bound by at most
:data:`GROSS_RATIO` times the bound is a bound violation, allowed zero times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from refimpl.detection import LOSS_SCALE
from refimpl.nonlinear import EXP_SQUARINGS, RECIPROCAL_ITERATIONS
from refimpl.ring import Profile

Matrix = NDArray[np.float64]

SLACK = 1e-12
"""Binary64 evaluation slack added to every bound."""
WIDE_EXP_TARGET = 1.2e-2
"""wide: |exp_nonpositive(x) - e^x| <= 1.2e-2 on [-40, 0] (spec §8.1).

The analytic bound at f = 13, 2.4e-4 + 95u = 1.18e-2, rounded up (the pointwise bound of
:func:`exp_bound` peaks at 1.166e-2 next to 0; measured maximum 7.9e-3). The issue's measured
2e-3 was set at f = 16 and does not hold at f = 13.
"""
WIDE_RECIPROCAL_TARGET = 1e-3
"""wide: relative error of reciprocal(x) <= 1e-3 on [1, 10] (the issue's measured target)."""
SOFTMAX_TARGET = 0.01
"""The issue's criterion: max absolute error of each probability <= 0.01 (wide)."""

GROSS_RATIO = 4.0
"""An error beyond its bound counts as a truncation failure only above GROSS_RATIO x the bound.

A failed truncation by d bits adds 2^(l-d) ring units (spec §5.3), 2^(l-2f) = 1024 after
decoding for ``paper``, about 2 * 10^4 times the largest §8 bound (0.047); later steps can
shrink it (squarings wrap modulo 2^l, and an exponential can come out exactly 2^-4 = 128 u
off) but, measured, never to near the bound. Measured with ``fast`` under ``paper`` (fast ==
refimpl bit for bit), 3 seeds, 153,600 exponentials on [-40, 0], 153,600 reciprocals on
[1, S] and 40,647 softmax rows of 2, 5 or 10 logits in [-5, 5]: of 1,860 evaluations beyond
their bound the smallest error / bound was 22 (exponential), 1,022 (reciprocal, relative)
and 12.8 (softmax, the worst element of a row whose exponential failed by 2^-4), below
2^6 only 4 times. An error up to 4 times its bound is therefore no failure but a bound
violation.
"""


def is_truncation_failure(error: float, bound: float) -> bool:
    """True when ``error`` is gross enough to be a truncation failure (more than GROSS_RATIO x bound)."""
    return error > GROSS_RATIO * bound


def unit(profile: Profile) -> float:
    """u = 2^-f, one unit in the last place."""
    return 2.0**-profile.fractional_bits


def _exp_errors(profile: Profile, x: float) -> tuple[float, list[float], float]:
    """(|P^N - e^x|, the exact squares P^(2^j) for j < n, eps_n) for input x (module docstring)."""
    u = unit(profile)
    limit = float(1 << EXP_SQUARINGS)
    t = max(x, -limit) / limit
    polynomial = 1.0 + t + t * t / 2.0
    powers = []
    power = polynomial
    eps = (2.0 + abs(t)) * u + u * u / 2.0
    for _ in range(EXP_SQUARINGS):
        powers.append(power)
        eps = 2.0 * power * eps + eps * eps + u
        power = power * power
    return abs(power - math.exp(x)), powers, eps


def exp_bound(profile: Profile, x: float) -> float:
    """§8.1: |exp_nonpositive(x) - e^x| without truncation failure (0 at x = 0, which is exact)."""
    if x == 0.0:
        return 0.0
    approximation, _, rounding = _exp_errors(profile, x)
    return approximation + rounding + SLACK


def exp_failure_probability(profile: Profile, x: float) -> float:
    """§8.1: P(some truncation of exp_nonpositive(x) fails), union bound over its 7 truncations.

    Magnitudes in units: |c| 2^f (step 3), (|t| + u)^2 2^(2f) (step 4) and
    (P^(2^j) + eps_j)^2 2^(2f) for the squarings.
    """
    u = unit(profile)
    limit = float(1 << EXP_SQUARINGS)
    clamped = max(x, -limit)
    t = clamped / limit
    scale = float(1 << profile.fractional_bits)
    _, powers, _ = _exp_errors(profile, x)
    eps = (2.0 + abs(t)) * u + u * u / 2.0
    magnitude = abs(clamped) * scale + (abs(t) + u) ** 2 * scale * scale
    for power in powers:
        magnitude += (power + eps) ** 2 * scale * scale
        eps = 2.0 * power * eps + eps * eps + u
    return min(1.0, magnitude / 2.0**profile.ring_bits)


def _reciprocal_start(upper: float) -> tuple[float, float]:
    """(a, b) of the linear start y_0 = a - b x on [1, upper] (§8.2)."""
    slope = 8.0 / (upper * upper + 6.0 * upper + 1.0)
    return slope * (upper + 1.0), slope


def _reciprocal_errors(profile: Profile, low: float, high: float, upper: float) -> list[float]:
    """Bounds on |e_0|, ..., |e_4| for every input in [low, high] (module docstring)."""
    u = unit(profile)
    a, b = _reciprocal_start(upper)
    candidates = [low, high]
    vertex = a / (2.0 * b)
    if low < vertex < high:
        candidates.append(vertex)
    start = max(abs(1.0 - a * x + b * x * x) for x in candidates)
    errors = [start + high * u / 2.0 + high * high * u / 2.0 + high * u]
    for _ in range(RECIPROCAL_ITERATIONS):
        e = errors[-1]
        errors.append(e * e + (1.0 + e) * u + high * u)
    return errors


def reciprocal_error(profile: Profile, x: float, upper: float) -> float:
    """§8.2: the relative error |1 - x y| of reciprocal(x, upper) without truncation failure."""
    return _reciprocal_errors(profile, x, x, upper)[-1] + SLACK


def reciprocal_bound(profile: Profile, x: float, upper: float) -> float:
    """§8.2: |reciprocal(x, upper) - 1/x| without truncation failure."""
    return reciprocal_error(profile, x, upper) / x


def reciprocal_failure_probability(profile: Profile, x: float, upper: float) -> float:
    """§8.2: P(some truncation of reciprocal(x) fails), union bound over its 9 truncations.

    Magnitudes in units of 2^(2f): x b <= 1 (step 2); per iteration x y <= 1 + |e_i| and
    y (2 - x y) <= (1 + |e_i| + u)^2 / x.
    """
    u = unit(profile)
    _, b = _reciprocal_start(upper)
    errors = _reciprocal_errors(profile, x, x, upper)
    magnitude = x * (b + u)
    for e in errors[:-1]:
        magnitude += (1.0 + e) + (1.0 + e + u) ** 2 / x
    return min(1.0, magnitude * 2.0 ** (2 * profile.fractional_bits - profile.ring_bits))


def softmax_bounds(profile: Profile, row: list[float]) -> list[float]:
    """§8.3: a bound per probability of one row of logits, without truncation failure."""
    u = unit(profile)
    largest = max(row)
    differences = [value - largest for value in row]
    powers = [math.exp(d) for d in differences]
    total = sum(powers)
    eps = [exp_bound(profile, d) for d in differences]
    spread = sum(eps)
    if total - spread <= 0.0:
        return [math.inf] * len(row)
    classes = float(len(row))
    reciprocal = _reciprocal_errors(profile, total - spread, total + spread, classes)[-1]
    denominator = total - spread
    return [
        (e_i + (p_i / total) * spread) / denominator + (p_i + e_i) * reciprocal / denominator + u + SLACK
        for p_i, e_i in zip(powers, eps, strict=True)
    ]


def softmax_failure_probability(profile: Profile, row: list[float]) -> float:
    """§8.3: P(some truncation of one row's softmax fails): its exponentials, one reciprocal of
    the row sum (S = C) and C final truncated products of magnitude about (1 + eps) 2^(2f)."""
    largest = max(row)
    differences = [value - largest for value in row]
    total = sum(math.exp(d) for d in differences)
    probability = sum(exp_failure_probability(profile, d) for d in differences)
    probability += reciprocal_failure_probability(profile, max(total, 1.0), float(len(row)))
    probability += len(row) * 1.5 * 2.0 ** (2 * profile.fractional_bits - profile.ring_bits)
    return min(1.0, probability)


def softmax_reference(row: list[float]) -> list[float]:
    """Softmax of one row in binary64, shifted by the row's maximum."""
    largest = max(row)
    powers = [math.exp(value - largest) for value in row]
    total = sum(powers)
    return [power / total for power in powers]


@dataclass
class FailureAllowance:
    """Evaluations beyond their bound, against the failure probabilities that may explain them."""

    expected: float = 0.0
    observed: int = 0
    evaluations: int = 0

    def record(self, failures: int, probability: float, evaluations: int = 1) -> None:
        """Add ``evaluations`` with ``failures`` beyond their bound; ``probability`` is their sum."""
        self.observed += failures
        self.expected += probability
        self.evaluations += evaluations

    @property
    def limit(self) -> float:
        """mu + 6 sqrt(mu) + 6 (see the module docstring)."""
        return self.expected + 6.0 * math.sqrt(self.expected) + 6.0

    def exceeded(self) -> bool:
        return self.observed > self.limit

    def __str__(self) -> str:
        return (
            f"{self.observed} of {self.evaluations} evaluations beyond their bound; truncation failures "
            f"explain about {self.expected:.2f} (allowance {self.limit:.1f})"
        )


def softmax_error(profile: Profile, classes: int) -> float:
    """§9.4: sigma, the softmax error per probability that the step's bound assumes (§8.3).

    The required error 0.01 (:data:`SOFTMAX_TARGET`) for ``wide`` and C <= 10, which the
    pointwise bound of §8.3 meets. The spec states no softmax error for ``paper`` (whose
    truncations fail too often for one, §8.3) or for more classes: ``ValueError``.
    """
    if profile.ring_bits != 64 or not 1 <= classes <= 10:
        raise ValueError(
            f"spec §9.4 states the softmax error for wide and at most 10 classes only, "
            f"not {profile.name} with {classes}"
        )
    return SOFTMAX_TARGET


def _softmax_rows(logits: Matrix) -> Matrix:
    """Softmax of every row in binary64, shifted by the row's maximum."""
    powers = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: Matrix = powers / powers.sum(axis=1, keepdims=True)
    return result


def _with_ones(matrix: Matrix) -> Matrix:
    """[A | 1]: a column of ones appended."""
    result: Matrix = np.c_[matrix, np.ones(matrix.shape[0])]
    return result


def training_step_bound(
    profile: Profile,
    weights: list[Matrix],
    inputs: Matrix,
    labels: Matrix,
    learning_rate: float,
    batch_size: int,
    input_error: float = 0.0,
) -> tuple[list[Matrix], list[Matrix]]:
    """§9.4: the error bound of one training step, (exact updated weights W_i^+, E^G_i per layer).

    ``weights`` are the decoded augmented matrices W_i (bias row last), ``inputs`` the decoded
    batch X (B rows), ``labels`` the one-hot Y, ``learning_rate`` eta and ``batch_size`` B (the
    B of the shift d = f + a + b). The reference step is computed in binary64:
    Z_i = [A_i | 1] W_i, A_{i+1} = max(Z_i, 0), D_i = [Z_i >= 0], Delta_{L-1} = softmax(Z_{L-1}) - Y,
    G_i = eta / B [A_i | 1]^T Delta_i, P_i = Delta_i W_i'^T, Delta_{i-1} = P_i * D_{i-1} and
    W_i^+ = W_i - G_i. The entrywise bounds follow the spec's recursion exactly, with
    E^A_0 = ``input_error`` (0 for the decoded encodings; u / 2 against unencoded inputs),
    u = 2^-f and sigma = :func:`softmax_error`::

        E^Z_i = E^A_i |W_i'| + u,  E^A_{i+1} = E^Z_i
        E^Delta_{L-1}[b, c] = max_c' E^Z_{L-1}[b, c'] / 2 + sigma
        E^G_i = eta / B ([E^A_i | 0]^T (|Delta_i| + E^Delta_i) + |[A_i | 1]|^T E^Delta_i) + u
        E^P_i = E^Delta_i |W_i'|^T + u
        E^Delta_{i-1} = E^P_i + [|Z_{i-1}| <= E^Z_{i-1}] * |P_i|

    Unless a truncation of the secure step fails, |secure W_i^+ - W_i^+| <= E^G_i entrywise;
    :data:`SLACK` is added to every E^G_i for the binary64 evaluation.
    """
    u = unit(profile)
    sigma = softmax_error(profile, labels.shape[1])
    scale = learning_rate / batch_size
    augmented, logits, input_bounds, logit_bounds = _forward_bounds(profile, weights, inputs, input_error)
    delta = _softmax_rows(logits[-1]) - labels
    delta_bound = 0.5 * logit_bounds[-1].max(axis=1, keepdims=True) + sigma + np.zeros(delta.shape)
    updated: list[Matrix] = [np.empty(0)] * len(weights)
    gradient_bounds: list[Matrix] = [np.empty(0)] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        matrix = weights[layer]
        rows = augmented[layer]
        padded = np.c_[input_bounds[layer], np.zeros(rows.shape[0])]
        updated[layer] = matrix - scale * (rows.T @ delta)
        gradient_bounds[layer] = (
            scale * (padded.T @ (np.abs(delta) + delta_bound) + np.abs(rows).T @ delta_bound) + u + SLACK
        )
        if layer > 0:
            delta, delta_bound = _back_through(
                profile, delta, delta_bound, matrix, logits[layer - 1], logit_bounds[layer - 1]
            )
    return updated, gradient_bounds


def _forward_bounds(
    profile: Profile, weights: list[Matrix], inputs: Matrix, input_error: float | Matrix
) -> tuple[list[Matrix], list[Matrix], list[Matrix], list[Matrix]]:
    """§9.4 forward pass and its bounds: ([A_i | 1], Z_i, E^A_i, E^Z_i) for every layer."""
    u = unit(profile)
    augmented: list[Matrix] = []
    logits: list[Matrix] = []
    input_bounds: list[Matrix] = []
    logit_bounds: list[Matrix] = []
    activation = inputs
    activation_bound: Matrix = np.zeros(inputs.shape) + input_error
    for layer, matrix in enumerate(weights):
        rows = _with_ones(activation)
        z = rows @ matrix
        z_bound = activation_bound @ np.abs(matrix[:-1]) + u
        augmented.append(rows)
        logits.append(z)
        input_bounds.append(activation_bound)
        logit_bounds.append(z_bound)
        if layer < len(weights) - 1:
            activation, activation_bound = np.maximum(z, 0.0), z_bound
    return augmented, logits, input_bounds, logit_bounds


def _back_through(
    profile: Profile,
    delta: Matrix,
    delta_bound: Matrix,
    matrix: Matrix,
    previous: Matrix | None,
    previous_bound: Matrix | None,
) -> tuple[Matrix, Matrix]:
    """§9.4: P = Delta W'^T with E^P = E^Delta |W'|^T + u, then times the ReLU derivative of
    the layer below (if any), an undecided derivative adding |P|."""
    back = matrix[:-1].T
    propagated = delta @ back
    propagated_bound = delta_bound @ np.abs(back) + unit(profile)
    if previous is None or previous_bound is None:
        return propagated, propagated_bound
    undecided = np.abs(previous) <= previous_bound
    return propagated * (previous >= 0.0), propagated_bound + undecided * np.abs(propagated)


def oracle_bound(
    profile: Profile,
    weights: list[Matrix],
    images: Matrix,
    mask: Matrix,
    q: Matrix,
    target: int,
) -> tuple[Matrix, Matrix, Matrix, Matrix, float, float]:
    """§11.7: the entrywise error bounds of the secure oracle, with its exact outputs.

    ``weights`` are the decoded model, ``images`` the decoded batch X (B rows in [0, 1]),
    ``mask`` m and ``q`` = pattern / 255 the decoded values P3 dealt. Exact, in binary64:
    X' = X + m (q - X), the forward pass of §9.4, p = softmax(Z), w = c p_t (c =
    ``LOSS_SCALE``), Delta = (p - e_t) w, G = Delta propagated to the input,
    g_m = sum_b G_b (q - X_b) / B, g_q = m sum_b G_b / B and the mean loss c - sum_b w_b / B.
    Bounds: E^A_0 = u (the blend's truncation); the forward recursion of
    :func:`training_step_bound`; E^p = max_c E^Z / 2 + sigma per row;
    E^w = c E^p + (p_t + E^p) u / 2 + u (the encoding of c and one truncation);
    E^Delta = |p - e_t| E^w + (w + E^w) E^p + u; the backward recursion down to the input (E^G);
    E^(g_m) = sum_b E^G_b |q - X_b| / B + u, E^(g_q) = m sum_b E^G_b / B + u and the mean
    loss's sum_b E^w_b / B. Returns (g_m, E^(g_m), g_q, E^(g_q), mean loss, its bound).
    """
    u = unit(profile)
    batch = images.shape[0]
    difference = q[None, :] - images
    blended = images + mask[None, :] * difference
    _, logits, _, logit_bounds = _forward_bounds(profile, weights, blended, u)
    probabilities = _softmax_rows(logits[-1])
    residual = probabilities.copy()
    residual[:, target] -= 1.0
    target_probability = probabilities[:, target : target + 1]
    probability_bound = 0.5 * logit_bounds[-1].max(axis=1, keepdims=True) + softmax_error(
        profile, probabilities.shape[1]
    )
    weight = LOSS_SCALE * target_probability
    weight_bound = LOSS_SCALE * probability_bound + 0.5 * u * (target_probability + probability_bound) + u
    delta = residual * weight
    delta_bound = np.abs(residual) * weight_bound + (weight + weight_bound) * probability_bound + u
    for layer in range(len(weights) - 1, -1, -1):
        below = layer > 0
        delta, delta_bound = _back_through(
            profile,
            delta,
            delta_bound,
            weights[layer],
            logits[layer - 1] if below else None,
            logit_bounds[layer - 1] if below else None,
        )
    mask_gradient = np.sum(delta * difference, axis=0) / batch
    mask_bound = np.sum(delta_bound * np.abs(difference), axis=0) / batch + u + SLACK
    pattern_gradient = mask * np.sum(delta, axis=0) / batch
    pattern_bound = mask * np.sum(delta_bound, axis=0) / batch + u + SLACK
    mean_loss = float(LOSS_SCALE - np.sum(weight) / batch)
    loss_bound = float(np.sum(weight_bound) / batch) + SLACK
    return mask_gradient, mask_bound, pattern_gradient, pattern_bound, mean_loss, loss_bound
