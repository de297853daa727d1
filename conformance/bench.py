"""Micro-benchmarks (`nox -s bench`): a readable table and, with ``--json PATH``, the JSON file.

Every entry runs 3 computing parties as threads in one process and measures one operation
between two barriers. Online figures exclude the offline phase, which has its own fields
(none of the chapter 2-5 protocols has an offline phase, so those are zero here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import fast.arithmetic
import fast.randomness
import fast.sharing
import refimpl.arithmetic
import refimpl.randomness
import refimpl.sharing
from fast.tuning import keep_freed_memory
from refimpl.ring import Profile, Share, get_profile
from refimpl.transport import PartyContext, run_parties

Operation = Callable[[PartyContext, Any, Any], Any]


@dataclass
class Benchmark:
    """§13.6 Benchmark file: one row."""

    name: str
    impl: str
    profile: str
    shape: list[int]
    online_seconds: float
    offline_seconds: float
    bytes_sent_per_party: list[int]
    rounds: int
    offline_bytes_sent_per_party: list[int]
    offline_rounds: int
    repetitions: int


@dataclass(frozen=True)
class BenchCase:
    """An operation on two random shared operands of the given shapes."""

    name: str
    left_shape: tuple[int, ...]
    right_shape: tuple[int, ...]
    reported_shape: tuple[int, ...]
    run: Callable[[Any, Any, PartyContext, Any, Any, Profile], Any]


def _matmul(modules: Any, _sharing: Any, ctx: PartyContext, x: Any, y: Any, profile: Profile) -> Any:
    return modules.matmul_truncate(ctx, x, y, profile.fractional_bits)


def _mul(modules: Any, _sharing: Any, ctx: PartyContext, x: Any, y: Any, profile: Profile) -> Any:
    return modules.mul_truncate(ctx, x, y, profile.fractional_bits)


def _mul_ring(modules: Any, _sharing: Any, ctx: PartyContext, x: Any, y: Any, profile: Profile) -> Any:
    return modules.mul(ctx, x, y)


def _reveal(_modules: Any, sharing: Any, ctx: PartyContext, x: Any, _y: Any, profile: Profile) -> Any:
    return sharing.reveal(ctx, x)


def cases(impl: str, quick: bool) -> list[BenchCase]:
    """The benchmark cases: the issue's shapes for fast, small shapes for refimpl."""
    if impl == "fast" and not quick:
        matrix, vector = (128, 784, 128), (16384,)
    else:
        matrix, vector = (8, 16, 8), (256,)
    m, k, n = matrix
    return [
        BenchCase("matmul", (m, k), (k, n), matrix, _matmul),
        BenchCase("mul", vector, vector, vector, _mul),
        BenchCase("mul_ring", vector, vector, vector, _mul_ring),
        BenchCase("reveal", vector, vector, vector, _reveal),
    ]


def measure(impl: str, profile_name: str, case: BenchCase, repetitions: int) -> Benchmark:
    """Run ``case`` ``repetitions`` times; report the median time and one run's traffic."""
    profile = get_profile(profile_name)
    arithmetic: Any = fast.arithmetic if impl == "fast" else refimpl.arithmetic
    sharing: Any = fast.sharing if impl == "fast" else refimpl.sharing
    randomness: Any = fast.randomness if impl == "fast" else refimpl.randomness

    def program(ctx: PartyContext) -> list[tuple[float, int, int]]:
        x: Share = randomness.prss_share(ctx, profile.ring, case.left_shape)
        y: Share = randomness.prss_share(ctx, profile.ring, case.right_shape)
        samples = []
        for _ in range(repetitions):
            ctx.barrier()
            sent_before, clock_before = ctx.stats.bytes_sent, ctx.stats.rounds
            start = time.perf_counter()
            case.run(arithmetic, sharing, ctx, x, y, profile)
            ctx.barrier()
            elapsed = time.perf_counter() - start
            samples.append((elapsed, ctx.stats.bytes_sent - sent_before, clock_before))
        ctx.barrier()
        return samples

    result = run_parties(program, profile=profile, seed=b"benchmark")
    per_party = result.outputs
    seconds = statistics.median(sample[0] for sample in per_party[0])
    sent = [samples[-1][1] for samples in per_party]
    last_start = max(samples[-1][2] for samples in per_party)
    rounds = result.rounds - last_start
    return Benchmark(
        case.name,
        impl,
        profile_name,
        list(case.reported_shape),
        seconds,
        0.0,
        sent,
        rounds,
        [0, 0, 0],
        0,
        repetitions,
    )


def run_all(quick: bool, repetitions: int) -> list[Benchmark]:
    """Every case for fast on both profiles and for refimpl on small shapes."""
    results = []
    for impl in ("fast", "refimpl"):
        for profile_name in ("paper", "wide"):
            for case in cases(impl, quick):
                count = repetitions if impl == "fast" else max(1, repetitions // 5)
                results.append(measure(impl, profile_name, case, count))
    return results


def table(results: list[Benchmark]) -> str:
    """A readable table of the results."""
    header = (
        f"{'name':<9} {'impl':<8} {'profile':<7} {'shape':<14} {'online ms':>10} {'rounds':>6}"
        "  bytes sent per party"
    )
    lines = [header, "-" * len(header)]
    for row in results:
        shape = "x".join(str(d) for d in row.shape)
        lines.append(
            f"{row.name:<9} {row.impl:<8} {row.profile:<7} {shape:<14} {row.online_seconds * 1e3:>10.3f} "
            f"{row.rounds:>6}  {row.bytes_sent_per_party}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench", description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--repetitions", type=int, default=25, help="timed runs per fast entry (default 25)")
    parser.add_argument("--quick", action="store_true", help="small shapes everywhere (smoke test)")
    arguments = parser.parse_args(argv)
    keep_freed_memory()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: set OPENBLAS_NUM_THREADS=1 (nox -s bench does) for the 3-party figures", file=sys.stderr)
    results = run_all(arguments.quick, arguments.repetitions)
    print(table(results))
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump({"benchmarks": [asdict(row) for row in results]}, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
