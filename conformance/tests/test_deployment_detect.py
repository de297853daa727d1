"""§11.8 and §12.6: detection deployed as five processes equals the in-process run, bit for bit.

A tiny model (784-16-10) is trained in process; then P0, P1 and P2 (each with its own
model-share file), the secondary server P3 and the image holder EVAL run ``mpbadnet party`` /
``mpbadnet holder ... detect`` on loopback with pinned keys. P3's report and reversed
triggers must equal the in-process ``mpbadnet detect`` run's; a server given the shares of
another training run is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance.loopback import free_ports
from conformance.requirements import mnist_mark
from conformance.tests.test_deployment_cli import JOB, MAIN, ROOT
from fast import cli
from fast.deploy_cli import _add_train, _build_train
from fast.detection import DetectionSettings
from fast.detection_job import DetectJob, run_detection
from fast.pipeline import run_training

pytestmark = mnist_mark()

ROLES = ("P0", "P1", "P2", "P3", "EVAL")
DETECT = [
    "detect", "--layers", "784,16,10", "--labels", "1,0", "--max-steps", "2", "--images", "64",
    "--insecure-testing", "--seed", "7", "--quiet", "--no-figures",
]  # fmt: skip


def _train(output: Path) -> dict[str, object]:
    import argparse

    parser = argparse.ArgumentParser()
    _add_train(parser.add_subparsers(dest="job"))
    return run_training(_build_train(parser.parse_args([*JOB, "--output", str(output)])))


def _cluster(directory: Path) -> Path:
    servers = [argument for port in free_ports(4) for argument in ("--server", f"127.0.0.1:{port}")]
    status = cli.main(
        ["keygen", "--out", str(directory), *servers, "--holders", "0",
         "--connect-timeout", "20", "--timeout", "60"]
    )  # fmt: skip
    assert status == 0
    return directory / "cluster.toml"


def _launch(
    tmp: Path, config: Path, model: Path, extra: dict[str, list[str]]
) -> dict[str, subprocess.Popen[bytes]]:
    processes = {}
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    for role in ROLES:
        command = "holder" if role == "EVAL" else "party"
        own = ["--model-dir", str(model)] if role in ("P0", "P1", "P2") else []
        own += ["--output", str(tmp / f"out-{role}")] if role == "P3" else []
        arguments = [command, "--role", role, "--config", str(config), *DETECT, *extra.get(role, []), *own]
        with (tmp / f"{role}.err").open("wb") as err, (tmp / f"{role}.out").open("wb") as out:
            processes[role] = subprocess.Popen(
                [sys.executable, "-c", MAIN, *arguments], stdout=out, stderr=err, env=environment
            )
    return processes


def _wait(processes: dict[str, subprocess.Popen[bytes]], timeout: float) -> dict[str, int]:
    try:
        return {role: process.wait(timeout=timeout) for role, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("model")
    _train(output)
    return output


def test_deployed_detection_matches_in_process(model: Path, tmp_path: Path) -> None:
    config = _cluster(tmp_path / "cluster")
    statuses = _wait(_launch(tmp_path, config, model, {}), 240)
    errors = {role: (tmp_path / f"{role}.err").read_text(encoding="utf-8") for role in ROLES}
    assert statuses == dict.fromkeys(ROLES, 0), errors
    deployed = json.loads((tmp_path / "out-P3" / "detection-report.json").read_text(encoding="utf-8"))
    job = DetectJob(
        model_directory=str(model),
        settings=DetectionSettings(max_steps=2),
        labels=(1, 0),
        images=64,
        output=str(tmp_path / "in-process"),
        seed=(7).to_bytes(8, "little"),
        quiet=True,
        figures=False,
    )
    expected = run_detection(job)
    timing = {"seconds", "wall_seconds"}
    assert [{k: v for k, v in row.items() if k not in timing} for row in deployed["labels"]] == [
        {k: v for k, v in row.items() if k not in timing} for row in expected["labels"]
    ]
    for key in ("flagged_labels", "mini_batches", "model_run_id", "settings", "architecture", "profile"):
        assert deployed[key] == expected[key], key
    for phase in ("online", "offline", "loading"):
        assert deployed["bytes_sent_per_party"][phase] == expected["bytes_sent_per_party"][phase]
    assert deployed["bytes_sent_per_party"]["total"][:4] == expected["bytes_sent_per_party"]["total"][:4]
    with (
        np.load(tmp_path / "out-P3" / "triggers.npz") as mine,
        np.load(tmp_path / "in-process" / "triggers.npz") as theirs,
    ):
        assert np.array_equal(mine["masks"], theirs["masks"])
        assert np.array_equal(mine["patterns"], theirs["patterns"])
    assert "answered 12 mini-batches" in (tmp_path / "P0.out").read_text(encoding="utf-8")


def test_shares_of_another_training_run_are_refused(model: Path, tmp_path: Path) -> None:
    config = _cluster(tmp_path / "cluster")
    other = ["--model-run-id", "00" * 16]
    statuses = _wait(_launch(tmp_path, config, model, dict.fromkeys(ROLES, other)), 120)
    for role in ("P0", "P1", "P2", "P3"):
        error = (tmp_path / f"{role}.err").read_text(encoding="utf-8")
        assert statuses[role] != 0 and "run_id is" in error and "expected '" + "00" * 16 in error, error
    assert not (tmp_path / "out-P3" / "detection-report.json").exists()
