"""Micro-benchmarks (`nox -s bench`): a readable table and, with ``--json PATH``, the JSON file.

Every entry runs 3 computing parties as threads in one process. For each repetition the
offline phase (the comparison material the operation consumes, §6) and then the operation
itself (online) run between barriers; the table reports medians and one repetition's traffic.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

import fast.arithmetic
import fast.comparison
import fast.detection
import fast.nonlinear
import fast.preprocessing
import fast.ring
import fast.sharing
import fast.training
import refimpl.arithmetic
import refimpl.comparison
import refimpl.detection
import refimpl.nonlinear
import refimpl.preprocessing
import refimpl.ring
import refimpl.sharing
import refimpl.training
from fast.tuning import keep_freed_memory, one_blas_thread_per_party
from refimpl.ring import Profile, get_profile
from refimpl.training import Architecture, TrainingConfig
from refimpl.transport import PartyContext, run_parties


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
class Modules:
    """One implementation's modules, by spec chapter."""

    ring: ModuleType
    sharing: ModuleType
    arithmetic: ModuleType
    preprocessing: ModuleType
    comparison: ModuleType
    nonlinear: ModuleType
    training: ModuleType
    detection: ModuleType


IMPLEMENTATIONS = {
    "refimpl": Modules(
        refimpl.ring,
        refimpl.sharing,
        refimpl.arithmetic,
        refimpl.preprocessing,
        refimpl.comparison,
        refimpl.nonlinear,
        refimpl.training,
        refimpl.detection,
    ),
    "fast": Modules(
        fast.ring,
        fast.sharing,
        fast.arithmetic,
        fast.preprocessing,
        fast.comparison,
        fast.nonlinear,
        fast.training,
        fast.detection,
    ),
}

Operation = Callable[[Modules, PartyContext, Any, Any, Any], Any]


@dataclass(frozen=True)
class BenchCase:
    """An operation on shared fixed-point operands of the given shapes (values in [-4, 4))."""

    name: str
    left_shape: tuple[int, ...]
    right_shape: tuple[int, ...]
    reported_shape: tuple[int, ...]
    comparisons: int
    run: Operation
    max_repetitions: int | None = None
    parties: int = 3
    """3 computing parties; 4 when the secondary server P3 takes part (it gets no operands)."""


def _f(profile: Profile) -> int:
    return profile.fractional_bits


CASES: dict[str, Callable[[tuple[int, int, int], tuple[int, ...], tuple[int, int]], BenchCase]] = {
    "matmul": lambda m, v, t: BenchCase(
        "matmul",
        (m[0], m[1]),
        (m[1], m[2]),
        m,
        0,
        lambda i, c, x, y, p: i.arithmetic.matmul_truncate(c, x, y, _f(c.profile)),
    ),
    "mul": lambda m, v, t: BenchCase(
        "mul", v, v, v, 0, lambda i, c, x, y, p: i.arithmetic.mul_truncate(c, x, y, _f(c.profile))
    ),
    "mul_ring": lambda m, v, t: BenchCase(
        "mul_ring", v, v, v, 0, lambda i, c, x, y, p: i.arithmetic.mul(c, x, y)
    ),
    "reveal": lambda m, v, t: BenchCase("reveal", v, v, v, 0, lambda i, c, x, y, p: i.sharing.reveal(c, x)),
    "relu": lambda m, v, t: BenchCase(
        "relu", v, v, v, v[0], lambda i, c, x, y, p: i.comparison.relu(c, x, p)
    ),
    "drelu": lambda m, v, t: BenchCase(
        "drelu", v, v, v, v[0], lambda i, c, x, y, p: i.comparison.drelu(c, x, p)
    ),
    "max": lambda m, v, t: BenchCase(
        "max",
        t,
        t,
        t,
        refimpl.comparison.comparisons_for_max(t),
        lambda i, c, x, y, p: i.comparison.maximum(c, x, p),
    ),
    "argmax": lambda m, v, t: BenchCase(
        "argmax",
        t,
        t,
        t,
        refimpl.comparison.comparisons_for_max(t),
        lambda i, c, x, y, p: i.comparison.argmax(c, x, p),
    ),
    "softmax": lambda m, v, t: BenchCase(
        "softmax",
        t,
        t,
        t,
        refimpl.nonlinear.comparisons_for_softmax(t),
        lambda i, c, x, y, p: i.nonlinear.softmax(c, x, p),
    ),
}


def architecture_for(features: int) -> Architecture:
    """§9.1 Network and parameters: the paper's network for 784 features, a small one otherwise."""
    return Architecture() if features == 784 else Architecture((features, 8, 8, 10))


@functools.lru_cache(maxsize=8)
def _initial_weights(impl: str, profile_name: str, features: int) -> Any:
    """The public initial model, computed once per implementation, profile and width."""
    modules = IMPLEMENTATIONS[impl]
    return modules.training.initial_weights(get_profile(profile_name), architecture_for(features), bytes(32))


def _model(modules: Modules, ctx: PartyContext, features: int) -> Any:
    impl = "fast" if modules is IMPLEMENTATIONS["fast"] else "refimpl"
    weights = _initial_weights(impl, ctx.profile.name, features)
    return modules.training.share_model(ctx, weights, architecture_for(features))


def training_cases(batch: tuple[int, int], evaluation: tuple[int, int]) -> list[BenchCase]:
    """§9.5 Training step: one iteration; and §9.6 Secure evaluation of ``evaluation[0]`` images."""
    architecture = architecture_for(batch[1])
    config = TrainingConfig(batch_size=batch[0])
    labels, rows = (batch[0], architecture.classes), (evaluation[0], architecture.classes)
    return [
        BenchCase(
            "train_iteration",
            batch,
            labels,
            batch,
            refimpl.training.comparisons_for_training_step(architecture, batch[0]),
            lambda i, c, x, y, p: i.training.train_step(c, _model(i, c, x.shape[1]), x, y, p, config),
            10,
        ),
        BenchCase(
            "inference",
            evaluation,
            rows,
            evaluation,
            refimpl.training.comparisons_for_evaluation(architecture, evaluation[0]),
            lambda i, c, x, y, p: i.training.correct_count(c, _model(i, c, x.shape[1]), x, y, p),
            3,
        ),
    ]


DETECTION_TARGET = 6


def _detect_step(features: int, modules: Modules, ctx: PartyContext, x: Any, pool: Any) -> Any:
    """§11.7: one mini-batch of the secure oracle; P3 deals a fixed mid-grey mask and pattern."""
    if ctx.party == refimpl.detection.ORACLE_HOLDER:
        half = refimpl.ring.encode_fixed(ctx.profile, [0.5] * features)
        values = half if modules is IMPLEMENTATIONS["refimpl"] else _as_array(half, ctx.profile, (features,))
        return modules.detection.secure_oracle_step(ctx, None, None, values, values, DETECTION_TARGET, None)
    model = _model(modules, ctx, features)
    return modules.detection.secure_oracle_step(ctx, model, x, None, None, DETECTION_TARGET, pool)


def detection_case(batch: tuple[int, int]) -> BenchCase:
    """§11.7 Secure gradient oracle: ``detect_step``, one mini-batch of Algorithm 1 with P3."""
    architecture = architecture_for(batch[1])
    return BenchCase(
        "detect_step",
        batch,
        batch,
        batch,
        refimpl.detection.comparisons_for_oracle_step(architecture, batch[0]),
        lambda i, c, x, y, p: _detect_step(batch[1], i, c, x, p),
        10,
        parties=4,
    )


def cases(impl: str, quick: bool) -> list[BenchCase]:
    """The benchmark cases: the issues' shapes for fast, small shapes for refimpl."""
    if impl == "fast" and not quick:
        matrix, vector, table = (128, 784, 128), (16384,), (128, 10)
        batch, evaluation = (128, 784), (10000, 784)
        detection = (32, 784)
    else:
        matrix, vector, table = (8, 16, 8), (256,), (4, 10)
        batch, evaluation, detection = (4, 16), (8, 16), (2, 16)
    return (
        [make(matrix, vector, table) for make in CASES.values()]
        + training_cases(batch, evaluation)
        + [detection_case(detection)]
    )


def _operand(modules: Modules, ctx: PartyContext, profile: Profile, shape: tuple[int, ...], seed: int) -> Any:
    """A sharing (input by P0) of fixed-point values in [-4, 4) drawn from a pinned generator."""
    count = refimpl.ring.element_count(shape)
    generator = random.Random(seed)
    values = None
    if ctx.party == 0:
        encoded = refimpl.ring.encode_fixed(profile, [generator.uniform(-4.0, 4.0) for _ in range(count)])
        values = encoded if modules is IMPLEMENTATIONS["refimpl"] else _as_array(encoded, profile, shape)
    return modules.sharing.share_input(ctx, profile.ring, 0, values, shape)


def _as_array(values: list[int], profile: Profile, shape: tuple[int, ...]) -> Any:
    return np.array(values, dtype=fast.ring.dtype_of(profile.ring)).reshape(shape)


Samples = list[tuple[float, int, int, float, int, int]]
"""Per repetition: online seconds, bytes and starting clock, then the same for the offline phase."""


def timed_program(
    impl: str, profile_name: str, case: BenchCase, repetitions: int
) -> Callable[[PartyContext], Samples]:
    """The SPMD program that :func:`measure` runs: operands, then offline and online phases timed."""
    profile = get_profile(profile_name)
    modules = IMPLEMENTATIONS[impl]

    def program(ctx: PartyContext) -> Samples:
        server = ctx.is_computing_party
        x = _operand(modules, ctx, profile, case.left_shape, 1) if server else None
        y = _operand(modules, ctx, profile, case.right_shape, 2) if server else None
        samples = []
        for _ in range(repetitions):
            ctx.barrier()
            sent, clock, start = ctx.stats.bytes_sent, ctx.stats.rounds, time.perf_counter()
            pool = (
                modules.preprocessing.generate_comparison_pool(ctx, profile, case.comparisons)
                if case.comparisons and server
                else None
            )
            ctx.barrier()
            offline = (time.perf_counter() - start, ctx.stats.bytes_sent - sent, clock)
            sent, clock, start = ctx.stats.bytes_sent, ctx.stats.rounds, time.perf_counter()
            case.run(modules, ctx, x, y, pool)
            ctx.barrier()
            samples.append((time.perf_counter() - start, ctx.stats.bytes_sent - sent, clock, *offline))
        ctx.barrier()
        return samples

    return program


def measure(impl: str, profile_name: str, case: BenchCase, repetitions: int) -> Benchmark:
    """Run ``case`` ``repetitions`` times (offline, then online); report medians and one run's traffic."""
    program = timed_program(impl, profile_name, case, repetitions)
    result = run_parties(program, parties=case.parties, profile=get_profile(profile_name), seed=b"benchmark")
    return summarise(impl, profile_name, case, repetitions, result.outputs, result.rounds)


def summarise(
    impl: str, profile_name: str, case: BenchCase, repetitions: int, per_party: list[Samples], rounds: int
) -> Benchmark:
    """A :class:`Benchmark` row from every party's samples and the run's rounds."""
    last = [samples[-1] for samples in per_party]
    online_start = max(sample[2] for sample in last)
    offline_start = max(sample[5] for sample in last)
    return Benchmark(
        name=case.name,
        impl=impl,
        profile=profile_name,
        shape=list(case.reported_shape),
        online_seconds=statistics.median(sample[0] for sample in per_party[0]),
        offline_seconds=statistics.median(sample[3] for sample in per_party[0]),
        bytes_sent_per_party=[sample[1] for sample in last],
        rounds=rounds - online_start,
        offline_bytes_sent_per_party=[sample[4] for sample in last],
        offline_rounds=online_start - offline_start,
        repetitions=repetitions,
    )


def run_all(quick: bool, repetitions: int, names: set[str] | None = None) -> list[Benchmark]:
    """Every case for fast on both profiles and for refimpl on small shapes."""
    results = []
    for impl in ("fast", "refimpl"):
        for profile_name in ("paper", "wide"):
            for case in cases(impl, quick):
                if names and case.name not in names:
                    continue
                count = repetitions if impl == "fast" else max(1, repetitions // 5)
                count = min(count, case.max_repetitions or count)
                results.append(measure(impl, profile_name, case, count))
    return results


def table(results: list[Benchmark]) -> str:
    """A readable table of the results."""
    header = (
        f"{'name':<15} {'impl':<8} {'profile':<7} {'shape':<12} {'online ms':>10} {'rounds':>6}"
        f" {'offline ms':>10} {'off rnds':>8}  bytes sent per party (online | offline)"
    )
    lines = [header, "-" * len(header)]
    for row in results:
        shape = "x".join(str(d) for d in row.shape)
        lines.append(
            f"{row.name:<15} {row.impl:<8} {row.profile:<7} {shape:<12} {row.online_seconds * 1e3:>10.3f} "
            f"{row.rounds:>6} {row.offline_seconds * 1e3:>10.3f} {row.offline_rounds:>8}  "
            f"{row.bytes_sent_per_party} | {row.offline_bytes_sent_per_party}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench", description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--repetitions", type=int, default=25, help="timed runs per fast entry (default 25)")
    parser.add_argument("--quick", action="store_true", help="small shapes everywhere (smoke test)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these entries (repeatable)")
    arguments = parser.parse_args(argv)
    keep_freed_memory()
    with one_blas_thread_per_party():
        results = run_all(
            arguments.quick, arguments.repetitions, set(arguments.only) if arguments.only else None
        )
    print(table(results))
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump({"benchmarks": [asdict(row) for row in results]}, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
