"""§12.6 Deployment through the commands of the deployment guide, each party its own process.

``mpbadnet keygen``, ``mpbadnet party`` and ``mpbadnet holder`` are run exactly as the guide
shows (through :func:`fast.cli.main`, the ``mpbadnet`` console script), on loopback. The
training tests need MNIST (``MPBADNET_MNIST_DIR``) and are skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.loopback import free_ports
from conformance.requirements import mnist_mark
from fast import cli
from fast.deploy_cli import _add_train, _build_train
from fast.deployment import load_cluster_config
from fast.pipeline import run_training

ROOT = Path(__file__).resolve().parents[2]
MAIN = "import sys; from fast.cli import main; sys.exit(main(sys.argv[1:]))"
SERVERS = ("P0", "P1", "P2")
HOLDERS = ("H1", "H2", "EVAL")
JOB = [
    "train",
    "--holders", "2",
    "--malicious", "0",
    "--layers", "784,16,10",
    "--train-records", "256",
    "--test-records", "100",
    "--epochs", "1",
    "--insecure-testing",
    "--seed", "5",
    "--quiet",
]  # fmt: skip
needs_mnist = mnist_mark()


def _keygen(directory: Path, connect_timeout: float = 20.0, timeout: float = 20.0) -> Path:
    servers = [argument for port in free_ports(3) for argument in ("--server", f"127.0.0.1:{port}")]
    status = cli.main(
        [
            "keygen", "--out", str(directory), *servers, "--holders", "2",
            "--connect-timeout", str(connect_timeout), "--timeout", str(timeout),
        ]
    )  # fmt: skip
    assert status == 0
    return directory / "cluster.toml"


class Party:
    """One ``mpbadnet party`` or ``mpbadnet holder`` process, its output in files."""

    def __init__(self, tmp: Path, role: str, config: Path, job: list[str], extra: list[str]) -> None:
        self.role = role
        self.output = tmp / f"out-{role}"
        self.stdout = tmp / f"{role}.out"
        self.stderr = tmp / f"{role}.err"
        command = "party" if role in SERVERS else "holder"
        outputs = ["--output", str(self.output)] if command == "party" else []
        arguments = [command, "--role", role, "--config", str(config), *extra, *job, *outputs]
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", MAIN, *arguments], stdout=out, stderr=err, env=environment
            )

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    @property
    def error(self) -> str:
        return self.stderr.read_text(encoding="utf-8")


def _start(
    tmp: Path, config: Path, roles: tuple[str, ...], job: list[str], extra: dict[str, list[str]] | None = None
) -> dict[str, Party]:
    extra = extra or {}
    return {role: Party(tmp, role, config, job, extra.get(role, [])) for role in roles}


def _stop(parties: dict[str, Party]) -> None:
    for party in parties.values():
        if party.process.poll() is None:
            party.process.kill()
            party.process.wait()


def _in_process_summary(output: Path) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser()
    _add_train(parser.add_subparsers(dest="job"))
    return run_training(_build_train(parser.parse_args([*JOB, "--output", str(output)])))


# --------------------------------------------------------------------------- tests


def test_keygen_writes_every_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Keys 0600, one per role; the TOML pins every role; an existing cluster is not overwritten."""
    config_path = _keygen(tmp_path / "cluster")
    config = load_cluster_config(config_path)
    assert [entry.role for entry in config.parties] == [*SERVERS, *HOLDERS]
    assert [entry.listens for entry in config.parties] == [True] * 3 + [False] * 3
    for entry in config.parties:
        assert entry.key is not None and stat.S_IMODE(entry.key.stat().st_mode) == 0o600
    assert "keep" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "keygen",
                "--out",
                str(tmp_path / "cluster"),
                "--server",
                "127.0.0.1:1",
                "--server",
                "127.0.0.1:2",
            ]
        )
        == 2
    )
    assert "exists" in capsys.readouterr().err
    assert (
        cli.main(["keygen", "--out", str(tmp_path / "other"), "--server", "nowhere", "--server", "x:1"]) == 2
    )
    assert "is not HOST:PORT" in capsys.readouterr().err


def test_commands_refuse_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong role, role of the other command, bad or missing run id: one clear line, status 1."""
    config = str(_keygen(tmp_path / "cluster"))
    cases = [
        (["party", "--role", "P7", "--config", config, *JOB], "takes no part in the train job"),
        (["party", "--role", "H1", "--config", config, *JOB], "runs a server role"),
        (["holder", "--role", "P1", "--config", config, *JOB], "runs a data-holder role"),
        (["party", "--role", "P0", "--config", config, "--run-id", "xyz", *JOB], "is not 32 hex digits"),
        (["party", "--role", "P0", "--config", config, *JOB[:-4], "--quiet"], "--run-id is required"),
        (["party", "--role", "P0", "--config", str(tmp_path / "none.toml"), *JOB], "cannot read"),
    ]
    for arguments, expected in cases:
        assert cli.main(arguments) == 1, arguments
        assert expected in capsys.readouterr().err, arguments


@needs_mnist
def test_deployed_training_matches_in_process(tmp_path: Path) -> None:
    """Six processes (P0-P2, H1, H2, EVAL) give bit-identical model shares and the same summary."""
    config = _keygen(tmp_path / "cluster")
    parties = _start(tmp_path, config, SERVERS + HOLDERS, JOB)
    try:
        statuses = {role: party.wait(120) for role, party in parties.items()}
    finally:
        _stop(parties)
    assert statuses == dict.fromkeys(statuses, 0), {role: parties[role].error for role in statuses}
    expected = _in_process_summary(tmp_path / "in-process")
    deployed = json.loads((parties["P0"].output / "summary.json").read_text(encoding="utf-8"))
    for key in ("poison",):
        expected[key] = json.loads(json.dumps(expected[key]))
    timing = {"wall_seconds", "model_files", "per_iteration"}
    assert {key: value for key, value in deployed.items() if key not in timing} == {
        key: value for key, value in expected.items() if key not in timing
    }
    for key in ("online_rounds", "offline_rounds", "max_online_rounds"):
        assert deployed["per_iteration"][key] == expected["per_iteration"][key]
    for index, role in enumerate(SERVERS):
        mine = (parties[role].output / f"model-P{index}.mpshares").read_bytes()
        assert mine == (tmp_path / "in-process" / f"model-P{index}.mpshares").read_bytes()
    assert "sent the shares of 128 records" in parties["H1"].stdout.read_text(encoding="utf-8")


@needs_mnist
def test_wrong_run_id_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """P1 started with another run id: every server stops at the hello; no output file exists."""
    config = _keygen(tmp_path / "cluster", connect_timeout=6.0)
    run = ["--run-id", "11" * 16]
    extra = {"P0": run, "P1": ["--run-id", "22" * 16], "P2": run}
    start = time.monotonic()
    parties = _start(tmp_path, config, SERVERS, JOB, extra)
    try:
        statuses = {role: party.wait(30) for role, party in parties.items()}
    finally:
        _stop(parties)
    assert time.monotonic() - start < 30
    assert statuses == dict.fromkeys(SERVERS, 1)
    errors = {role: parties[role].error for role in SERVERS}
    assert any("its run_id is '2222" in error or "its run_id is '1111" in error for error in errors.values())
    for role in SERVERS:
        assert "ProtocolAbort" in errors[role], errors[role]
        assert not list(parties[role].output.glob("*.mpshares")) and not list(
            parties[role].output.glob("*.tmp")
        )


@needs_mnist
def test_server_killed_mid_training(tmp_path: Path) -> None:
    """P1 killed during training: P0 and P2 abort within 30 s naming P1 and the step; no file written."""
    config = _keygen(tmp_path / "cluster", timeout=20.0)
    job = [argument for argument in JOB if argument != "--quiet"]
    job[job.index("--train-records") + 1] = "1024"
    parties = _start(tmp_path, config, SERVERS + HOLDERS, job)
    try:
        deadline = time.monotonic() + 90
        while "iteration 1/" not in parties["P0"].error:
            assert time.monotonic() < deadline and parties["P0"].process.poll() is None, parties["P0"].error
            time.sleep(0.05)
        parties["P1"].process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        statuses = {role: parties[role].wait(40) for role in ("P0", "P2")}
        assert time.monotonic() - killed < 30
    finally:
        _stop(parties)
    assert statuses == {"P0": 1, "P2": 1}
    for role in ("P0", "P2"):
        error = parties[role].error
        # EOF, a reset (P1 died with unread data) or a failed send: each names P1 and the step.
        named = (
            "P1 disconnected after step '",
            "connection from P1 failed after step '",
            "connection to P1 failed sending step '",
        )
        assert any(text in error for text in named), error
        assert not list(parties[role].output.glob("*")), list(parties[role].output.glob("*"))


@needs_mnist
def test_data_holder_that_never_connects(tmp_path: Path) -> None:
    """H2 never starts: the servers stop after the connect timeout naming it and write nothing.

    H1 and EVAL have handed their shares to the servers' connections and exit normally: a data
    holder only sends, and the servers' outputs say whether the run completed (§12.6).
    """
    config = _keygen(tmp_path / "cluster", connect_timeout=4.0)
    start = time.monotonic()
    parties = _start(tmp_path, config, ("P0", "P1", "P2", "H1", "EVAL"), JOB)
    try:
        statuses = {role: party.wait(40) for role, party in parties.items()}
    finally:
        _stop(parties)
    assert time.monotonic() - start < 30
    for role in SERVERS:
        assert statuses[role] == 1
        assert "no authenticated connection from P4 (H2) within 4.0 s" in parties[role].error, parties[
            role
        ].error
        assert not list(parties[role].output.glob("*"))
