"""Deployment benchmark (`nox -s bench`): ``train_iteration`` in one process and across three.

The same timed program as :mod:`conformance.bench` runs once with the three computing parties
as threads of one process (the in-process runtime, §12.5) and once with each party its own
process, connected over loopback mutual TLS 1.3 (§12.6), and the two rows are printed one
above the other. Across processes the benchmark barrier is a no-op, so each party times its
own phases; P0's medians are reported, as in process. Loopback has no network latency: the
difference is the cost of TLS, framing, sockets and separate processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.bench import BenchCase, Benchmark, Samples, cases, measure, summarise, table, timed_program
from conformance.loopback import free_ports
from fast.deployment import generate_cluster, run_party_over_tls
from fast.tuning import keep_freed_memory, one_blas_thread_per_party

NAME = "train_iteration"
PROFILE = "wide"
RUN_ID = b"deployment-bench"
PARTIES = 3


def _case(quick: bool) -> BenchCase:
    return next(case for case in cases("fast", quick) if case.name == NAME)


def _party(party: int, config: str, quick: bool, repetitions: int, results: Any) -> None:
    try:
        keep_freed_memory()
        with one_blas_thread_per_party():
            program = timed_program("fast", PROFILE, _case(quick), repetitions)
            run = run_party_over_tls(program, party, config, seed=b"benchmark", run_id=RUN_ID)
        results.put((party, run.output, run.stats.rounds, ""))
    except BaseException as error:
        results.put((party, None, 0, f"{type(error).__name__}: {error}"))


def measure_over_tls(quick: bool, repetitions: int) -> Benchmark:
    """``train_iteration`` with P0, P1, P2 as three processes over loopback TLS."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        addresses = [f"127.0.0.1:{port}" for port in free_ports(PARTIES)]
        config = generate_cluster(Path(directory), addresses, profile=PROFILE, timeout_seconds=600)
        processes = [
            context.Process(target=_party, args=(party, str(config), quick, repetitions, results))
            for party in range(PARTIES)
        ]
        for process in processes:
            process.start()
        collected = {}
        for _ in range(PARTIES):
            party, samples, rounds, error = results.get(timeout=1800)
            collected[party] = (samples, rounds, error)
        for process in processes:
            process.join()
    errors = [error for _, _, error in collected.values() if error]
    if errors:
        raise RuntimeError(f"the deployment benchmark failed: {errors}")
    per_party: list[Samples] = [collected[party][0] for party in range(PARTIES)]
    rounds = max(collected[party][1] for party in range(PARTIES))
    return summarise("fast", PROFILE, _case(quick), repetitions, per_party, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bench_deployment", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=10, help="timed runs per row (default 10)")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    arguments = parser.parse_args(argv)
    keep_freed_memory()
    with one_blas_thread_per_party():
        in_process = measure("fast", PROFILE, _case(arguments.quick), arguments.repetitions)
    over_tls = measure_over_tls(arguments.quick, arguments.repetitions)
    rows = table([in_process, replace(over_tls, impl="fast-tls")]).splitlines()
    print(f"{NAME}, profile {PROFILE}: first row in one process (threads), second across 3 processes over")
    print(
        f"loopback mutual TLS 1.3 ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end)"
    )
    print("\n".join(rows))
    slower = over_tls.online_seconds / in_process.online_seconds
    same = (
        over_tls.bytes_sent_per_party == in_process.bytes_sent_per_party
        and over_tls.rounds == in_process.rounds
    )
    print(f"online: {slower:.2f} x the in-process time; bytes and rounds identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
