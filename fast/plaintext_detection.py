"""§11.5 Plaintext baseline: Algorithms 1 and 2 on a float64 model in the clear.

The oracle (:func:`plaintext_oracle`) is the per-mini-batch computation that the secure
version runs among P0..P2: blend, forward pass of the float64 model of
:mod:`fast.plaintext`, softmax, Neural Cleanse's loss c (1 - p_target) and its gradient back
to the input, then to mask and pattern. Everything else is :func:`fast.detection.reverse_engineer`
and Algorithm 2, shared with the secure version.

Run on a model file: ``python -m fast.plaintext_detection MODEL.npz [--labels 0,6] ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fast.detection import (
    DetectionSettings,
    GradientOracle,
    LabelResult,
    OracleResult,
    label_report,
    reverse_engineer,
)
from fast.mnist import load_mnist
from fast.plaintext import forward, load_float_model, softmax_rows
from refimpl.detection import LOSS_SCALE

__all__ = [
    "blend",
    "detect_plaintext",
    "input_gradient",
    "main",
    "plaintext_oracle",
    "reverse_engineer_labels",
]

Matrix = NDArray[np.float64]


def blend(mask: Matrix, pattern: Matrix, raw_images: Matrix) -> Matrix:
    """§11.3 Trigger reverse engineering (Algorithm 1): the blend ((1 - mask) x + mask pattern) / 255."""
    m, p = mask.reshape(-1), pattern.reshape(-1)
    blended: Matrix = ((1.0 - m) * raw_images + m * p) / 255.0
    return blended


def input_gradient(weights: list[Matrix], inputs: Matrix, target: int) -> tuple[Matrix, int, float]:
    """§11.4 The gradient oracle: d (mean loss c (1 - p_target)) / d inputs, successes, mean loss."""
    _, products = forward(weights, inputs)
    logits = products[-1]
    probabilities = softmax_rows(logits)
    target_probability = probabilities[:, target].copy()
    loss = float(np.mean(LOSS_SCALE * (1.0 - target_probability)))
    successes = int(np.sum(logits.argmax(axis=1) == target))
    delta = probabilities
    delta[:, target] -= 1.0
    delta *= (LOSS_SCALE * target_probability / inputs.shape[0])[:, None]
    for layer in range(len(weights) - 1, -1, -1):
        delta = delta @ weights[layer][:-1].T
        if layer > 0:
            delta = delta * (products[layer - 1] > 0)
    return delta, successes, loss


def plaintext_oracle(weights: list[Matrix], images: NDArray[np.uint8]) -> GradientOracle:
    """§11.4 The gradient oracle: in the clear, over the detection images (rows of 784 pixels)."""
    raw = images.astype(np.float64)

    def oracle(mask: Matrix, pattern: Matrix, batch: NDArray[np.int64], target: int) -> OracleResult:
        x = raw[batch]
        gradient, successes, loss = input_gradient(weights, blend(mask, pattern, x), target)
        m, p = mask.reshape(-1), pattern.reshape(-1)
        mask_gradient = np.sum(gradient * (p - x), axis=0) / 255.0
        pattern_gradient = np.sum(gradient, axis=0) * m / 255.0
        return OracleResult(
            mask_gradient.reshape(mask.shape), pattern_gradient.reshape(pattern.shape), successes, loss
        )

    return oracle


def reverse_engineer_labels(
    weights: list[Matrix],
    images: NDArray[np.uint8],
    settings: DetectionSettings,
    targets: list[int] | None = None,
    progress: Callable[[int, int, float, float, float], None] | None = None,
) -> tuple[list[LabelResult], list[float]]:
    """§11.5 Plaintext baseline: Algorithm 1 for every label (or ``targets``); results and seconds."""
    classes = weights[-1].shape[1]
    oracle = plaintext_oracle(weights, images)
    results: list[LabelResult] = []
    label_seconds: list[float] = []
    for target in range(classes) if targets is None else targets:
        begun = time.perf_counter()
        results.append(reverse_engineer(oracle, target, images.shape[0], settings, progress))
        label_seconds.append(time.perf_counter() - begun)
    return results, label_seconds


def detect_plaintext(
    weights: list[Matrix],
    images: NDArray[np.uint8],
    labels: NDArray[np.uint8],
    settings: DetectionSettings,
    targets: list[int] | None = None,
    progress: Callable[[int, int, float, float, float], None] | None = None,
) -> dict[str, Any]:
    """§11.5 Plaintext baseline: Algorithm 1 for every label (or ``targets``), then Algorithm 2.

    ``labels`` are the detection images' true labels; Algorithm 1 does not use them (every
    image is pushed towards the candidate target, as in Neural Cleanse); the report gives the
    model's accuracy on the detection images as a sanity check.
    """
    if images.ndim != 2 or images.shape[0] != labels.shape[0]:
        raise ValueError("images must be (n, pixels) with one label per image")
    results, label_seconds = reverse_engineer_labels(weights, images, settings, targets, progress)
    logits = forward(weights, images.astype(np.float64) / 255.0)[1][-1]
    report = label_report(results, label_seconds)
    report.update(
        {
            "mode": "plaintext float64",
            "settings": dataclasses.asdict(settings),
            "detection_images": int(images.shape[0]),
            "model_accuracy_on_detection_images": float(np.mean(logits.argmax(axis=1) == labels)),
        }
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """§11.5 Plaintext baseline: run it on a ``plaintext-model.npz`` and print the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m fast.plaintext_detection")
    parser.add_argument("model")
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--labels", default=None, help="comma-separated candidate targets")
    parser.add_argument("--images", type=int, default=None, help="first N test images")
    parser.add_argument("--batches-per-step", type=int, default=31)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    arguments = parser.parse_args(argv)
    weights = load_float_model(arguments.model)
    data = load_mnist(arguments.mnist)
    count = arguments.images or data.test_labels.size
    settings = DetectionSettings(
        batches_per_step=arguments.batches_per_step,
        max_steps=arguments.max_steps,
        patience=arguments.patience,
        learning_rate=arguments.learning_rate,
        seed=arguments.seed,
    )
    targets = None if arguments.labels is None else [int(x) for x in arguments.labels.split(",")]

    def progress(label: int, step: int, cost: float, success: float, norm: float) -> None:
        if step % 10 == 0:
            print(
                f"label {label} step {step} cost {cost:.3g} success {success:.3f} norm {norm:.1f}",
                file=sys.stderr,
            )

    report = detect_plaintext(
        weights, data.test_images[:count], data.test_labels[:count], settings, targets, progress
    )
    text = json.dumps(report, indent=2, sort_keys=True)
    if arguments.output:
        with open(arguments.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
