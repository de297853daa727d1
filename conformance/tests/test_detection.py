"""§11 Backdoor detection: Algorithm 2 (MAD) worked examples, refimpl == fast, and Algorithm 1's parts.

Algorithm 2 is checked against hand-computed examples (every number below can be redone on
paper), against a "lower median" variant that would not give them, and refimpl against
fast by hypothesis. Algorithm 1: the plaintext gradient oracle against finite differences,
the cost schedule step by step, and the loop's determinism on a tiny model.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fast.detection
import fast.training
import refimpl.detection
from conformance.expect import raises_exactly
from conformance.requirements import mnist_mark
from fast import plaintext
from fast.detection import CostSchedule, DetectionSettings, reverse_engineer
from fast.mnist import MnistData, load_mnist
from fast.pipeline import TrainJob, holder_datasets
from fast.plaintext_detection import detect_plaintext, plaintext_oracle
from refimpl.ring import get_profile
from refimpl.training import TrainingConfig

# An infected model in the ranges of the paper's Fig. 2 (label 6 about 13, the others 61 to
# 153; labels 1, 4, 5, 7 and 9 above the median). numpy median = (90 + 100) / 2 = 95;
# |norm - 95| = 15, 25, 20, 5, 45, 15, 82, 5, 10, 58; their median = (15 + 20) / 2 = 17.5;
# MAD = 1.4826 * 17.5 = 25.9455; index of 6 = 82 / 25.9455 = 3.1605 (within 2.65..3.82).
INFECTED = [80.0, 120.0, 75.0, 90.0, 140.0, 110.0, 13.0, 100.0, 85.0, 153.0]
INFECTED_MAD = 1.4826 * 17.5

# A clean-looking model: numpy median = (91 + 101) / 2 = 96; deviations 5, 58, 39, 58, 19, 5,
# 43, 7, 10, 53; their median (19 + 39) / 2 = 29; MAD = 42.9954; the largest index below the
# median is label 9's 53 / 42.9954 = 1.2327, so nothing is flagged. The lower median (91)
# gives deviations whose lower median is 15, MAD 22.239 and index 48 / 22.239 = 2.158 for
# label 9: a "lower median" implementation flags a clean model.
CLEAN = [101.0, 154.0, 57.0, 154.0, 77.0, 91.0, 139.0, 89.0, 106.0, 43.0]
CLEAN_MAD = 1.4826 * 29.0

IMPLEMENTATIONS = [refimpl.detection, fast.detection]

norm_lists = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=20
)


def lower_median(values: list[float]) -> float:
    """The deviating variant: the lower of the two middle values."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def lower_median_flags(norms: list[float]) -> list[int]:
    """Algorithm 2 with the lower median in both places."""
    centre = lower_median(norms)
    mad = 1.4826 * lower_median([abs(x - centre) for x in norms])
    return [i for i, x in enumerate(norms) if x <= centre and abs(x - centre) / mad > 2]


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=["refimpl", "fast"])
def test_anomaly_indices_infected_example(module: object) -> None:
    """§11.2: the worked infected example; label 6 alone is flagged, index 3.1605."""
    indices = module.anomaly_indices(INFECTED)  # type: ignore[attr-defined]
    expected = [abs(x - 95.0) / INFECTED_MAD for x in INFECTED]
    assert indices == pytest.approx(expected, rel=1e-15)
    assert 2.65 <= indices[6] <= 3.82
    assert indices[6] == pytest.approx(3.16047, abs=1e-5)
    assert module.flagged_labels(INFECTED) == [6]  # type: ignore[attr-defined]
    # label 9 has index 2.235 > 2 but lies above the median: not flagged (Algorithm 2, step 2.8)
    assert indices[9] > 2


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=["refimpl", "fast"])
def test_flagged_labels_clean_example_numpy_median(module: object) -> None:
    """§11.2: the clean example flags nothing with numpy's median; the lower median flags label 9."""
    indices = module.anomaly_indices(CLEAN)  # type: ignore[attr-defined]
    assert indices == pytest.approx([abs(x - 96.0) / CLEAN_MAD for x in CLEAN], rel=1e-15)
    assert max(index for index, x in zip(indices, CLEAN, strict=True) if x <= 96.0) == pytest.approx(
        53 / CLEAN_MAD
    )
    assert module.flagged_labels(CLEAN) == []  # type: ignore[attr-defined]
    assert lower_median_flags(CLEAN) == [9]


def test_compute_median_is_numpys() -> None:
    """§11.2: odd count, the middle value; even count, the mean of the two middle values."""
    assert refimpl.detection.compute_median([3.0, 1.0, 2.0]) == 2.0
    assert refimpl.detection.compute_median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert refimpl.detection.compute_median(INFECTED) == 95.0


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=["refimpl", "fast"])
def test_mad_zero(module: object) -> None:
    """§11.2: MAD = 0. All equal: every index 0, nothing flagged; otherwise inf off the median."""
    assert module.anomaly_indices([5.0] * 10) == [0.0] * 10  # type: ignore[attr-defined]
    assert module.flagged_labels([5.0] * 10) == []  # type: ignore[attr-defined]
    norms = [5.0] * 9 + [1.0]
    assert module.anomaly_indices(norms) == [0.0] * 9 + [math.inf]  # type: ignore[attr-defined]
    assert module.flagged_labels(norms) == [9]  # type: ignore[attr-defined]
    assert module.flagged_labels([5.0] * 9 + [9.0]) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=["refimpl", "fast"])
@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [1.0, math.nan], [math.inf, 1.0]])
def test_anomaly_indices_rejects(module: object, bad: list[float]) -> None:
    """§11.2: no norms, a negative or a non-finite norm: ``ValueError``."""
    with raises_exactly(ValueError):
        module.anomaly_indices(bad)  # type: ignore[attr-defined]
    with raises_exactly(ValueError):
        module.flagged_labels(bad)  # type: ignore[attr-defined]


@given(norm_lists)
def test_anomaly_indices_refimpl_equals_fast(norms: list[float]) -> None:
    """§11.2: refimpl and fast give identical indices and flags (bit for bit)."""
    assert refimpl.detection.anomaly_indices(norms) == fast.detection.anomaly_indices(norms)
    assert refimpl.detection.flagged_labels(norms) == fast.detection.flagged_labels(norms)
    assert refimpl.detection.compute_median(norms) == float(np.median(norms))
    assert refimpl.detection.compute_median(norms) == fast.detection.compute_median(norms)
    assert refimpl.detection.compute_mad(norms) == fast.detection.compute_mad(norms)


@given(norm_lists)
def test_flagged_labels_definition(norms: list[float]) -> None:
    """§11.2: flagged exactly when norm <= median and index > 2."""
    indices = refimpl.detection.anomaly_indices(norms)
    centre = float(np.median(norms))
    expected = [i for i, (x, a) in enumerate(zip(norms, indices, strict=True)) if x <= centre and a > 2.0]
    assert refimpl.detection.flagged_labels(norms) == expected


def tiny_model(seed: int) -> list[np.ndarray]:
    """A random 784-16-12-10 float64 model in augmented form (last row the bias)."""
    rng = np.random.default_rng(seed)
    shapes = [(785, 16), (17, 12), (13, 10)]
    return [rng.normal(0.0, 1.0 / math.sqrt(rows), size=(rows, cols)) for rows, cols in shapes]


def test_plaintext_oracle_gradient_check() -> None:
    """§11.4: the oracle's batch-mean gradients equal central finite differences of its mean loss."""
    rng = np.random.default_rng(7)
    weights = tiny_model(1)
    images = rng.integers(0, 256, size=(6, 784), dtype=np.uint8)
    oracle = plaintext_oracle(weights, images)
    mask = rng.random((28, 28))
    pattern = rng.random((28, 28)) * 255.0
    batch = np.arange(6, dtype=np.int64)
    result = oracle(mask, pattern, batch, 3)
    assert 0 <= result.successes <= 6
    for row, col in [(0, 0), (5, 17), (14, 14), (27, 3), (20, 25)]:
        for which, array, gradient, step in [
            ("mask", mask, result.mask_gradient, 1e-6),
            ("pattern", pattern, result.pattern_gradient, 1e-4),
        ]:
            plus, minus = array.copy(), array.copy()
            plus[row, col] += step
            minus[row, col] -= step
            pair = (plus, pattern) if which == "mask" else (mask, plus)
            pair_minus = (minus, pattern) if which == "mask" else (mask, minus)
            numeric = (
                oracle(pair[0], pair[1], batch, 3).mean_loss
                - oracle(pair_minus[0], pair_minus[1], batch, 3).mean_loss
            ) / (2 * step)
            assert gradient[row, col] == pytest.approx(numeric, rel=1e-5, abs=1e-9), (which, row, col)


def test_cost_schedule_steps() -> None:
    """§11.3: cost 0 -> init_cost after patience successes, x2 after patience more, /2^1.5 after failures."""
    settings = DetectionSettings(patience=2)
    schedule = CostSchedule(settings)
    schedule.after_step(1.0, math.inf)
    assert schedule.cost == 0.0
    schedule.after_step(1.0, math.inf)
    assert schedule.cost == 1e-3 and not schedule.up_flag
    schedule.after_step(1.0, 50.0)
    schedule.after_step(1.0, 50.0)
    assert schedule.cost == 2e-3 and schedule.up_flag
    schedule.after_step(0.5, 50.0)
    schedule.after_step(0.5, 50.0)
    assert schedule.cost == 2e-3 / 2**1.5 and schedule.down_flag
    # the best norm has not improved since it was set (3 steps counted so far): with both
    # flags set, the early stop fires when the count reaches 5 x patience = 10, 7 steps on
    assert schedule.early_stop_counter == 3
    stops = [schedule.after_step(0.5, 50.0) for _ in range(7)]
    assert stops[-1] and not any(stops[:-1])


def test_reverse_engineer_deterministic_and_plaintext_report() -> None:
    """§11.3, §11.5: equal seeds give equal results; the report has every label and Algorithm 2."""
    rng = np.random.default_rng(3)
    weights = tiny_model(2)
    images = rng.integers(0, 256, size=(64, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, size=64, dtype=np.uint8)
    settings = DetectionSettings(batches_per_step=2, max_steps=4, seed=5)
    oracle = plaintext_oracle(weights, images)
    first = reverse_engineer(oracle, 2, 64, settings)
    second = reverse_engineer(oracle, 2, 64, settings)
    assert first.best_norm == second.best_norm and first.steps == second.steps == 4
    assert np.array_equal(first.mask, second.mask)
    assert first.mini_batches == 8
    report = detect_plaintext(weights, images, labels, settings)
    norms = [entry["best_l1_norm"] for entry in report["labels"]]
    assert [entry["label"] for entry in report["labels"]] == list(range(10))
    assert [entry["anomaly_index"] for entry in report["labels"]] == refimpl.detection.anomaly_indices(norms)
    assert report["flagged_labels"] == refimpl.detection.flagged_labels(norms)


def trained_infected_model(data: MnistData) -> list[np.ndarray]:
    """A float64 model of the §9 recipe, 3 epochs on 10,000 images, 10 % stamped and relabelled 6."""
    job = TrainJob(profile=get_profile("wide"), config=TrainingConfig(epochs=3), train_records=10000)
    parts = holder_datasets(job, data)
    images = np.concatenate([part[0] for part in parts]).astype(np.float64) / 255.0
    labels = np.eye(10)[np.concatenate([part[1] for part in parts])]
    weights = plaintext.initial_float_weights(job)
    for epoch in range(job.config.epochs):
        for batch in fast.training.epoch_order(job.config, epoch, images.shape[0]):
            weights = plaintext.step(weights, images[batch], labels[batch], job.config.learning_rate)
    return weights


@mnist_mark()
def test_detect_plaintext_infected_model_labels_6_and_0() -> None:
    """§11.6: on an infected float64 model, label 6's best mask is far smaller than label 0's."""
    data = load_mnist(os.environ["MPBADNET_MNIST_DIR"])
    weights = trained_infected_model(data)
    report = detect_plaintext(
        weights, data.test_images[:2000], data.test_labels[:2000], DetectionSettings(), [6, 0]
    )
    by_label = {entry["label"]: entry for entry in report["labels"]}
    assert by_label[6]["reached_threshold"] and by_label[6]["best_l1_norm"] < 20.0
    assert by_label[0]["best_l1_norm"] > 40.0
