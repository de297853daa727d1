"""The float64 baseline of ``mpbadnet train --plaintext``: the same network and schedule in the clear.

Same data, poisoning, public initial model (decoded from its fixed-point form), batch order,
learning rate and softmax cross-entropy gradient as §9, computed with float64 numpy; only
for comparing accuracy and speed with the secure run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fast import training
from fast.mnist import load_mnist
from fast.pipeline import Images, Labels, TrainJob, evaluation_sets, holder_datasets
from fast.ring import decode_fixed

Matrix = NDArray[np.float64]


def initial_float_weights(job: TrainJob) -> list[Matrix]:
    """§9.2 Public randomness: the public initial model as float64 matrices."""
    weights = training.initial_weights(job.profile, job.architecture, job.config.public_seed)
    return [
        decode_fixed(job.profile, layer).reshape(shape)
        for layer, shape in zip(weights, job.architecture.weight_shapes, strict=True)
    ]


def softmax_rows(logits: Matrix) -> Matrix:
    """The float64 softmax over the last axis, shifted by the maximum."""
    powers = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: Matrix = powers / powers.sum(axis=-1, keepdims=True)
    return result


def with_ones(values: Matrix) -> Matrix:
    """[x | 1]."""
    return np.concatenate([values, np.ones((values.shape[0], 1))], axis=1)


def forward(weights: list[Matrix], images: Matrix) -> tuple[list[Matrix], list[Matrix]]:
    """Augmented inputs of every layer and the pre-activations."""
    inputs, products = [with_ones(images)], []
    for layer, matrix in enumerate(weights):
        product = inputs[-1] @ matrix
        products.append(product)
        if layer < len(weights) - 1:
            inputs.append(with_ones(np.maximum(product, 0.0)))
    return inputs, products


def step(weights: list[Matrix], images: Matrix, labels: Matrix, learning_rate: float) -> list[Matrix]:
    """One SGD step on the mean softmax cross-entropy."""
    inputs, products = forward(weights, images)
    delta = softmax_rows(products[-1]) - labels
    scale = learning_rate / images.shape[0]
    updated = list(weights)
    for layer in range(len(weights) - 1, -1, -1):
        updated[layer] = weights[layer] - scale * (inputs[layer].T @ delta)
        if layer > 0:
            delta = (delta @ weights[layer][:-1].T) * (products[layer - 1] > 0)
    return updated


def accuracy(weights: list[Matrix], images: Images, labels: Labels) -> float:
    """The fraction of images classified as their label (argmax, ties to the first index)."""
    logits = forward(weights, images.astype(np.float64) / 255.0)[1][-1]
    return float((logits.argmax(axis=1) == labels).mean())


def run_plaintext(job: TrainJob) -> dict[str, Any]:
    """Train and evaluate in the clear; save the float64 model; return the summary."""
    data = load_mnist(job.mnist_directory)
    parts = holder_datasets(job, data)
    images = np.concatenate([part[0] for part in parts]).astype(np.float64) / 255.0
    labels = np.eye(job.architecture.classes)[np.concatenate([part[1] for part in parts])]
    weights = initial_float_weights(job)
    started = time.perf_counter()
    for epoch in range(job.config.epochs):
        for batch in training.epoch_order(job.config, epoch, images.shape[0]):
            weights = step(weights, images[batch], labels[batch], job.config.learning_rate)
    seconds = time.perf_counter() - started
    evaluation = evaluation_sets(job, data)
    os.makedirs(job.output, exist_ok=True)
    model_path = os.path.join(job.output, "plaintext-model.npz")
    save_float_model(model_path, weights)
    return {
        "mode": "plaintext float64",
        "architecture": job.architecture.describe(),
        "epochs": job.config.epochs,
        "batch_size": job.config.batch_size,
        "learning_rate": job.config.learning_rate,
        "clean_accuracy": accuracy(weights, *evaluation[0]),
        "attack_success_rate": accuracy(weights, *evaluation[1]) if len(evaluation) > 1 else None,
        "training_seconds": seconds,
        "model_file": model_path,
    }


def save_float_model(path: str, weights: list[Matrix]) -> None:
    """A float64 model as ``plaintext-model.npz``: the weight matrices in order (arr_0, arr_1, ...)."""
    np.savez(path, *weights)


def load_float_model(path: str) -> list[Matrix]:
    """The float64 model that :func:`save_float_model` wrote."""
    with np.load(path) as archive:
        return [archive[f"arr_{i}"].astype(np.float64) for i in range(len(archive.files))]
