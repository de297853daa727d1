"""The deployment commands of ``mpbadnet`` (§12.6): ``keygen``, ``party`` and ``holder``.

``mpbadnet keygen`` writes the key material and the cluster configuration; ``mpbadnet party
--role P<i>`` runs one server and ``mpbadnet holder --role H<j>`` one data holder of a job,
each in its own process, over mutual TLS. A job is an entry of :data:`JOBS`: it builds the
job from the same options as its in-process command and gives each party number the same
SPMD program as the in-process run, so the outputs are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from fast.deployment import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
    MESSAGE_LIMIT_MARGIN,
    PartyRun,
    PinnedKeysError,
    TlsNetwork,
    canonical_json,
    check_key_setting,
    generate_cluster,
    load_cluster_config,
    message_bound,
    run_party_over_tls,
)
from refimpl.ring import PROFILES, Profile
from refimpl.training import Architecture
from refimpl.transport import COMPUTING_PARTIES, DEFAULT_TIMEOUT_SECONDS, PartyContext

Result = TypeVar("Result")
RUN_ID_HEX = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_ANNOUNCED_RECORDS = 1 << 24
"""The most records a data holder may announce for one set."""
MNIST_TRAIN_IMAGES = 60000


class DeploymentError(Exception):
    """A deployment command was given input it cannot run with (reported without a traceback)."""


@dataclass(frozen=True)
class PartyPlan(Generic[Result]):
    """What one party of a deployed job runs.

    ``announcement`` is the public information this party puts in its hello (for example
    the shapes a data holder will share); ``farewell`` turns its output into the bytes of its
    goodbye frames; ``finish`` runs after a successful run (for example P0 writes the summary)
    and returns the line the command prints.
    """

    program: Callable[[PartyContext], Result]
    announcement: object = None
    farewell: Callable[[Result], bytes] | None = None
    finish: Callable[[PartyRun[Result]], str] | None = None


@dataclass(frozen=True)
class DeployedJob:
    """A job that runs across processes; register one in :data:`JOBS` (e.g. ``detect``).

    * ``add_arguments(subparsers)`` adds the job's subcommand (named ``name``) to the
      ``party`` and ``holder`` commands, with the options of its in-process command;
    * ``build(arguments)`` makes the job object; ``roles(job)`` the cluster role of each party
      number (identical to the in-process numbering); ``parameters(job)`` the public
      parameters every party must agree on (hashed into the hello); ``profile(job)``,
      ``seed(job)`` and ``default_run_id(job)`` (a run id when keys are pinned, else None);
    * ``largest_message(job)`` a bound on the job's largest message in bytes, from its public
      parameters alone (:func:`fast.deployment.message_bound`; every party computes the same);
    * ``plan(job, party, run_id)`` the :class:`PartyPlan` of party number ``party``.
    """

    name: str
    add_arguments: Callable[[Any], None]
    build: Callable[[argparse.Namespace], Any]
    roles: Callable[[Any], tuple[str, ...]]
    parameters: Callable[[Any], dict[str, Any]]
    profile: Callable[[Any], Profile]
    seed: Callable[[Any], bytes | None]
    default_run_id: Callable[[Any], bytes | None]
    plan: Callable[[Any, int, bytes], PartyPlan[Any]]
    largest_message: Callable[[Any], int]


INSECURE_TESTING_HELP = (
    "tests only: accept pinned keys (--seed); every party of the run must pass it, "
    "and a deployment without it draws keys from the OS"
)


def add_insecure_testing(parser: Any) -> None:
    """§12.6 Deployment over TLS: the setting that lets ``--seed`` pin a deployed party's keys."""
    parser.add_argument("--insecure-testing", action="store_true", help=INSECURE_TESTING_HELP)


# --------------------------------------------------------------------------- the training job


def _add_train(subparsers: Any) -> None:
    from fast.cli import add_train_parser

    add_train_parser(subparsers)
    train = subparsers.choices["train"]
    add_insecure_testing(train)
    train.add_argument(
        "--layers",
        default=None,
        help="layer widths, e.g. 784,16,10 (default 784,128,128,10); every party must pass the same",
    )


def _build_train(arguments: argparse.Namespace) -> Any:
    from fast.pipeline import job_from_arguments

    if arguments.plaintext:
        raise DeploymentError("--plaintext runs in one process: use `mpbadnet train --plaintext`")
    job = job_from_arguments(arguments)
    if arguments.layers is not None:
        try:
            layers = tuple(int(width) for width in arguments.layers.split(","))
        except ValueError:
            raise DeploymentError(f"--layers {arguments.layers!r} is not a list such as 784,16,10") from None
        job = replace(job, architecture=Architecture(layers))
    return job


def announced_shapes(ctx: PartyContext, job: Any) -> list[list[tuple[int, int]]]:
    """A deployed server's view of the data holders' set shapes, from their hellos, checked."""
    from fast.pipeline import FIRST_HOLDER

    network = ctx.network
    assert isinstance(network, TlsNetwork)
    features = job.architecture.layers[0]
    shapes = []
    for index in range(job.holders + 1):
        party = FIRST_HOLDER + index
        announced = network.announcements.get(party)
        expected_sets = 1 if index < job.holders else 2
        if (
            not isinstance(announced, list)
            or len(announced) != expected_sets
            or not all(
                isinstance(shape, list)
                and len(shape) == 2
                and all(isinstance(value, int) for value in shape)
                and 0 < shape[0] <= MAX_ANNOUNCED_RECORDS
                and shape[1] == features
                for shape in announced
            )
        ):
            raise DeploymentError(
                f"P{ctx.party}: {network.name(party)} announced {announced!r}, expected "
                f"{expected_sets} set(s) of [records, {features}]"
            )
        shapes.append([(shape[0], shape[1]) for shape in announced])
    return shapes


def _plan_train(job: Any, party: int, run_id: bytes) -> PartyPlan[Any]:
    from fast.mnist import load_mnist
    from fast.pipeline import (
        FIRST_HOLDER,
        holder_sets,
        report_from_json,
        report_to_json,
        set_shapes,
        summary,
        training_program,
        write_summary,
    )

    started = time.perf_counter()
    if party >= COMPUTING_PARTIES:
        sets = holder_sets(job, load_mnist(job.mnist_directory), party - FIRST_HOLDER)

        def finish_holder(run: PartyRun[Any]) -> str:
            records = sum(images.shape[0] for images, _ in sets)
            return f"sent the shares of {records} records to P0, P1 and P2 (the servers report the run)"

        program = training_program(job, run_id, lambda index: sets, lambda ctx: [])
        return PartyPlan(program, [list(shape) for shape in set_shapes(sets)], None, finish_holder)

    def no_data(index: int) -> list[Any]:
        raise DeploymentError("a server holds no data")

    os.makedirs(job.output, exist_ok=True)

    def finish_server(run: PartyRun[Any]) -> str:
        if party != 0:
            return f"model shares written to {run.output.model_file}"
        reports = [run.output] + [report_from_json(run.farewells[peer]) for peer in (1, 2)]
        content = summary(job, reports, time.perf_counter() - started, run_id)
        path = os.path.join(job.output, "summary.json")
        write_summary(path, content)
        return json.dumps(content, indent=2, sort_keys=True) + f"\nsummary written to {path}"

    program = training_program(job, run_id, no_data, lambda ctx: announced_shapes(ctx, job))
    return PartyPlan(program, None, report_to_json, finish_server)


def _largest_weights(architecture: Architecture) -> int:
    """The elements of the largest augmented weight matrix (n_i + 1) x n_{i+1}."""
    return max(rows * columns for rows, columns in architecture.weight_shapes)


def training_largest_message(job: Any) -> int:
    """§12.6 Deployment over TLS: a bound on a training job's messages, from its public parameters.

    The largest tensor is a dealt set, a batch or evaluation chunk, or a weight matrix; the
    most comparisons are those of one training step or one evaluation chunk.
    """
    from fast.detection_job import MNIST_TEST_IMAGES
    from fast.pipeline import EVALUATION_CHUNK
    from refimpl.training import comparisons_for_evaluation, comparisons_for_training_step

    architecture = job.architecture
    train = MNIST_TRAIN_IMAGES if job.train_records is None else job.train_records
    test = MNIST_TEST_IMAGES if job.test_records is None else job.test_records
    records = max(-(-train // job.holders), test)
    chunk = min(EVALUATION_CHUNK, test)
    widest = max(architecture.layers) + 1
    rows = max(job.config.batch_size, chunk)
    elements = max(
        records * max(architecture.layers[0], architecture.classes),
        rows * widest,
        _largest_weights(architecture),
    )
    comparisons = max(
        comparisons_for_training_step(architecture, job.config.batch_size),
        comparisons_for_evaluation(architecture, chunk),
    )
    return message_bound(job.profile, elements, comparisons)


def _train_job() -> DeployedJob:
    from fast.pipeline import public_parameters, training_roles, training_run_id

    return DeployedJob(
        name="train",
        add_arguments=_add_train,
        build=_build_train,
        roles=training_roles,
        parameters=public_parameters,
        profile=lambda job: job.profile,
        seed=lambda job: job.seed,
        default_run_id=lambda job: None if job.seed is None else training_run_id(job),
        plan=_plan_train,
        largest_message=training_largest_message,
    )


# --------------------------------------------------------------------------- the detection job

DETECTION_ROLES = ("P0", "P1", "P2", "P3", "EVAL")
"""§11.8: the servers, the secondary server P3 and the image holder (the evaluator data holder)."""


@dataclass(frozen=True)
class DeployedDetection:
    """A detection job as every party of a deployment sees it: no party reads another's files."""

    job: Any
    profile: Profile
    architecture: Architecture
    model_run_id: bytes | None


def _add_detect(subparsers: Any) -> None:
    from fast.cli import detection_options

    detect = subparsers.add_parser("detect", help="one party of `mpbadnet detect` (spec 11.8)")
    detection_options(detect, "mpbadnet-detection", model_argument=False)
    add_insecure_testing(detect)
    detect.add_argument(
        "--model-dir", default=None, help="servers: the folder with this server's model shares"
    )
    detect.add_argument("--layers", default="784,128,128,10", help="the model's layer widths")
    detect.add_argument("--profile", choices=sorted(PROFILES), default="wide")
    detect.add_argument(
        "--model-run-id",
        default=None,
        help="32 hex digits: the servers refuse shares of any other training run",
    )


def _build_detect(arguments: argparse.Namespace) -> DeployedDetection:
    from fast.detection_job import job_from_arguments
    from refimpl.ring import get_profile

    arguments.model = arguments.model_dir or ""
    arguments.plaintext = False
    job = job_from_arguments(arguments)
    try:
        layers = tuple(int(width) for width in arguments.layers.split(","))
    except ValueError:
        raise DeploymentError(f"--layers {arguments.layers!r} is not a list such as 784,128,128,10") from None
    model_run_id = None
    if arguments.model_run_id is not None:
        if not RUN_ID_HEX.match(arguments.model_run_id):
            raise DeploymentError(f"--model-run-id {arguments.model_run_id!r} is not 32 hex digits")
        model_run_id = bytes.fromhex(arguments.model_run_id)
    return DeployedDetection(job, get_profile(arguments.profile), Architecture(layers), model_run_id)


def _detection_parameters(deployed: DeployedDetection) -> dict[str, Any]:
    from dataclasses import asdict

    job = deployed.job
    return {
        "profile": deployed.profile.name,
        "architecture": list(deployed.architecture.layers),
        "settings": asdict(job.settings),
        "labels": None if job.labels is None else list(job.labels),
        "images": job.images,
        "model_run_id": None if deployed.model_run_id is None else deployed.model_run_id.hex(),
    }


def _plan_detect(deployed: DeployedDetection, party: int, run_id: bytes) -> PartyPlan[Any]:
    from fast.detection_job import (
        MNIST_TEST_IMAGES,
        SecondaryLog,
        detection_images,
        detection_program,
        detection_report,
        finish_report,
        log_from_json,
        log_to_json,
        table_text,
    )

    job, architecture = deployed.job, deployed.architecture
    labels = list(range(architecture.classes)) if job.labels is None else list(job.labels)
    shape = (job.images or MNIST_TEST_IMAGES, architecture.layers[0])
    program = detection_program(
        job, architecture, shape, labels, lambda: detection_images(job), deployed.model_run_id
    )
    started = time.perf_counter()
    if party < COMPUTING_PARTIES:
        if not os.path.isfile(job.model_path(party)):
            raise DeploymentError(f"P{party} needs --model-dir with model-P{party}.mpshares")

        def finish_server(run: PartyRun[Any]) -> str:
            return f"P{party}: answered {run.output.mini_batches} mini-batches of P3"

        return PartyPlan(program, None, log_to_json, finish_server)
    if party > COMPUTING_PARTIES:
        return PartyPlan(program, None, None, lambda run: f"sent the shares of {shape[0]} detection images")
    os.makedirs(job.output, exist_ok=True)

    def finish_secondary(run: PartyRun[Any]) -> str:
        secondary = run.output
        assert isinstance(secondary, SecondaryLog)
        logs = [log_from_json(run.farewells[peer]) for peer in range(COMPUTING_PARTIES)]
        sent: list[int | None] = [log.bytes_sent for log in logs]
        sent += [run.stats.bytes_sent, None]  # the image holder reports nothing back
        report = detection_report(
            job, deployed.profile, architecture, logs[0].model_run_id, logs, secondary, sent
        )
        report["wall_seconds"] = time.perf_counter() - started
        report["rounds"]["total"] = run.stats.rounds
        finish_report(job, report, secondary.results)
        return table_text(report) + f"report written to {os.path.join(job.output, 'detection-report.json')}"

    return PartyPlan(program, None, None, finish_secondary)


def detection_largest_message(deployed: DeployedDetection) -> int:
    """§12.6 Deployment over TLS: a bound on a detection job's messages, from its public parameters.

    The largest tensor is the dealt image set, a mini-batch or a weight matrix; the most
    comparisons are those of one oracle step.
    """
    from fast.detection_job import MNIST_TEST_IMAGES
    from refimpl.detection import comparisons_for_oracle_step

    architecture, settings = deployed.architecture, deployed.job.settings
    images = deployed.job.images or MNIST_TEST_IMAGES
    widest = max(architecture.layers) + 1
    elements = max(
        images * architecture.layers[0], settings.batch_size * widest, _largest_weights(architecture)
    )
    comparisons = comparisons_for_oracle_step(architecture, settings.batch_size)
    return message_bound(deployed.profile, elements, comparisons)


def _detect_job() -> DeployedJob:
    from refimpl.training import public_key

    return DeployedJob(
        name="detect",
        add_arguments=_add_detect,
        build=_build_detect,
        roles=lambda deployed: DETECTION_ROLES,
        parameters=_detection_parameters,
        profile=lambda deployed: deployed.profile,
        seed=lambda deployed: deployed.job.seed,
        default_run_id=lambda deployed: (
            None if deployed.job.seed is None else public_key(deployed.job.seed, "detect-run")[:16]
        ),
        plan=_plan_detect,
        largest_message=detection_largest_message,
    )


JOBS: dict[str, Callable[[], DeployedJob]] = {"train": _train_job, "detect": _detect_job}
"""Deployed jobs by subcommand name."""


# --------------------------------------------------------------------------- running one party


def run_deployed(
    entry: DeployedJob,
    job: Any,
    role: str,
    config_path: str,
    run_id_hex: str | None,
    insecure_testing: bool = False,
) -> str:
    """Run party ``role`` of ``job`` in this process; returns what the command prints.

    Keys come from the OS: the job's seed (``--seed``) is refused unless ``insecure_testing``
    (``--insecure-testing``), which the hello carries so that every party must share it.
    """
    try:
        check_key_setting(entry.seed(job), insecure_testing)
    except PinnedKeysError as error:
        raise DeploymentError(f"{error}: pass --insecure-testing with --seed to every party") from None
    if insecure_testing:
        print(
            "warning: --insecure-testing: keys pinned by --seed; every party's keys follow from it "
            "(tests only, never in production)",
            file=sys.stderr,
        )
    try:
        config = load_cluster_config(config_path)
    except ValueError as error:
        raise DeploymentError(str(error)) from None
    roles = entry.roles(job)
    if role not in roles:
        raise DeploymentError(
            f"role {role} takes no part in the {entry.name} job (its roles: {', '.join(roles)})"
        )
    config.entry(role)
    for name in roles:
        try:
            config.entry(name)
        except ValueError as error:
            raise DeploymentError(f"{config_path}: the {entry.name} job needs role {name}: {error}") from None
    profile = entry.profile(job)
    if profile.name != config.profile:
        raise DeploymentError(
            f"{config_path} fixes profile {config.profile!r}; the job asks for {profile.name!r}"
        )
    if run_id_hex is not None:
        if not RUN_ID_HEX.match(run_id_hex):
            raise DeploymentError(f"--run-id {run_id_hex!r} is not 32 hex digits")
        run_id = bytes.fromhex(run_id_hex)
    else:
        default = entry.default_run_id(job)
        if default is None:
            raise DeploymentError(
                "--run-id is required: pass the same 32 hex digits to every party of the run "
                "(for example from `openssl rand -hex 16`)"
            )
        run_id = default
    party = roles.index(role)
    plan = entry.plan(job, party, run_id)
    parameters = canonical_json(entry.parameters(job))
    run = run_party_over_tls(
        plan.program,
        party,
        config,
        run_id=run_id,
        profile=profile,
        seed=entry.seed(job),
        job=entry.name,
        job_parameters=hashlib.sha256(parameters).hexdigest(),
        roles=roles,
        farewell=plan.farewell,
        announcement=plan.announcement,
        insecure_testing=insecure_testing,
        max_message_bytes=MESSAGE_LIMIT_MARGIN * entry.largest_message(job),
    )
    return "" if plan.finish is None else plan.finish(run)


# --------------------------------------------------------------------------- commands


def register(commands: Any) -> None:
    """Add ``keygen``, ``party`` and ``holder`` to the ``mpbadnet`` subcommands."""
    keygen = commands.add_parser(
        "keygen", help="write a cluster CA, every role's key and certificate, and cluster.toml"
    )
    keygen.add_argument("--out", required=True, help="folder to write into (must not hold a cluster yet)")
    keygen.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="the address of P0, P1, ... in order (repeat; three or four servers)",
    )
    keygen.add_argument(
        "--holders", type=int, default=5, help="data holders H1..Hn (an evaluator EVAL is always added)"
    )
    keygen.add_argument("--profile", choices=sorted(PROFILES), default="wide")
    keygen.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="receive timeout, s")
    keygen.add_argument(
        "--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_SECONDS, help="connection set-up, s"
    )
    keygen.add_argument(
        "--handshake-timeout",
        type=float,
        default=DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
        help="TLS handshake and hello of one connection, s",
    )
    keygen.add_argument("--valid-days", type=int, default=365)
    keygen.set_defaults(handler=run_keygen)
    for command, kind in (("party", "server"), ("holder", "data holder")):
        parser = commands.add_parser(command, help=f"run one {kind} of a job over mutual TLS")
        parser.add_argument(
            "--role", required=True, help="P0, P1, P2 or P3" if command == "party" else "H1, ..., EVAL"
        )
        parser.add_argument("--config", required=True, help="the cluster TOML written by `mpbadnet keygen`")
        parser.add_argument(
            "--run-id",
            default=None,
            help="32 hex digits, the same at every party (default with --seed --insecure-testing: derived)",
        )
        parser.set_defaults(handler=run_party_command if command == "party" else run_holder_command)
        jobs = parser.add_subparsers(dest="job", required=True, metavar="JOB")
        for make in JOBS.values():
            make().add_arguments(jobs)


def run_keygen(arguments: argparse.Namespace) -> int:
    """``mpbadnet keygen``: the key material and ``cluster.toml``."""
    out = Path(arguments.out)
    if (out / "cluster.toml").exists():
        print(f"mpbadnet keygen: {out / 'cluster.toml'} exists; choose another --out", file=sys.stderr)
        return 2
    if not 2 <= len(arguments.server) <= 4 or arguments.holders < 0:
        print("mpbadnet keygen: give two to four --server addresses and --holders >= 0", file=sys.stderr)
        return 2
    holders = [f"H{index + 1}" for index in range(arguments.holders)] + ["EVAL"]
    try:
        path = generate_cluster(
            out,
            arguments.server,
            holders=holders,
            timeout_seconds=arguments.timeout,
            connect_timeout_seconds=arguments.connect_timeout,
            profile=arguments.profile,
            valid_days=arguments.valid_days,
            handshake_timeout_seconds=arguments.handshake_timeout,
        )
    except ValueError as error:
        print(f"mpbadnet keygen: {error}", file=sys.stderr)
        return 2
    config = load_cluster_config(path)
    print(f"wrote {path}, {out / 'ca.pem'} and one key and certificate per role:")
    for entry in config.parties:
        where = f"listens on {entry.host}:{entry.port}" if entry.listens else "connects out"
        print(f"  {entry.role:5} {where:32} key {entry.key}  fingerprint {entry.fingerprint}")
    print(
        f"copy cluster.toml, ca.pem and every *.pem to every host, and each <role>.key only to its "
        f"host; keep {out / 'ca.key'} offline"
    )
    return 0


def _run_command(command: str, arguments: argparse.Namespace, servers: bool) -> int:
    role = str(arguments.role).upper()
    try:
        entry = JOBS[arguments.job]()
        job = entry.build(arguments)
        if servers != (role.startswith("P") and role[1:].isdigit()):
            kind = "a server role P0..P3" if servers else "a data-holder role such as H1 or EVAL"
            raise DeploymentError(f"--role {role}: `mpbadnet {command}` runs {kind}")
        printed = run_deployed(
            entry, job, role, arguments.config, arguments.run_id, bool(arguments.insecure_testing)
        )
    except Exception as error:  # reported as one line, not a traceback: this is the command's error
        print(f"mpbadnet {command} {role}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if printed:
        print(printed)
    return 0


def run_party_command(arguments: argparse.Namespace) -> int:
    """``mpbadnet party --role P<i> --config FILE JOB ...``: one server of a job."""
    return _run_command("party", arguments, servers=True)


def run_holder_command(arguments: argparse.Namespace) -> int:
    """``mpbadnet holder --role H<j> --config FILE JOB ...``: one data holder of a job."""
    return _run_command("holder", arguments, servers=False)
