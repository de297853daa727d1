"""The command-line entry points: `mpbadnet demo` and the benchmark runner (`nox -s bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance import bench
from fast import cli

BENCH_FIELDS = {
    "name",
    "impl",
    "profile",
    "shape",
    "online_seconds",
    "offline_seconds",
    "bytes_sent_per_party",
    "rounds",
    "offline_bytes_sent_per_party",
    "offline_rounds",
}


@pytest.mark.parametrize("profile", ["paper", "wide"])
def test_demo_reveals_products_within_the_bound(profile: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["demo", "--profile", profile, "--rows", "4", "--inner", "8", "--columns", "3", "--seed", "7"]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "X @ Y (matrix product)" in printed
    assert "bytes sent per party" in printed


def test_bench_writes_the_documented_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "bench.json"
    assert bench.main(["--quick", "--repetitions", "2", "--json", str(output)]) == 0
    rows = json.loads(output.read_text())["benchmarks"]
    assert {(row["name"], row["impl"], row["profile"]) for row in rows} >= {
        (name, impl, profile)
        for name in ("matmul", "mul", "reveal")
        for impl in ("fast", "refimpl")
        for profile in ("paper", "wide")
    }
    for row in rows:
        assert set(row) >= BENCH_FIELDS
        assert len(row["bytes_sent_per_party"]) == (4 if row["name"] == "detect_step" else 3)
        assert row["online_seconds"] > 0
    by_name = {(row["name"], row["impl"], row["profile"]): row for row in rows}
    for impl in ("fast", "refimpl"):
        for profile, width in (("paper", 4), ("wide", 8)):
            ring_mul = by_name[("mul_ring", impl, profile)]
            elements = ring_mul["shape"][0]
            assert ring_mul["rounds"] == 1
            assert ring_mul["bytes_sent_per_party"] == [elements * width] * 3
            assert by_name[("mul", impl, profile)]["bytes_sent_per_party"] == [elements * width] * 3
    assert "matmul" in capsys.readouterr().out
