"""Small models trained once per test process through ``mpbadnet train`` (the end-to-end controls).

The training job and the detection job both need the 1-epoch poisoned model of the CI run;
:func:`trained_model` trains each named run once and hands later callers the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fast import cli

CI_TRAINING = ["train", "--epochs", "1", "--train-records", "10000", "--test-records", "2000", "--seed", "5"]
RUNS = {
    "poisoned": [],
    "clean": ["--clean"],
    "plaintext": ["--plaintext"],
}
SUMMARY_NAMES = {"plaintext": "plaintext-summary.json"}
_FOLDERS: dict[str, Path] = {}


def trained_model(name: str, parent: Path) -> Path:
    """The output folder of run ``name`` (see ``RUNS``), trained under ``parent`` on first use."""
    if name not in _FOLDERS:
        output = parent / name
        status = cli.main([*CI_TRAINING, *RUNS[name], "--output", str(output), "--quiet"])
        assert status == 0, f"mpbadnet train ({name}) exited with {status}"
        _FOLDERS[name] = output
    return _FOLDERS[name]


def training_summary(name: str, parent: Path) -> dict[str, Any]:
    """The summary the run ``name`` wrote."""
    folder = trained_model(name, parent)
    summary: dict[str, Any] = json.loads((folder / SUMMARY_NAMES.get(name, "summary.json")).read_text())
    return summary


def trained_models_folder(factory: pytest.TempPathFactory) -> Path:
    """One folder per test session for the runs of :func:`trained_model`."""
    folder = factory.getbasetemp() / "trained"
    folder.mkdir(exist_ok=True)
    return folder
