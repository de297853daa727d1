"""§11.8 Detection job: the job behind ``mpbadnet detect``; P3 drives Algorithm 1 against the secret model.

Parties 0-2 are the computing servers, each loading its own model-share file; party 3 is the
secondary server P3, who runs :func:`fast.detection.reverse_engineer` for every candidate
label with the secure oracle of §11.7; party 4 is the data holder who shares the clean
detection images once and leaves. Before every mini-batch P3 sends the servers a control
message with the candidate label and the public positions of the mini-batch's images, and a
final one that ends the job. P3 runs Algorithm 2 and writes the report and the figures.
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

from fast import preprocessing
from fast.detection import (
    BatchOrder,
    DetectionSettings,
    GradientOracle,
    LabelResult,
    OracleResult,
    comparisons_for_oracle_step,
    label_report,
    label_start,
    oracle_result,
    reverse_engineer,
    secure_oracle_step,
)
from fast.mnist import load_mnist
from fast.pipeline import PhaseTotals, Progress, measured, pixels, rows_of, write_summary
from fast.plaintext import load_float_model
from fast.plaintext_detection import reverse_engineer_labels
from fast.ring import Share, decode_fixed, encode_fixed
from fast.sharing import deal_input, receive_input
from fast.training import load_model_shares, split_component
from fast.tuning import keep_freed_memory, one_blas_thread_per_party
from refimpl.detection import ORACLE_HOLDER
from refimpl.ring import Profile, get_profile
from refimpl.training import Architecture, read_model_file
from refimpl.transport import COMPUTING_PARTIES, PartyContext, WireFormatError, run_parties

IMAGE_HOLDER = ORACLE_HOLDER + 1
"""§11.8 Detection job: the data holder who shares the clean detection images."""

CONTROL_STEP = "detect-control"
"""§11.8 Detection job: the step label of P3's per-mini-batch control message."""

STOP = -1
"""§11.8 Detection job: the label field of the control message that ends the job."""

MNIST_TEST_IMAGES = 10000
"""§11.1: the default number of detection images, the whole MNIST test set."""


@dataclass(frozen=True)
class DetectJob:
    """Everything ``mpbadnet detect`` runs: the model shares, the images, the settings, the outputs."""

    model_directory: str
    settings: DetectionSettings = field(default_factory=DetectionSettings)
    labels: tuple[int, ...] | None = None
    images: int | None = None
    output: str = "mpbadnet-detection"
    mnist_directory: str | None = None
    seed: bytes | None = None
    quiet: bool = False
    figures: bool = True

    def model_path(self, party: int) -> str:
        """Server ``party``'s model-share file."""
        return os.path.join(self.model_directory, f"model-P{party}.mpshares")


@dataclass
class ServerLog:
    """What one computing server measured during detection."""

    party: int
    loading: PhaseTotals = field(default_factory=PhaseTotals)
    offline: PhaseTotals = field(default_factory=PhaseTotals)
    online: PhaseTotals = field(default_factory=PhaseTotals)
    mini_batches: int = 0
    max_online_rounds: int = 0
    bytes_sent: int = 0
    model_run_id: str = ""


def log_to_json(log: ServerLog | SecondaryLog | None) -> bytes:
    """A server's log as JSON (a deployed server sends it to P3 in its goodbye)."""
    return json.dumps(asdict(log), sort_keys=True).encode("utf-8") if isinstance(log, ServerLog) else b""


def log_from_json(data: bytes) -> ServerLog:
    """The inverse of :func:`log_to_json`; ``ValueError`` if the fields do not fit."""
    try:
        fields = json.loads(data.decode("utf-8"))
        return ServerLog(
            party=int(fields["party"]),
            loading=PhaseTotals(**fields["loading"]),
            offline=PhaseTotals(**fields["offline"]),
            online=PhaseTotals(**fields["online"]),
            mini_batches=int(fields["mini_batches"]),
            max_online_rounds=int(fields["max_online_rounds"]),
            bytes_sent=int(fields["bytes_sent"]),
            model_run_id=str(fields["model_run_id"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"a server's detection log is malformed: {error}") from None


@dataclass
class SecondaryLog:
    """What P3 computed: the labels' results and its own traffic."""

    results: list[LabelResult]
    label_seconds: list[float]
    bytes_sent: int = 0


def model_description(job: DetectJob) -> tuple[Profile, Architecture, str]:
    """The profile, architecture and run id named in P0's model-share file (each server checks its own)."""
    header, _, _ = read_model_file(job.model_path(0))
    profile_fields = header.get("profile")
    layers = header.get("architecture")
    if not isinstance(profile_fields, dict) or not isinstance(layers, list):
        raise ValueError(f"{job.model_path(0)}: the header names no profile or architecture")
    return (
        get_profile(str(profile_fields["name"])),
        Architecture(tuple(int(x) for x in layers)),
        str(header["run_id"]),
    )


def encode_control(target: int, batch: NDArray[np.int64]) -> bytes:
    """§11.8: the control message: the label (or ``STOP``) and the batch positions, little-endian int64."""
    return np.concatenate([[target], batch]).astype("<i8").tobytes()


def decode_control(payload: bytes, image_count: int, classes: int) -> tuple[int, NDArray[np.int64]]:
    """§11.8: a server checks P3's control message: a label or ``STOP``, positions in range."""
    values = np.frombuffer(payload, dtype="<i8").astype(np.int64)
    target, batch = int(values[0]), values[1:]
    if target != STOP and not 0 <= target < classes:
        raise WireFormatError(f"P3's control message names label {target}, not one of {classes}")
    if target != STOP and (batch.min() < 0 or batch.max() >= image_count):
        raise WireFormatError(f"P3's control message names an image outside 0..{image_count - 1}")
    return target, batch


class ControlCheck:
    """§11.8 Detection job: what a server accepts from P3, recomputed from the public settings.

    Each candidate label once, in the job's order; within a label, exactly the positions of its
    public mini-batch order (:func:`fast.detection.label_start`), at most ``max_steps`` steps
    of ``batches_per_step`` mini-batches, and whole steps only; ``STOP`` once every label has
    run. Anything else is refused with a :class:`WireFormatError` naming P3 and the step.
    """

    def __init__(self, settings: DetectionSettings, labels: list[int], image_count: int) -> None:
        self.settings, self.image_count = settings, image_count
        self.pending = list(labels)
        self.label: int | None = None
        self.order: BatchOrder | None = None
        self.mini_batches = 0

    def _refuse(self, problem: str) -> WireFormatError:
        return WireFormatError(f"P3's control message at step {CONTROL_STEP!r} refused: {problem}")

    def _finish_label(self) -> None:
        if self.label is not None and self.mini_batches % self.settings.batches_per_step:
            raise self._refuse(
                f"label {self.label} ended after {self.mini_batches} mini-batches, "
                f"not whole steps of {self.settings.batches_per_step}"
            )

    def accept(self, target: int, batch: NDArray[np.int64]) -> None:
        """Check one decoded control message against the public schedule; raise if it deviates."""
        if target == STOP:
            if self.pending:
                raise self._refuse(f"stop before the labels {self.pending} ran")
            self._finish_label()
            return
        if target != self.label:
            if not self.pending or target != self.pending[0]:
                expected = self.pending[0] if self.pending else "stop"
                raise self._refuse(f"label {target} where {expected} or label {self.label} was due")
            self._finish_label()
            self.pending.pop(0)
            self.label, self.mini_batches = target, 0
            self.order = label_start(self.settings, target, self.image_count)[2]
        limit = self.settings.max_steps * self.settings.batches_per_step
        if self.mini_batches >= limit:
            raise self._refuse(f"label {target} asks for more than {limit} mini-batches")
        assert self.order is not None
        expected_batch = self.order.next_batch()
        if not np.array_equal(batch, expected_batch):
            raise self._refuse(
                f"label {target}, mini-batch {self.mini_batches + 1}: positions differ from the public order"
            )
        self.mini_batches += 1


def secure_oracle(ctx: PartyContext, side: int) -> GradientOracle:
    """§11.8: P3's oracle: the control message to P0..P2, then one §11.7 step."""
    profile = ctx.profile

    def oracle(
        mask: NDArray[np.float64], pattern: NDArray[np.float64], batch: NDArray[np.int64], target: int
    ) -> OracleResult:
        control = encode_control(target, batch)
        for server in range(COMPUTING_PARTIES):
            ctx.send(server, CONTROL_STEP, control)
        output = secure_oracle_step(
            ctx,
            None,
            None,
            encode_fixed(profile, mask.reshape(-1)),
            encode_fixed(profile, pattern.reshape(-1) / 255.0),
            target,
            None,
        )
        assert output is not None
        return oracle_result(profile, output, side, batch.size)

    return oracle


def serve(
    ctx: PartyContext,
    job: DetectJob,
    architecture: Architecture,
    image_shape: tuple[int, int],
    labels: list[int],
    model_run_id: bytes | None = None,
) -> ServerLog:
    """P0, P1 or P2: load the model, receive the images, answer P3's mini-batches until it stops.

    Every control message is checked against the public schedule (:class:`ControlCheck`).
    With ``model_run_id`` the model-share file must belong to that training run (§9.7).
    """
    log = ServerLog(ctx.party)
    path = job.model_path(ctx.party)
    model, log.model_run_id = measured(
        ctx, log.loading, lambda: load_model_shares(path, ctx, architecture, model_run_id)
    )
    images: Share = measured(
        ctx, log.loading, lambda: receive_input(ctx, ctx.ring, IMAGE_HOLDER, image_shape)
    )
    batch_size = job.settings.batch_size
    material = comparisons_for_oracle_step(architecture, batch_size)
    schedule = ControlCheck(job.settings, labels, image_shape[0])
    with one_blas_thread_per_party():
        while True:
            payload = ctx.recv(ORACLE_HOLDER, CONTROL_STEP, 8 * (batch_size + 1))
            target, batch = decode_control(payload, image_shape[0], architecture.classes)
            schedule.accept(target, batch)
            if target == STOP:
                log.bytes_sent = ctx.stats.bytes_sent
                return log
            pool = measured(
                ctx, log.offline, lambda: preprocessing.generate_comparison_pool(ctx, ctx.profile, material)
            )
            clock = ctx.clock
            measured(
                ctx,
                log.online,
                lambda batch=batch, target=target, pool=pool: secure_oracle_step(
                    ctx, model, rows_of(images, batch), None, None, target, pool
                ),
            )
            log.max_online_rounds = max(log.max_online_rounds, ctx.clock - clock)
            log.mini_batches += 1


def drive(ctx: PartyContext, job: DetectJob, labels: list[int], image_count: int, side: int) -> SecondaryLog:
    """P3: Algorithm 1 for every candidate label against the secure oracle, then the stop message."""
    oracle = secure_oracle(ctx, side)
    progress = Progress(job.quiet)
    total_steps = job.settings.max_steps

    def show(label: int, step: int, cost: float, success: float, norm: float) -> None:
        progress.show(
            f"label {label} step {step}/{total_steps} cost {cost:.3g} attack success {success:.3f} "
            f"mask L1 {norm:.1f}  {time.perf_counter() - progress.start:.0f} s  "
            f"{ctx.stats.bytes_sent / 1e6:.1f} MB sent by P3"
        )

    results, seconds = [], []
    for label in labels:
        begun = time.perf_counter()
        result = reverse_engineer(oracle, label, image_count, job.settings, show)
        results.append(result)
        seconds.append(time.perf_counter() - begun)
        progress.show(
            f"label {label} done: {result.steps} steps, best mask L1 {result.best_norm:.1f}, "
            f"attack success {result.best_attack_success:.3f}",
            True,
        )
    stop = encode_control(STOP, np.zeros(job.settings.batch_size, dtype=np.int64))
    for server in range(COMPUTING_PARTIES):
        ctx.send(server, CONTROL_STEP, stop)
    return SecondaryLog(results, seconds, ctx.stats.bytes_sent)


def detection_images(job: DetectJob) -> NDArray[np.uint8]:
    """§11.1: the clean MNIST test images (the first ``job.images`` of them), as rows of pixels."""
    data = load_mnist(job.mnist_directory)
    count = job.images or data.test_labels.size
    if not job.settings.batch_size <= count <= data.test_labels.size:
        raise ValueError(
            f"detection needs {job.settings.batch_size} to {data.test_labels.size} images, got {count}"
        )
    return data.test_images[:count].reshape(count, -1)


def detection_program(
    job: DetectJob,
    architecture: Architecture,
    image_shape: tuple[int, int],
    labels: list[int],
    images_of: Callable[[], NDArray[np.uint8]],
    model_run_id: bytes | None = None,
) -> Callable[[PartyContext], ServerLog | SecondaryLog | None]:
    """§11.8 Detection job: the SPMD program, for the in-process runtime and for deployment alike.

    Parties 0-2 run :func:`serve`, party 3 :func:`drive`; party 4 deals ``images_of()`` (rows of
    ``image_shape``) and leaves.
    """
    side = round(image_shape[1] ** 0.5)
    if side * side != image_shape[1] or image_shape[1] != architecture.layers[0]:
        raise ValueError(f"the model takes {architecture.layers[0]} inputs, the images have {image_shape[1]}")
    for label in labels:
        if not 0 <= label < architecture.classes:
            raise ValueError(f"label {label} is not one of the model's {architecture.classes} classes")

    def program(ctx: PartyContext) -> ServerLog | SecondaryLog | None:
        if ctx.party < COMPUTING_PARTIES:
            return serve(ctx, job, architecture, image_shape, labels, model_run_id)
        if ctx.party == ORACLE_HOLDER:
            return drive(ctx, job, labels, image_shape[0], side)
        images = images_of()
        if images.shape != image_shape:
            raise ValueError(f"the image holder has images of shape {images.shape}, the job {image_shape}")
        deal_input(ctx, ctx.ring, pixels(ctx.profile, images), image_shape)
        return None

    return program


def run_detection(job: DetectJob) -> dict[str, Any]:
    """Run the whole detection in one process (parties as threads); write and return the JSON report."""
    keep_freed_memory()
    profile, architecture, run_id = model_description(job)
    images = detection_images(job)
    labels = list(range(architecture.classes)) if job.labels is None else list(job.labels)
    program = detection_program(job, architecture, (images.shape[0], images.shape[1]), labels, lambda: images)
    os.makedirs(job.output, exist_ok=True)
    started = time.perf_counter()
    result = run_parties(
        program, parties=IMAGE_HOLDER + 1, profile=profile, seed=job.seed, timeout_seconds=600
    )
    servers = [log for log in result.outputs[:COMPUTING_PARTIES] if isinstance(log, ServerLog)]
    secondary = result.outputs[ORACLE_HOLDER]
    assert isinstance(secondary, SecondaryLog)
    sent: list[int | None] = [stats.bytes_sent for stats in result.stats]
    report = detection_report(job, profile, architecture, run_id, servers, secondary, sent)
    report["wall_seconds"] = time.perf_counter() - started
    report["rounds"]["total"] = result.rounds
    return finish_report(job, report, secondary.results)


def detection_report(
    job: DetectJob,
    profile: Profile,
    architecture: Architecture,
    run_id: str,
    servers: list[ServerLog],
    secondary: SecondaryLog,
    sent: list[int | None],
) -> dict[str, Any]:
    """The JSON report: Algorithm 2's table, settings, time, bytes per party and rounds."""
    first = servers[0]
    batches = max(first.mini_batches, 1)
    report = label_report(secondary.results, secondary.label_seconds)
    report.update(
        {
            "mode": "secure",
            "profile": profile.name,
            "architecture": architecture.describe(),
            "model_run_id": run_id,
            "settings": asdict(job.settings),
            "detection_images": job.images or MNIST_TEST_IMAGES,
            "mini_batches": first.mini_batches,
            "per_mini_batch": {
                "online_seconds": first.online.seconds / batches,
                "offline_seconds": first.offline.seconds / batches,
                "online_rounds": first.online.rounds / batches,
                "max_online_rounds": first.max_online_rounds,
                "offline_rounds": first.offline.rounds / batches,
            },
            "bytes_sent_per_party": {
                "total": sent,
                "online": [log.online.bytes_sent for log in servers],
                "offline": [log.offline.bytes_sent for log in servers],
                "loading": [log.loading.bytes_sent for log in servers],
                "parties": ["P0", "P1", "P2", "P3", "image holder"],
            },
            "bytes_total": sum(value for value in sent if value is not None),
            "rounds": {},
        }
    )
    return report


def finish_report(job: DetectJob, report: dict[str, Any], results: list[LabelResult]) -> dict[str, Any]:
    """Write the reversed triggers, the figures and the JSON report (atomically) into the output directory."""
    triggers = os.path.join(job.output, "triggers.npz")
    temporary = triggers + ".tmp.npz"
    np.savez_compressed(
        temporary,
        labels=np.array([result.target for result in results]),
        masks=np.stack([result.mask for result in results]),
        patterns=np.stack([result.pattern for result in results]),
    )
    os.replace(temporary, triggers)
    report["triggers"] = triggers
    if job.figures:
        from fast.detection_figures import write_figures

        report["figures"] = write_figures(job.output, results, report)
    write_summary(os.path.join(job.output, "detection-report.json"), report)
    return report


def decode_model_shares(directory: str) -> tuple[Profile, list[NDArray[np.float64]]]:
    """The model in the clear from all three share files: for the plaintext baseline and audits only.

    No server can do this alone; it needs every server's file, as an auditor would.
    """
    components: dict[int, list[NDArray[np.unsignedinteger]]] = {}
    profile: Profile | None = None
    for party in range(COMPUTING_PARTIES):
        path = os.path.join(directory, f"model-P{party}.mpshares")
        header, first, _ = read_model_file(path)
        profile_fields = header["profile"]
        assert isinstance(profile_fields, dict)
        profile = get_profile(str(profile_fields["name"]))
        layers = header["architecture"]
        assert isinstance(layers, list)
        components[party] = split_component(profile.ring_bits, first, Architecture(tuple(layers)))
    assert profile is not None
    weights = []
    for layer in range(len(components[0])):
        total = components[0][layer] + components[1][layer] + components[2][layer]  # wraps mod 2^l
        weights.append(decode_fixed(profile, total))
    return profile, weights


def load_plaintext_model(path: str) -> list[NDArray[np.float64]]:
    """A float64 model: a ``plaintext-model.npz`` of ``mpbadnet train --plaintext``, or decoded shares."""
    if os.path.isdir(path):
        return decode_model_shares(path)[1]
    return load_float_model(path)


def run_plaintext_detection(job: DetectJob) -> dict[str, Any]:
    """§11.5 Plaintext baseline: through the same report and figures as the secure job."""
    weights = load_plaintext_model(job.model_directory)
    images = detection_images(job)
    progress = Progress(job.quiet)

    def show(label: int, step: int, cost: float, success: float, norm: float) -> None:
        progress.show(
            f"label {label} step {step}/{job.settings.max_steps} cost {cost:.3g} "
            f"attack success {success:.3f} mask L1 {norm:.1f}"
        )

    os.makedirs(job.output, exist_ok=True)
    started = time.perf_counter()
    results, seconds = reverse_engineer_labels(
        weights, images, job.settings, None if job.labels is None else list(job.labels), show
    )
    report = label_report(results, seconds)
    report.update(
        {
            "mode": "plaintext float64",
            "model": job.model_directory,
            "settings": asdict(job.settings),
            "detection_images": int(images.shape[0]),
            "wall_seconds": time.perf_counter() - started,
        }
    )
    return finish_report(job, report, results)


def job_from_arguments(arguments: Any) -> DetectJob:
    """A :class:`DetectJob` from the parsed ``mpbadnet detect`` arguments."""
    settings = DetectionSettings(
        batches_per_step=arguments.batches_per_step,
        max_steps=arguments.max_steps,
        patience=arguments.patience,
        learning_rate=arguments.learning_rate,
        seed=arguments.detection_seed,
    )
    labels = None if arguments.labels is None else tuple(int(x) for x in arguments.labels.split(","))
    return DetectJob(
        model_directory=arguments.model,
        settings=settings,
        labels=labels,
        images=arguments.images,
        output=arguments.output,
        mnist_directory=arguments.mnist_dir,
        seed=None if arguments.seed is None else arguments.seed.to_bytes(8, "little"),
        quiet=arguments.quiet,
        figures=not arguments.no_figures,
    )


def table_text(report: dict[str, Any]) -> str:
    """The report's per-label table, as the paper's Fig. 2 and 3 give it."""
    lines = ["label  steps  mini-batches  best L1  attack success  anomaly index"]
    for row in report["labels"]:
        lines.append(
            f"{row['label']:>5}  {row['steps']:>5}  {row['mini_batches']:>12}  {row['best_l1_norm']:>7.1f}  "
            f"{row['attack_success']:>14.3f}  {row['anomaly_index']:>13.2f}"
        )
    flagged = report["flagged_labels"]
    lines.append(f"flagged: {', '.join(map(str, flagged)) if flagged else 'none'}")
    return "\n".join(lines) + "\n"


def print_table(report: dict[str, Any], stream: Any = sys.stdout) -> None:
    """Print :func:`table_text`."""
    stream.write(table_text(report))


__all__ = [
    "CONTROL_STEP",
    "IMAGE_HOLDER",
    "STOP",
    "DetectJob",
    "decode_control",
    "decode_model_shares",
    "detection_program",
    "drive",
    "encode_control",
    "job_from_arguments",
    "load_plaintext_model",
    "log_from_json",
    "log_to_json",
    "print_table",
    "run_detection",
    "run_plaintext_detection",
    "secure_oracle",
    "serve",
    "table_text",
]
