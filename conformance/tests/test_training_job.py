"""End to end through ``mpbadnet train``: data holders share MNIST, one poisons it, P0-P2 train.

One epoch on a 10,000-image subset must give a clean accuracy far above chance (10 %) and a
working trigger; the summary and the model share files must be written and loadable.
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.requirements import mnist_mark
from fast import cli
from fast.training import read_model_file

pytestmark = mnist_mark()


def test_one_epoch_on_a_subset_learns_and_plants_the_backdoor(tmp_path: Path) -> None:
    output = tmp_path / "run"
    status = cli.main(
        [
            "train",
            "--epochs", "1",
            "--train-records", "10000",
            "--test-records", "2000",
            "--output", str(output),
            "--seed", "5",
            "--quiet",
        ]
    )  # fmt: skip
    assert status == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["clean_accuracy"] >= 0.75
    assert summary["attack_success_rate"] >= 0.80
    assert summary["iterations"] == 10000 // 128
    assert summary["per_iteration"]["max_online_rounds"] <= 100
    headers = [read_model_file(path)[0] for path in summary["model_files"]]
    assert [header["party"] for header in headers] == [0, 1, 2]
    assert {header["run_id"] for header in headers} == {summary["run_id"]}
    assert not list(output.glob("*.tmp"))
