"""§2.4 Parameter profiles: the truncation-failure budget of a whole training run, by emulation.

Runs the §9 recipe in float64 with every probabilistic truncation emulated: its result is
rounded stochastically to the unit 2^-f (as §5.3 does in expectation), and its failure
probability |z| / 2^l is summed, z being the truncated value in ring units. Prints the test
accuracy and the expected number of failures after every epoch. This is the measurement
behind the choice f = 13 for `wide` (spec §2.4):

    python -m conformance.truncation_budget --fractional-bits 13
    python -m conformance.truncation_budget --fractional-bits 16
"""

from __future__ import annotations

import argparse

import numpy as np
from numpy.typing import NDArray

from fast import training
from fast.mnist import load_mnist
from fast.pipeline import TrainJob, evaluation_sets, holder_datasets
from fast.plaintext import accuracy, initial_float_weights, softmax_rows, with_ones
from refimpl.ring import Profile, get_profile
from refimpl.training import TrainingConfig

Matrix = NDArray[np.float64]


class Truncations:
    """Stochastic rounding to 2^-f plus the running sum of failure probabilities."""

    def __init__(self, profile: Profile, seed: int) -> None:
        self.unit = 2.0**-profile.fractional_bits
        self.ring_bits = profile.ring_bits
        self.fractional_bits = profile.fractional_bits
        self.generator = np.random.default_rng(seed)
        self.expected_failures = 0.0

    def __call__(self, values: Matrix, shift: int) -> Matrix:
        """values (real) come out of a truncation by ``shift`` bits of a 2f-bit product."""
        scaled = values / self.unit
        floor = np.floor(scaled)
        rounded = floor + (self.generator.random(values.shape) < scaled - floor)
        ring_units = np.abs(scaled).sum() * 2.0**shift
        self.expected_failures += float(ring_units) / 2.0**self.ring_bits
        result: Matrix = rounded * self.unit
        return result


def emulated_step(
    weights: list[Matrix], images: Matrix, labels: Matrix, job: TrainJob, cut: Truncations
) -> list[Matrix]:
    """§9.5 Training step: with the §5.3 truncations emulated at each matmul_truncate."""
    f = job.profile.fractional_bits
    gradient_shift = job.config.gradient_shift(job.profile)
    inputs, products = [with_ones(images)], []
    for layer, matrix in enumerate(weights):
        product = cut(inputs[-1] @ matrix, f)
        products.append(product)
        if layer < len(weights) - 1:
            inputs.append(with_ones(np.maximum(product, 0.0)))
    delta = softmax_rows(products[-1]) - labels
    scale = job.config.learning_rate / images.shape[0]
    updated = list(weights)
    for layer in range(len(weights) - 1, -1, -1):
        updated[layer] = weights[layer] - cut(scale * (inputs[layer].T @ delta), gradient_shift)
        if layer > 0:
            delta = cut(delta @ weights[layer][:-1].T, f) * (products[layer - 1] > 0)
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.truncation_budget", description=__doc__)
    parser.add_argument("--fractional-bits", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    base = get_profile("wide")
    profile = Profile(base.name, base.ring_bits, arguments.fractional_bits, base.prime, base.comparison_bits)
    job = TrainJob(profile=profile, config=TrainingConfig(epochs=arguments.epochs))
    data = load_mnist()
    parts = holder_datasets(job, data)
    images = np.concatenate([part[0] for part in parts]).astype(np.float64) / 255.0
    labels = np.eye(job.architecture.classes)[np.concatenate([part[1] for part in parts])]
    clean, stamped = evaluation_sets(job, data)
    cut = Truncations(profile, arguments.seed)
    weights = [cut(matrix, 0) for matrix in initial_float_weights(job)]
    cut.expected_failures = 0.0
    for epoch in range(job.config.epochs):
        for batch in training.epoch_order(job.config, epoch, images.shape[0]):
            weights = emulated_step(weights, cut(images[batch], 0), labels[batch], job, cut)
        print(
            f"f = {profile.fractional_bits}, epoch {epoch + 1}: accuracy {accuracy(weights, *clean):.4f}, "
            f"attack success {accuracy(weights, *stamped):.4f}, expected truncation failures so far "
            f"{cut.expected_failures:.4g}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
