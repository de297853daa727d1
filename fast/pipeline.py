"""The training job behind ``mpbadnet train``: data holders share MNIST, P0-P2 train and evaluate.

Parties 0-2 are the computing servers; parties 3 .. 3 + n - 1 are the data holders, and the
last party is the evaluator, who shares the clean and the stamped test sets. Only P0 prints
progress; every server writes its own model-share file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fast import preprocessing, training
from fast.backdoor import PoisonConfig, partition, poison_training_set, poisoned_test_set
from fast.mnist import MnistData, load_mnist
from fast.ring import Share, encode_fixed
from fast.sharing import deal_input, gather, receive_input
from fast.tuning import keep_freed_memory, one_blas_thread_per_party
from refimpl.ring import Profile, get_profile
from refimpl.training import Architecture, TrainingConfig
from refimpl.transport import COMPUTING_PARTIES, PartyContext, run_parties

FIRST_HOLDER = COMPUTING_PARTIES
EVALUATION_CHUNK = 1000
Images = NDArray[np.uint8]
Labels = NDArray[np.uint8]


@dataclass(frozen=True)
class TrainJob:
    """Everything ``mpbadnet train`` runs: data, poisoning, network, schedule and outputs."""

    profile: Profile
    architecture: Architecture = field(default_factory=Architecture)
    config: TrainingConfig = field(default_factory=TrainingConfig)
    poison: PoisonConfig = field(default_factory=lambda: PoisonConfig(seed=0))
    poisoned: bool = True
    holders: int = 5
    train_records: int | None = None
    test_records: int | None = None
    output: str = "mpbadnet-model"
    mnist_directory: str | None = None
    seed: bytes | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.poison.holders != self.holders:
            raise ValueError(
                f"the poisoning assumes {self.poison.holders} data holders, the job has {self.holders}"
            )


@dataclass
class PhaseTotals:
    """Per-party sums over all iterations of one phase."""

    seconds: float = 0.0
    bytes_sent: int = 0
    rounds: int = 0


@dataclass
class ServerReport:
    """What one server measured and opened."""

    party: int
    offline: PhaseTotals = field(default_factory=PhaseTotals)
    online: PhaseTotals = field(default_factory=PhaseTotals)
    evaluation: PhaseTotals = field(default_factory=PhaseTotals)
    iterations: int = 0
    max_online_rounds: int = 0
    accuracy: float = 0.0
    attack_success: float | None = None
    model_file: str = ""


def one_hot(profile: Profile, labels: Labels, classes: int) -> NDArray[np.uint64]:
    """Labels as one-hot fixed-point rows (2^f at the label)."""
    rows = np.zeros((labels.size, classes), dtype=np.float64)
    rows[np.arange(labels.size), labels.astype(np.intp)] = 1.0
    return encode_fixed(profile, rows)


def pixels(profile: Profile, images: Images) -> NDArray[np.uint64]:
    """Images as fixed point in [0, 1]: round(p / 255 * 2^f)."""
    return encode_fixed(profile, images.astype(np.float64) / 255.0)


def holder_datasets(job: TrainJob, data: MnistData) -> list[tuple[Images, Labels]]:
    """Each data holder's slice of the training set, poisoned at the malicious ones."""
    count = job.train_records or data.train_labels.size
    images, labels = data.train_images[:count], data.train_labels[:count]
    if job.poisoned:
        poisoned = poison_training_set(images, labels, job.poison)
        images, labels = poisoned.images, poisoned.labels
    return [(images[start:stop], labels[start:stop]) for start, stop in partition(count, job.holders)]


def evaluation_sets(job: TrainJob, data: MnistData) -> list[tuple[Images, Labels]]:
    """The clean test set and the stamped test set of non-target images (clean runs too: the baseline)."""
    count = job.test_records or data.test_labels.size
    clean = (data.test_images[:count], data.test_labels[:count])
    stamped = poisoned_test_set(clean[0], clean[1], job.poison)
    return [clean, (stamped.images, stamped.labels)]


def deal_records(
    ctx: PartyContext, profile: Profile, sets: list[tuple[Images, Labels]], classes: int
) -> None:
    """A data holder's whole job: share every (images, labels) set, then leave."""
    for images, labels in sets:
        deal_input(ctx, profile.ring, pixels(profile, images), images.shape)
        deal_input(ctx, profile.ring, one_hot(profile, labels, classes), (labels.size, classes))


def receive_records(
    ctx: PartyContext, holder: int, shapes: list[tuple[int, int]], classes: int
) -> list[Share]:
    """A server's side of :func:`deal_records`: images then labels for every set."""
    shares = []
    for rows, features in shapes:
        shares.append(receive_input(ctx, ctx.ring, holder, (rows, features)))
        shares.append(receive_input(ctx, ctx.ring, holder, (rows, classes)))
    return shares


def stack_rows(parts: list[Share]) -> Share:
    """Sharings of matrices with equal widths stacked vertically."""
    first = np.concatenate([part.first for part in parts])
    second = np.concatenate([part.second for part in parts])
    return Share(parts[0].ring, tuple(first.shape), first, second)


def rows_of(x: Share, rows: list[int] | NDArray[np.intp]) -> Share:
    """The given rows of a matrix sharing."""
    width = x.shape[1]
    positions = (np.asarray(rows, dtype=np.intp)[:, None] * width + np.arange(width)).reshape(-1)
    return gather(x, positions, (len(rows), width))


def bar(done: int, total: int, width: int = 24) -> str:
    """A text progress bar such as [#########...............]."""
    filled = width * done // max(total, 1)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """One status line on stderr, rewritten in place (P0 only)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def due(self, done: int, total: int) -> bool:
        """Every step on a terminal; ten times per epoch in a log file."""
        return sys.stderr.isatty() or done == total or done % max(total // 10, 1) == 0

    def show(self, text: str, final: bool = False) -> None:
        if self.quiet:
            return
        end = "\n" if final or not sys.stderr.isatty() else ""
        sys.stderr.write(("\r" if sys.stderr.isatty() else "") + text + end)
        sys.stderr.flush()


def measured(ctx: PartyContext, totals: PhaseTotals, action: Any) -> Any:
    """Run ``action()`` and add its time, bytes and rounds to ``totals``."""
    start, sent, clock = time.perf_counter(), ctx.stats.bytes_sent, ctx.clock
    result = action()
    totals.seconds += time.perf_counter() - start
    totals.bytes_sent += ctx.stats.bytes_sent - sent
    totals.rounds += ctx.clock - clock
    return result


def train_epochs(ctx: PartyContext, job: TrainJob, x: Share, y: Share, report: ServerReport) -> list[Share]:
    """§9.5 Training step, repeated over the public batches of every epoch."""
    profile, config, architecture = job.profile, job.config, job.architecture
    model = training.share_model(
        ctx, training.initial_weights(profile, architecture, config.public_seed), architecture
    )
    material = training.comparisons_for_training_step(architecture, config.batch_size)
    progress = Progress(job.quiet or ctx.party != 0)
    for epoch in range(config.epochs):
        batches = training.epoch_order(config, epoch, x.shape[0])
        for number, batch in enumerate(batches, start=1):
            pool = measured(
                ctx, report.offline, lambda: preprocessing.generate_comparison_pool(ctx, profile, material)
            )
            clock = ctx.clock
            model = measured(
                ctx,
                report.online,
                lambda batch=batch, pool=pool, model=model: training.train_step(
                    ctx, model, rows_of(x, batch), rows_of(y, batch), pool, config
                ),
            )
            report.max_online_rounds = max(report.max_online_rounds, ctx.clock - clock)
            report.iterations += 1
            elapsed = time.perf_counter() - progress.start
            if not progress.due(number, len(batches)):
                continue
            progress.show(
                f"epoch {epoch + 1}/{config.epochs} {bar(number, len(batches))} "
                f"iteration {number}/{len(batches)}  "
                f"{report.iterations / elapsed:.2f} it/s  "
                f"{(report.online.bytes_sent + report.offline.bytes_sent) / 1e9:.2f} GB sent by P0"
            )
        progress.show(
            f"epoch {epoch + 1}/{config.epochs} done, {time.perf_counter() - progress.start:.0f} s", True
        )
    return model


def evaluate(
    ctx: PartyContext, job: TrainJob, model: list[Share], x: Share, y: Share, totals: PhaseTotals
) -> float:
    """§9.6 Secure evaluation, in chunks; only the count of correct records is opened."""
    correct, rows = 0, x.shape[0]
    for start in range(0, rows, EVALUATION_CHUNK):
        chunk = list(range(start, min(rows, start + EVALUATION_CHUNK)))
        need = training.comparisons_for_evaluation(job.architecture, len(chunk))
        pool = measured(
            ctx, totals, lambda need=need: preprocessing.generate_comparison_pool(ctx, job.profile, need)
        )
        correct += measured(
            ctx,
            totals,
            lambda chunk=chunk, pool=pool: training.correct_count(
                ctx, model, rows_of(x, chunk), rows_of(y, chunk), pool
            ),
        )
    return correct / rows


def server(
    ctx: PartyContext, job: TrainJob, holder_shapes: list[list[tuple[int, int]]], run_id: bytes
) -> ServerReport:
    """P0, P1 or P2: receive the data, train, evaluate, write the model shares."""
    classes = job.architecture.classes
    received = [
        receive_records(ctx, FIRST_HOLDER + h, shapes, classes) for h, shapes in enumerate(holder_shapes)
    ]
    training_parts, evaluation_parts = received[:-1], received[-1]
    x = stack_rows([parts[0] for parts in training_parts])
    y = stack_rows([parts[1] for parts in training_parts])
    report = ServerReport(ctx.party)
    with one_blas_thread_per_party():
        model = train_epochs(ctx, job, x, y, report)
        report.accuracy = evaluate(
            ctx, job, model, evaluation_parts[0], evaluation_parts[1], report.evaluation
        )
        if len(evaluation_parts) > 2:
            report.attack_success = evaluate(
                ctx, job, model, evaluation_parts[2], evaluation_parts[3], report.evaluation
            )
    report.model_file = training.save_model_shares(
        os.path.join(job.output, f"model-P{ctx.party}.mpshares"), ctx, model, job.architecture, run_id
    )
    return report


def training_roles(job: TrainJob) -> tuple[str, ...]:
    """The cluster role of each party number: P0-P2, the data holders H1..Hn, the evaluator EVAL."""
    return (
        *(f"P{index}" for index in range(COMPUTING_PARTIES)),
        *(f"H{index + 1}" for index in range(job.holders)),
        "EVAL",
    )


def holder_sets(job: TrainJob, data: MnistData, index: int) -> list[tuple[Images, Labels]]:
    """What data-holding party ``index`` (0 .. holders - 1, then the evaluator) shares."""
    if index < job.holders:
        return [holder_datasets(job, data)[index]]
    return evaluation_sets(job, data)


def set_shapes(sets: list[tuple[Images, Labels]]) -> list[tuple[int, int]]:
    """The public (records, features) shape of each set a data-holding party shares."""
    return [(int(images.shape[0]), int(images.shape[1])) for images, _ in sets]


def training_program(
    job: TrainJob,
    run_id: bytes,
    sets_of: Callable[[int], list[tuple[Images, Labels]]],
    shapes_of: Callable[[PartyContext], list[list[tuple[int, int]]]],
) -> Callable[[PartyContext], ServerReport | None]:
    """The SPMD program of the training job, for the in-process runtime and for deployment alike.

    ``sets_of(index)`` gives data-holding party ``index``'s sets (only data holders call it);
    ``shapes_of(ctx)`` gives a server every data-holding party's public set shapes.
    """
    classes = job.architecture.classes

    def program(ctx: PartyContext) -> ServerReport | None:
        if ctx.party < COMPUTING_PARTIES:
            return server(ctx, job, shapes_of(ctx), run_id)
        deal_records(ctx, job.profile, sets_of(ctx.party - FIRST_HOLDER), classes)
        return None

    return program


def training_run_id(job: TrainJob) -> bytes:
    """16 bytes from the OS, or derived from ``job.seed`` when the keys are pinned (§9.8)."""
    return os.urandom(16) if job.seed is None else training.public_key(job.seed, "run")[:16]


def run_training(job: TrainJob) -> dict[str, Any]:
    """Run the whole job in one process (parties as threads) and return the JSON summary."""
    keep_freed_memory()
    data = load_mnist(job.mnist_directory)
    sets = [[part] for part in holder_datasets(job, data)] + [evaluation_sets(job, data)]
    shapes = [set_shapes(each) for each in sets]
    run_id = training_run_id(job)
    os.makedirs(job.output, exist_ok=True)
    started = time.perf_counter()
    result = run_parties(
        training_program(job, run_id, lambda index: sets[index], lambda ctx: shapes),
        parties=len(training_roles(job)),
        profile=job.profile,
        seed=job.seed,
        timeout_seconds=3600,
    )
    reports = [report for report in result.outputs[:COMPUTING_PARTIES] if report is not None]
    return summary(job, reports, time.perf_counter() - started, run_id)


def public_parameters(job: TrainJob) -> dict[str, Any]:
    """The job's parameters every party must agree on (not local paths, keys or verbosity)."""
    return {
        "profile": job.profile.name,
        "architecture": list(job.architecture.layers),
        "config": {
            key: value.hex() if isinstance(value, bytes) else value
            for key, value in asdict(job.config).items()
        },
        "poison": asdict(job.poison),
        "poisoned": job.poisoned,
        "holders": job.holders,
        "train_records": job.train_records,
        "test_records": job.test_records,
    }


def report_to_json(report: ServerReport | None) -> bytes:
    """A server's report as JSON (a deployed server sends it to P0 in its goodbye)."""
    return b"" if report is None else json.dumps(asdict(report), sort_keys=True).encode("utf-8")


def report_from_json(data: bytes) -> ServerReport:
    """The inverse of :func:`report_to_json`; ValueError if the fields do not fit."""
    try:
        fields = json.loads(data.decode("utf-8"))
        return ServerReport(
            party=int(fields["party"]),
            offline=PhaseTotals(**fields["offline"]),
            online=PhaseTotals(**fields["online"]),
            evaluation=PhaseTotals(**fields["evaluation"]),
            iterations=int(fields["iterations"]),
            max_online_rounds=int(fields["max_online_rounds"]),
            accuracy=float(fields["accuracy"]),
            attack_success=None if fields["attack_success"] is None else float(fields["attack_success"]),
            model_file=str(fields["model_file"]),
        )
    except (UnicodeDecodeError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"a server report that does not parse: {error}") from None


def summary(job: TrainJob, reports: list[ServerReport], seconds: float, run_id: bytes) -> dict[str, Any]:
    """The JSON summary: accuracy, attack success, times, bytes per party and rounds."""
    first = reports[0]
    iterations = max(first.iterations, 1)
    return {
        "profile": job.profile.name,
        "architecture": job.architecture.describe(),
        "config": {
            key: value.hex() if isinstance(value, bytes) else value
            for key, value in asdict(job.config).items()
        },
        "poison": asdict(job.poison) if job.poisoned else None,
        "attack_test_set": {"trigger": asdict(job.poison.trigger), "target": job.poison.target},
        "holders": job.holders,
        "run_id": run_id.hex(),
        "clean_accuracy": first.accuracy,
        "attack_success_rate": first.attack_success,
        "iterations": first.iterations,
        "wall_seconds": seconds,
        "per_iteration": {
            "online_seconds": first.online.seconds / iterations,
            "offline_seconds": first.offline.seconds / iterations,
            "online_rounds": first.online.rounds / iterations,
            "max_online_rounds": first.max_online_rounds,
            "offline_rounds": first.offline.rounds / iterations,
        },
        "bytes_sent_per_party": {
            "online": [report.online.bytes_sent for report in reports],
            "offline": [report.offline.bytes_sent for report in reports],
            "evaluation": [report.evaluation.bytes_sent for report in reports],
        },
        "model_files": [report.model_file for report in reports],
    }


def write_summary(path: str, content: dict[str, Any]) -> None:
    """Write the JSON summary atomically."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def job_from_arguments(arguments: Any) -> TrainJob:
    """A :class:`TrainJob` from the parsed ``mpbadnet train`` arguments."""
    poison = PoisonConfig(
        seed=arguments.poison_seed,
        target=arguments.target,
        rate=arguments.poison_rate,
        holders=arguments.holders,
        malicious=tuple(arguments.malicious),
    )
    return TrainJob(
        profile=get_profile(arguments.profile),
        config=TrainingConfig(
            batch_size=arguments.batch_size,
            learning_rate_log2=arguments.learning_rate_log2,
            epochs=arguments.epochs,
            public_seed=bytes.fromhex(arguments.public_seed),
        ),
        poison=poison,
        poisoned=not arguments.clean,
        holders=arguments.holders,
        train_records=arguments.train_records,
        test_records=arguments.test_records,
        output=arguments.output,
        mnist_directory=arguments.mnist_dir,
        seed=None if arguments.seed is None else arguments.seed.to_bytes(8, "little"),
        quiet=arguments.quiet,
    )
