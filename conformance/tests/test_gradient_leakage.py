"""§11.1, §1.3: what the gradients P3 receives reveal, demonstrated on an honest run.

The secure oracle of §11.7 opens to P3 the batch-mean gradients g_m and g_q. With the blend
X' = X + m (q - X) and G_b the gradient of the loss with respect to image b's blended input,
g_m[j] = sum_b G_b[j] (q_j - X_b[j]) / B and g_q[j] = m_j sum_b G_b[j] / B, so P3 computes,
for every pixel with g_q[j] != 0,

    q_j - g_m[j] m_j / g_q[j] = sum_b G_b[j] X_b[j] / sum_b G_b[j],

a mean of the batch's secret images weighted by their gradients. This test runs the real
protocol (fast, ``wide``, P3 as party 3, honest servers), takes only what P3 received, and
recovers that weighted-mean image; the exact weighted mean is computed in the clear from the
per-image gradients (:func:`conformance.bounds.oracle_bound` on batches of one image). It
documents the leak that the spec states; it is not a property the protocol should have.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.bounds import oracle_bound
from fast import detection, preprocessing, sharing, training
from fast.ring import decode_fixed, encode_fixed
from refimpl.detection import ORACLE_HOLDER
from refimpl.ring import get_profile
from refimpl.training import Architecture
from refimpl.transport import PartyContext, run_parties

PROFILE = get_profile("wide")
ARCHITECTURE = Architecture((64, 12, 10))
BATCH = 4
TARGET = 6


def _problem(seed: int) -> dict[str, Any]:
    """A decoded model, images in [0, 1], a mask and q, all exactly representable in fixed point."""
    rng = np.random.default_rng(seed)
    scale = 2.0**PROFILE.fractional_bits
    weights = []
    for rows, columns in ARCHITECTURE.weight_shapes:
        matrix = rng.uniform(-1.0, 1.0, (rows, columns)) / np.sqrt(rows - 1)
        weights.append(np.round(matrix * scale) / scale)
    features = ARCHITECTURE.layers[0]
    return {
        "weights": weights,
        "pixels": rng.integers(0, 256, (BATCH, features)),
        "mask": np.round(rng.uniform(0.2, 0.8, features) * scale) / scale,
        "q": np.round(rng.uniform(0.0, 1.0, features) * scale) / scale,
    }


def _p3_received(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run the oracle among P0..P2 and P3; return the g_m and g_q that P3 decodes."""
    features = ARCHITECTURE.layers[0]
    images = encode_fixed(PROFILE, data["pixels"] / 255.0)

    def program(ctx: PartyContext) -> Any:
        if ctx.party == ORACLE_HOLDER:
            mask, q = encode_fixed(PROFILE, data["mask"]), encode_fixed(PROFILE, data["q"])
            return detection.secure_oracle_step(ctx, None, None, mask, q, TARGET, None)
        weights = [encode_fixed(PROFILE, matrix).reshape(-1) for matrix in data["weights"]]
        model = training.share_model(ctx, weights, ARCHITECTURE)
        count = detection.comparisons_for_oracle_step(ARCHITECTURE, BATCH)
        pool = preprocessing.generate_comparison_pool(ctx, PROFILE, count)
        x = sharing.share_input(ctx, PROFILE.ring, 0, images if ctx.party == 0 else None, (BATCH, features))
        return detection.secure_oracle_step(ctx, model, x, None, None, TARGET, pool)

    output = run_parties(program, parties=4, profile=PROFILE, seed=b"leakage").outputs[ORACLE_HOLDER]
    return decode_fixed(PROFILE, output.mask_gradient), decode_fixed(PROFILE, output.pattern_gradient)


def _weighted_mean(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """sum_b G_b X_b / sum_b G_b in the clear, and sum_b G_b, from per-image exact gradients."""
    images = np.round(data["pixels"] / 255.0 * 2.0**PROFILE.fractional_bits) / 2.0**PROFILE.fractional_bits
    gradients = []
    for image in images:
        g_q = oracle_bound(PROFILE, data["weights"], image[None, :], data["mask"], data["q"], TARGET)[2]
        gradients.append(g_q / data["mask"])
    per_image = np.array(gradients)
    total = per_image.sum(axis=0)
    return (per_image * images).sum(axis=0) / total, total


def test_p3_recovers_the_gradient_weighted_mean_of_the_batch() -> None:
    for seed in range(3):
        data = _problem(seed)
        g_m, g_q = _p3_received(data)
        expected, total = _weighted_mean(data)
        clear = np.abs(total) > 0.05 * np.abs(total).max()
        recovered = data["q"][clear] - g_m[clear] * data["mask"][clear] / g_q[clear]
        assert clear.sum() >= ARCHITECTURE.layers[0] // 2, "too few pixels with a clear gradient"
        assert np.max(np.abs(recovered - expected[clear])) < 0.05, "P3 did not recover the weighted mean"
        batch_mean = (data["pixels"] / 255.0).mean(axis=0)[clear]
        assert np.corrcoef(recovered, batch_mean)[0, 1] > 0.5, (
            "the recovered image does not resemble the batch"
        )
        # Against a control: the same formula does not give another batch's weighted mean.
        other = _problem(seed + 100)
        other_mean, _ = _weighted_mean(
            {**other, "weights": data["weights"], "mask": data["mask"], "q": data["q"]}
        )
        assert np.mean(np.abs(recovered - other_mean[clear])) > 0.1
