"""The ``mpbadnet`` command.

``mpbadnet demo`` runs a short demonstration of secure computation: a data holder
secret-shares fixed-point matrices to P0, P1 and P2, which multiply them (elementwise and as
matrices, with truncation), apply ReLU and a softmax over ten columns after a dealer-free
offline phase, and reveal the results; it prints what was computed, the error against float64,
and what each phase cost per party.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fast import arithmetic, comparison, deploy_cli, nonlinear, preprocessing, sharing
from fast.plaintext import softmax_rows
from fast.ring import Share, decode_fixed, encode_fixed, get_profile
from fast.tuning import keep_freed_memory, one_blas_thread_per_party
from refimpl.ring import PROFILES, Profile
from refimpl.transport import PartyContext, run_parties

DATA_HOLDER = 3
SOFTMAX_COLUMNS = 10
PHASES = ("multiplications", "offline phase", "relu and softmax")
"""The measured phases; each is bracketed by two barriers that every party, the data holder too, joins."""
Matrix = NDArray[np.float64]


@dataclass
class Cost:
    """What one phase cost one computing party."""

    seconds: float
    bytes_sent: int
    rounds: int


@dataclass
class DemoOutcome:
    """What one computing party revealed, and what each phase cost it."""

    revealed: dict[str, Matrix] = field(default_factory=dict)
    costs: dict[str, Cost] = field(default_factory=dict)


class Meter:
    """Measures a phase between two barriers: time, bytes this party sent, rounds."""

    def __init__(self, ctx: PartyContext, outcome: DemoOutcome, phase: str) -> None:
        self.ctx, self.outcome, self.phase = ctx, outcome, phase

    def __enter__(self) -> None:
        self.ctx.barrier()
        self.start = (time.perf_counter(), self.ctx.stats.bytes_sent, self.ctx.stats.rounds)

    def __exit__(self, *_: object) -> None:
        self.ctx.barrier()
        seconds, sent, rounds = self.start
        stats = self.ctx.stats
        cost = Cost(time.perf_counter() - seconds, stats.bytes_sent - sent, stats.rounds - rounds)
        self.outcome.costs[self.phase] = cost


def demo_inputs(rows: int, inner: int, columns: int, seed: int) -> tuple[Matrix, Matrix, Matrix]:
    """The data holder's plain inputs: values uniform in [-2, 2)."""
    generator = np.random.default_rng(seed)
    left = generator.uniform(-2.0, 2.0, (rows, inner))
    other = generator.uniform(-2.0, 2.0, (rows, inner))
    right = generator.uniform(-2.0, 2.0, (inner, columns))
    return left, other, right


def _first_columns(x: Share, count: int) -> Share:
    rows, columns = x.shape
    indices = [row * columns + column for row in range(rows) for column in range(count)]
    return sharing.gather(x, indices, (rows, count))


def demo_program(
    profile: Profile, inputs: tuple[Matrix, Matrix, Matrix]
) -> Callable[[PartyContext], DemoOutcome | None]:
    """The SPMD program: the data holder deals; P0..P2 compute, measure and reveal."""
    ring, f = profile.ring, profile.fractional_bits
    shapes = [tuple(array.shape) for array in inputs]
    rows, columns = inputs[0].shape[0], inputs[2].shape[1]
    logits_shape = (rows, min(SOFTMAX_COLUMNS, columns))

    def program(ctx: PartyContext) -> DemoOutcome | None:
        if ctx.party == DATA_HOLDER:
            for array, shape in zip(inputs, shapes, strict=True):
                sharing.deal_input(ctx, ring, encode_fixed(profile, array), shape)
            for _ in range(2 * len(PHASES)):
                ctx.barrier()
            return None
        left, other, right = (sharing.receive_input(ctx, ring, DATA_HOLDER, shape) for shape in shapes)
        outcome = DemoOutcome()
        multiplications, offline, nonlinear_phase = PHASES
        with Meter(ctx, outcome, multiplications):
            elementwise = arithmetic.mul_truncate(ctx, left, other, f)
            product = arithmetic.matmul_truncate(ctx, left, right, f)
        with Meter(ctx, outcome, offline):
            needed = rows * columns + nonlinear.comparisons_for_softmax(logits_shape)
            pool = preprocessing.generate_comparison_pool(ctx, profile, needed)
        with Meter(ctx, outcome, nonlinear_phase):
            rectified = comparison.relu(ctx, product, pool)
            probabilities = nonlinear.softmax(ctx, _first_columns(product, logits_shape[1]), pool)
        results = {
            "elementwise": elementwise,
            "product": product,
            "relu": rectified,
            "softmax": probabilities,
        }
        for name, share in results.items():
            outcome.revealed[name] = decode_fixed(profile, sharing.reveal(ctx, share))
        return outcome

    return program


def product_error_bound(profile: Profile, terms: int, magnitude: float) -> float:
    """Encoding error 2^-(f+1) per operand over ``terms`` products, plus one truncation unit."""
    half_unit = 2.0 ** -(profile.fractional_bits + 1)
    return terms * (magnitude * half_unit + half_unit**2) + 2 * half_unit


def expected_truncation_failures(profile: Profile, exact: Matrix) -> float:
    """Sum over elements of |z| / 2^l with z the product at 2f fractional bits (spec 5.3)."""
    scale = 2.0 ** (2 * profile.fractional_bits - profile.ring_bits)
    return float(np.sum(np.abs(exact)) * scale)


def run_demo(profile_name: str, rows: int, inner: int, columns: int, seed: int | None) -> int:
    """Run the demonstration and print its results; 0 when the results are within their bounds."""
    keep_freed_memory()
    profile = get_profile(profile_name)
    inputs = demo_inputs(rows, inner, columns, 0 if seed is None else seed)
    key_seed = None if seed is None else seed.to_bytes(8, "little")
    with one_blas_thread_per_party():
        result = run_parties(demo_program(profile, inputs), parties=4, profile=profile, seed=key_seed)
    outcomes = [outcome for outcome in result.outputs if outcome is not None]
    revealed = outcomes[0].revealed
    left, other, right = inputs
    exact_product = left @ right
    print(
        f"MP-BADNet secure computation demo, profile {profile.name} (l = {profile.ring_bits}, "
        f"f = {profile.fractional_bits}); keys: {'from the OS' if seed is None else f'pinned by seed {seed}'}"
    )
    print(
        f"a data holder shared X ({rows}x{inner}), X' ({rows}x{inner}) and Y ({inner}x{columns})"
        " with P0, P1, P2"
    )
    plausible = True
    products = [
        (
            "X * X' (elementwise)",
            revealed["elementwise"],
            left * other,
            1,
            np.abs(left).max() + np.abs(other).max(),
        ),
        (
            "X @ Y (matrix product)",
            revealed["product"],
            exact_product,
            inner,
            np.abs(left).max() + np.abs(right).max(),
        ),
    ]
    for name, secure, exact, terms, magnitude in products:
        bound = product_error_bound(profile, terms, float(magnitude))
        error = np.abs(secure - exact)
        failures = int(np.count_nonzero(error > bound))
        expected = expected_truncation_failures(profile, exact)
        plausible &= failures <= expected + 6.0 * expected**0.5 + 1.0
        print(f"{name}: revealed {np.round(secure.ravel()[:3], 4)}, float64 {np.round(exact.ravel()[:3], 4)}")
        print(
            f"  max |error| within the bound: {float(np.max(np.where(error > bound, 0.0, error))):.3g} "
            f"(bound {bound:.3g}); truncation failures: {failures} of {error.size} "
            f"(expected {expected:.3g} at |z| / 2^l per element, spec 5.3)"
        )
    relu_error = float(np.max(np.abs(revealed["relu"] - np.maximum(revealed["product"], 0.0))))
    plausible &= relu_error == 0.0
    print(
        f"ReLU(X @ Y): {np.count_nonzero(revealed['relu'])} positive of {revealed['relu'].size}; "
        f"|ReLU(revealed) - revealed ReLU| = {relu_error} (exact)"
    )
    width = revealed["softmax"].shape[1]
    softmax_error = float(np.max(np.abs(revealed["softmax"] - softmax_rows(revealed["product"][:, :width]))))
    print(
        f"softmax over the first {width} columns: max |error| per probability {softmax_error:.3g} (spec 8.3)"
    )
    for phase, cost in outcomes[0].costs.items():
        per_party = [outcome.costs[phase].bytes_sent for outcome in outcomes]
        print(
            f"cost of {phase}: {cost.seconds * 1e3:.1f} ms, {cost.rounds} rounds, "
            f"bytes sent per party {per_party}"
        )
    print(
        f"the data holder uploaded {result.stats[DATA_HOLDER].bytes_sent} bytes; "
        "no computing party saw X, X' or Y in the clear"
    )
    agree = all(np.array_equal(o.revealed["product"], revealed["product"]) for o in outcomes)
    return 0 if agree and plausible else 1


PINNED_KEYS_WARNING = (
    "warning: --seed pins every party's keys: any party can compute the keys it must not hold "
    "and they repeat across runs; for tests only (without --seed, keys come from the OS). "
    "Deployed parties (`mpbadnet party`, `mpbadnet holder`) refuse it without --insecure-testing."
)


def warn_pinned_keys(seed: int | None) -> None:
    """§12.6 Deployment over TLS: the in-process commands say so on stderr when ``--seed`` pins the keys."""
    if seed is not None:
        print(PINNED_KEYS_WARNING, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mpbadnet`` console script."""
    parser = argparse.ArgumentParser(
        prog="mpbadnet", description="MP-BADNet: privacy-preserving backdoor detection"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="a short demonstration of secure computation and its cost")
    demo.add_argument("--profile", choices=sorted(PROFILES), default="wide")
    demo.add_argument("--rows", type=int, default=128)
    demo.add_argument("--inner", type=int, default=784)
    demo.add_argument("--columns", type=int, default=128)
    demo.add_argument(
        "--seed", type=int, default=None, help="pin inputs and keys (default: keys from the OS)"
    )
    add_train_parser(commands)
    add_detect_parser(commands)
    add_table1_parser(commands)
    deploy_cli.register(commands)
    arguments = parser.parse_args(argv)
    if hasattr(arguments, "handler"):
        return int(arguments.handler(arguments))
    warn_pinned_keys(arguments.seed)
    if arguments.command == "train":
        return run_train(arguments)
    if arguments.command == "detect":
        return run_detect(arguments)
    if arguments.command == "table1":
        return run_table1(arguments)
    return run_demo(arguments.profile, arguments.rows, arguments.inner, arguments.columns, arguments.seed)


def add_train_parser(commands: Any) -> None:
    """The options of ``mpbadnet train``."""
    train = commands.add_parser("train", help="share MNIST from data holders, train under MPC, evaluate")
    train.add_argument("--profile", choices=sorted(PROFILES), default="wide")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--learning-rate-log2", type=int, default=2, help="eta = 2^-a (default a = 2)")
    train.add_argument("--holders", type=int, default=5, help="number of data holders")
    train.add_argument("--malicious", type=int, nargs="*", default=[0], help="indices of poisoning holders")
    train.add_argument("--target", type=int, default=6, help="the backdoor's target label")
    train.add_argument(
        "--poison-rate", type=float, default=0.10, help="fraction of the training set poisoned"
    )
    train.add_argument("--poison-seed", type=int, default=0, help="keys the choice of poisoned images")
    train.add_argument(
        "--clean", action="store_true", help="no poisoning (the attack set is still evaluated)"
    )
    train.add_argument(
        "--public-seed", default="00" * 32, help="64 hex digits: initial model and batch order"
    )
    train.add_argument("--train-records", type=int, default=None, help="use the first N training images")
    train.add_argument("--test-records", type=int, default=None, help="use the first N test images")
    train.add_argument(
        "--mnist-dir", default=None, help="MNIST folder (else $MPBADNET_MNIST_DIR or the cache)"
    )
    train.add_argument("--output", default="mpbadnet-model", help="folder for the model shares and summary")
    train.add_argument("--seed", type=int, default=None, help="pin keys (tests); default: keys from the OS")
    train.add_argument("--quiet", action="store_true")
    train.add_argument("--plaintext", action="store_true", help="the float64 baseline in the clear, no MPC")


def run_train(arguments: Any) -> int:
    """``mpbadnet train``: run the job, write the summary next to the model shares, print it."""
    from fast.pipeline import job_from_arguments, run_training, write_summary
    from fast.plaintext import run_plaintext

    job = job_from_arguments(arguments)
    if job.profile.ring_bits < 64:
        print(
            f"warning: the {job.profile.name} profile truncates probabilistically in a "
            f"{job.profile.ring_bits}-bit ring; about |z| / 2^l of the truncated elements fail, "
            "so training is expected to break (reported for comparison; spec 2.4)",
            file=sys.stderr,
        )
    content = run_plaintext(job) if arguments.plaintext else run_training(job)
    name = "plaintext-summary.json" if arguments.plaintext else "summary.json"
    path = os.path.join(arguments.output, name)
    write_summary(path, content)
    print(json.dumps(content, indent=2, sort_keys=True))
    print(f"summary written to {path}")
    return 0


def detection_options(command: Any, output: str, model_argument: bool = True) -> None:
    """The options ``mpbadnet detect``, ``mpbadnet table1`` and the deployed detect job share (spec 11.3)."""
    from fast.detection import DetectionSettings

    defaults = DetectionSettings()
    if model_argument:
        command.add_argument("model", help="folder with model-P0/1/2.mpshares (or, with --plaintext, a .npz)")
    command.add_argument("--labels", default=None, help="comma-separated candidate labels (default: all)")
    command.add_argument("--images", type=int, default=None, help="use the first N test images (default all)")
    command.add_argument("--batches-per-step", type=int, default=defaults.batches_per_step)
    command.add_argument("--max-steps", type=int, default=defaults.max_steps)
    command.add_argument("--patience", type=int, default=defaults.patience)
    command.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    command.add_argument("--detection-seed", type=int, default=defaults.seed, help="P3's random choices")
    command.add_argument(
        "--mnist-dir", default=None, help="MNIST folder (else $MPBADNET_MNIST_DIR or the cache)"
    )
    command.add_argument("--output", default=output, help="folder for the report and figures")
    command.add_argument("--seed", type=int, default=None, help="pin keys (tests); default: keys from the OS")
    command.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    command.add_argument("--quiet", action="store_true")


def add_detect_parser(commands: Any) -> None:
    """The options of ``mpbadnet detect``."""
    detect = commands.add_parser(
        "detect", help="Neural Cleanse on the secret model: reverse triggers per label, flag outliers"
    )
    detection_options(detect, "mpbadnet-detection")
    detect.add_argument(
        "--plaintext",
        action="store_true",
        help="the baseline in the clear: a float64 .npz model, or model shares decoded (all three needed)",
    )


def add_table1_parser(commands: Any) -> None:
    """The options of ``mpbadnet table1`` (the paper's Table 1 grid; spec 11.10)."""
    table1 = commands.add_parser(
        "table1", help="detection for patience 5, 7 and learning rates 0.1, 0.01, 0.001, plaintext and secure"
    )
    detection_options(table1, "mpbadnet-table1")
    table1.add_argument("--modes", default="plaintext,secure", help="comma-separated: plaintext, secure")


def run_table1(arguments: Any) -> int:
    """``mpbadnet table1``: every cell of the grid; prints and writes the table."""
    from fast.detection_grid import MODES, markdown, run_grid
    from fast.detection_job import job_from_arguments

    modes = tuple(arguments.modes.split(","))
    if not modes or any(mode not in MODES for mode in modes):
        raise ValueError(
            f"--modes takes a comma-separated subset of {', '.join(MODES)}, got {arguments.modes!r}"
        )
    cells = run_grid(job_from_arguments(arguments), modes)
    print(markdown(cells))
    print(f"table written to {os.path.join(arguments.output, 'table1.md')}")
    return 0


def run_detect(arguments: Any) -> int:
    """``mpbadnet detect``: run the job, write the report and figures, print the table."""
    from fast.detection_job import job_from_arguments, print_table, run_detection, run_plaintext_detection

    job = job_from_arguments(arguments)
    report = run_plaintext_detection(job) if arguments.plaintext else run_detection(job)
    print_table(report)
    print(f"report written to {os.path.join(job.output, 'detection-report.json')}")
    return 0
