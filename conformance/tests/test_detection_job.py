"""End to end through ``mpbadnet detect`` (spec §11.8): a short detection on model shares.

The poisoned model of the CI training run (``conformance.trained``) is reused;
``mpbadnet detect`` then runs two candidate labels for three steps each among P0..P2, P3 and
the image holder, and writes the report, the reversed triggers and the figures. The
plaintext baseline on the same model (the shares decoded) with the same settings must agree
with it. A second, still short, secure detection over all ten labels must flag the target
label 6, give it the smallest trigger norm by a margin and the largest anomaly index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conformance.expect import raises_exactly
from conformance.requirements import mnist_mark
from conformance.trained import trained_model, trained_models_folder
from fast import cli
from fast.detection_job import STOP, decode_control, encode_control
from refimpl.transport import WireFormatError

pytestmark = mnist_mark()

SHORT = ["--labels", "6,0", "--max-steps", "3", "--images", "256", "--quiet"]


TARGET = 6
ALL_LABELS = ["--max-steps", "10", "--images", "256", "--detection-seed", "0", "--no-figures", "--quiet"]
"""All 10 labels, 10 steps of 3 mini-batches on 256 images: about 40 s secure on 2 cores.

Measured on the CI poisoned model (and, as robustness checks, with detection seeds 1 and 2
and on a second model trained with public seed 01..01), label 6 was flagged every time and
had the smallest best L1 norm: 0.64 x the median of the other labels here (0.73, 0.76,
0.75 and 0.80 in the checks), and the largest anomaly index: 9.9 here (8.3, 5.0, 7.0 and
6.7), the next largest at most 3.2. Another label was flagged besides 6 in two of the five
runs (label 2 on the second model), so only label 6's presence is required. Ten steps are
far fewer than the 50 of §11.3: the clean control (the ``--clean`` model) then flags a label
in 4 of 4 measured runs, so no "nothing flagged" check is affordable at this size.
"""
MAX_NORM_RATIO = 0.9
"""Label 6's best L1 norm at most this fraction of the other labels' median (measured <= 0.80)."""


@pytest.fixture(scope="module")
def model_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The poisoned model of the CI training run (test_training_job), trained once per session."""
    return trained_model("poisoned", trained_models_folder(tmp_path_factory))


def test_short_secure_detection_writes_report_and_figures(model_directory: Path, tmp_path: Path) -> None:
    output = tmp_path / "secure"
    assert cli.main(["detect", str(model_directory), "--output", str(output), "--seed", "4", *SHORT]) == 0
    report = json.loads((output / "detection-report.json").read_text())
    assert report["mode"] == "secure" and report["profile"] == "wide"
    assert [row["label"] for row in report["labels"]] == [6, 0]
    assert all(row["steps"] == 3 and row["mini_batches"] == 9 for row in report["labels"])
    assert report["mini_batches"] == 18
    assert len(report["bytes_sent_per_party"]["total"]) == 5
    assert all(sent > 0 for sent in report["bytes_sent_per_party"]["total"])
    assert report["per_mini_batch"]["max_online_rounds"] > 0
    for name in (
        "triggers.png",
        "l1-norms.png",
        "anomaly-indices.png",
        "trigger-label-6.png",
        "triggers.npz",
    ):
        assert (output / name).stat().st_size > 0
    with np.load(output / "triggers.npz") as triggers:
        assert triggers["masks"].shape == (2, 28, 28)
        norms = triggers["masks"].reshape(2, -1).sum(axis=1)
    assert np.allclose(norms, [row["best_l1_norm"] for row in report["labels"]])
    assert not list(output.glob("*.tmp*"))

    plain = tmp_path / "plain"
    assert cli.main(["detect", str(model_directory), "--plaintext", "--output", str(plain), *SHORT]) == 0
    baseline = json.loads((plain / "detection-report.json").read_text())
    for secure_row, plain_row in zip(report["labels"], baseline["labels"], strict=True):
        assert secure_row["mini_batches"] == plain_row["mini_batches"]
        assert abs(secure_row["best_l1_norm"] - plain_row["best_l1_norm"]) <= 0.02 * plain_row["best_l1_norm"]
        assert abs(secure_row["attack_success"] - plain_row["attack_success"]) <= 0.05


def test_secure_detection_over_all_labels_flags_the_target(model_directory: Path, tmp_path: Path) -> None:
    output = tmp_path / "all-labels"
    assert (
        cli.main(["detect", str(model_directory), "--output", str(output), "--seed", "4", *ALL_LABELS]) == 0
    )
    report = json.loads((output / "detection-report.json").read_text())
    norms = {row["label"]: row["best_l1_norm"] for row in report["labels"]}
    anomalies = {row["label"]: row["anomaly_index"] for row in report["labels"]}
    assert sorted(norms) == list(range(10))
    assert TARGET in report["flagged_labels"]
    others = [norm for label, norm in norms.items() if label != TARGET]
    assert norms[TARGET] < min(others)
    assert norms[TARGET] <= MAX_NORM_RATIO * float(np.median(others))
    assert max(anomalies, key=anomalies.__getitem__) == TARGET


def test_detect_refuses_bad_requests(model_directory: Path, tmp_path: Path) -> None:
    with raises_exactly(ValueError, match="not one of the model's 10 classes"):
        cli.main(["detect", str(model_directory), "--labels", "10", "--output", str(tmp_path), "--quiet"])
    with raises_exactly(ValueError, match="images"):
        cli.main(["detect", str(model_directory), "--images", "8", "--output", str(tmp_path), "--quiet"])
    with raises_exactly(FileNotFoundError):
        cli.main(["detect", str(tmp_path / "missing"), "--output", str(tmp_path), "--quiet"])


def test_control_messages_are_checked() -> None:
    batch = np.arange(32, dtype=np.int64)
    assert decode_control(encode_control(6, batch), 256, 10)[0] == 6
    assert decode_control(encode_control(STOP, batch), 256, 10)[0] == STOP
    with raises_exactly(WireFormatError, match="label 10"):
        decode_control(encode_control(10, batch), 256, 10)
    with raises_exactly(WireFormatError, match="outside"):
        decode_control(encode_control(1, batch + 250), 256, 10)
