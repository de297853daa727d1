"""§12.6 Deployment over TLS: what a deployed party refuses (issue 12).

Keys pinned without the insecure-testing setting; an idle connection that would stall the
accept loop; a frame announcing more than the receiver's limit; unbounded receive queues;
malformed hellos. The parties run as threads of this process over loopback TLS, so every
test takes seconds.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.expect import raises_exactly
from conformance.loopback import arithmetic_program, free_ports
from fast import cli
from fast.deployment import (
    DEFAULT_MAX_MESSAGE_BYTES,
    HEADER,
    KIND_ABORT,
    KIND_DATA,
    KIND_HELLO,
    MAGIC,
    MAX_HELLO_BYTES,
    QUEUE_SLACK_BYTES,
    RECEIVE_QUEUE_MESSAGES,
    TRAILER,
    VERSION,
    BoundedInbox,
    FrameError,
    PinnedKeysError,
    RunBinding,
    TlsNetwork,
    canonical_json,
    encode_frame,
    generate_cluster,
    json_depth,
    load_cluster_config,
    read_frame,
    run_party_over_tls,
)
from refimpl.transport import ABORT_SIGNAL, Envelope, PartyContext, run_parties

SEED = b"hygiene-test-seed"
RUN_ID = bytes(range(16))
TIMEOUT = 8.0
HANDSHAKE_TIMEOUT = 6.0
LIMIT = 4096


# --------------------------------------------------------------------------- programs


def oversize_program(ctx: PartyContext) -> bytes:
    """A message of exactly LIMIT bytes around the ring; then P1 announces LIMIT + 1 to P2, with no body."""
    network = ctx.network
    assert isinstance(network, TlsNetwork)
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    ctx.send(following, "full", bytes(LIMIT))
    ctx.recv(preceding, "full", LIMIT)
    if ctx.party == 1:
        header = encode_frame(KIND_DATA, "probe", 2, b"")[: -TRAILER.size] + TRAILER.pack(2, LIMIT + 1)
        network.outgoing[following].sendall(header)
    else:
        ctx.send(following, "probe", bytes(8))
    return ctx.recv(preceding, "probe", 8)


# --------------------------------------------------------------------------- harness


def _cluster(directory: Path, servers: int = 3, holders: tuple[str, ...] = ()) -> Path:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(servers)]
    return generate_cluster(
        directory,
        addresses,
        holders=holders,
        timeout_seconds=TIMEOUT,
        connect_timeout_seconds=TIMEOUT,
        handshake_timeout_seconds=HANDSHAKE_TIMEOUT,
    )


Outcome = tuple[str, Any]


def _start(
    program: Callable[[PartyContext], Any],
    party: int,
    config: Path,
    outcomes: dict[int, Outcome],
    **options: Any,
) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[party] = (
                "ok",
                run_party_over_tls(program, party, config, run_id=RUN_ID, **options).output,
            )
        except Exception as error:
            outcomes[party] = (type(error).__name__, str(error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _finish(threads: list[threading.Thread], outcomes: dict[int, Outcome]) -> dict[int, Outcome]:
    for thread in threads:
        thread.join(3 * TIMEOUT)
        assert not thread.is_alive(), f"a party is still running: {outcomes}"
    return outcomes


def _run(
    program: Callable[[PartyContext], Any], config: Path, options: dict[int, dict[str, Any]]
) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    threads = [_start(program, party, config, outcomes, **options[party]) for party in sorted(options)]
    return _finish(threads, outcomes)


def _wait_listening(port: int) -> socket.socket:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.02)


PINNED = {"seed": SEED, "insecure_testing": True}


# --------------------------------------------------------------------------- keys


def test_pinned_keys_are_refused_without_the_setting(tmp_path: Path) -> None:
    """A seed without insecure_testing, or the setting without a seed: PinnedKeysError before any socket."""
    config = _cluster(tmp_path)
    with raises_exactly(PinnedKeysError, match=r"pinned keys \(a seed\) are refused") as raised:
        run_party_over_tls(arithmetic_program, 0, config, run_id=RUN_ID, seed=SEED)
    assert type(raised.value) is PinnedKeysError
    with raises_exactly(PinnedKeysError, match="only goes with pinned keys") as raised:
        run_party_over_tls(arithmetic_program, 0, config, run_id=RUN_ID, insecure_testing=True)
    assert type(raised.value) is PinnedKeysError


def test_pinned_keys_accepted_with_the_setting_at_every_party(tmp_path: Path) -> None:
    """With insecure_testing at all three, the TLS run equals the in-process run with the same seed."""
    config = _cluster(tmp_path)
    reference = run_parties(arithmetic_program, parties=3, profile="wide", seed=SEED)
    outcomes = _run(arithmetic_program, config, dict.fromkeys(range(3), PINNED))
    assert outcomes == {party: ("ok", reference.outputs[party]) for party in range(3)}


def test_mixed_cluster_refuses_to_run(tmp_path: Path) -> None:
    """P1 pins its keys for testing, P0 and P2 draw theirs from the OS: refused at the hello."""
    config = _cluster(tmp_path)
    outcomes = _run(arithmetic_program, config, {0: {}, 1: PINNED, 2: {}})
    assert {kind for kind, _ in outcomes.values()} == {"ProtocolAbort"}, outcomes
    messages = [message for _, message in outcomes.values()]
    assert any("its insecure_testing is" in message for message in messages), messages


def test_commands_refuse_pinned_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`party` and `holder` refuse --seed without --insecure-testing, and the setting without --seed."""
    config = str(_cluster(tmp_path, holders=("H1", "EVAL")))
    train = ["train", "--holders", "1", "--malicious", "0", "--layers", "784,16,10"]
    cases = [
        (["party", "--role", "P0", "--config", config, *train, "--seed", "5"], "pinned keys"),
        (["holder", "--role", "H1", "--config", config, *train, "--seed", "5"], "pinned keys"),
        (["party", "--role", "P0", "--config", config, *train, "--insecure-testing"], "only goes with"),
    ]
    for arguments, expected in cases:
        assert cli.main(arguments) == 1, arguments
        error = capsys.readouterr().err
        assert expected in error and "--insecure-testing" in error, error


def test_in_process_commands_warn_about_pinned_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """`mpbadnet demo` (like train, detect and table1) prints the warning on stderr with --seed only."""
    small = ["demo", "--rows", "2", "--inner", "3", "--columns", "2"]
    assert cli.main([*small, "--seed", "1"]) == 0
    assert cli.PINNED_KEYS_WARNING in capsys.readouterr().err
    assert cli.main(small) == 0
    assert cli.PINNED_KEYS_WARNING not in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("MPBADNET_MNIST_DIR"), reason="needs MNIST")
def test_train_warns_about_pinned_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mpbadnet train --seed` runs (tests keep it) and says on stderr that the keys are pinned."""
    arguments = ["train", "--train-records", "8", "--test-records", "4", "--holders", "1", "--malicious", "0"]
    arguments += ["--batch-size", "4", "--epochs", "1", "--quiet", "--output", str(tmp_path), "--seed", "1"]
    assert cli.main(arguments) == 0
    assert cli.PINNED_KEYS_WARNING in capsys.readouterr().err


# --------------------------------------------------------------------------- transport


def test_idle_connection_does_not_stall_the_servers(tmp_path: Path) -> None:
    """A raw TCP connection that sends nothing, opened to P0 before its peers: the run still completes.

    Its handshake waits in its own thread; P1 and P2 connect meanwhile, well within the
    handshake timeout the idle connection holds.
    """
    config = _cluster(tmp_path)
    port = load_cluster_config(config).parties[0].port
    assert port is not None
    outcomes: dict[int, Outcome] = {}
    started = time.monotonic()
    threads = [_start(arithmetic_program, 0, config, outcomes)]
    idle = _wait_listening(port)
    try:
        threads += [_start(arithmetic_program, party, config, outcomes) for party in (1, 2)]
        _finish(threads, outcomes)
        elapsed = time.monotonic() - started
    finally:
        idle.close()
    assert [outcomes[party][0] for party in range(3)] == ["ok"] * 3, outcomes
    assert outcomes[0][1] == [6, 20, 42, 88]
    assert elapsed < HANDSHAKE_TIMEOUT, elapsed


def test_oversize_frame_is_refused_before_its_payload(tmp_path: Path) -> None:
    """A header announcing LIMIT + 1 bytes and no body: the receiver aborts at once naming the sender."""
    config = _cluster(tmp_path)
    started = time.monotonic()
    outcomes = _run(oversize_program, config, {party: {"max_message_bytes": LIMIT} for party in range(3)})
    assert time.monotonic() - started < TIMEOUT
    kind, message = outcomes[2]
    assert kind == "ProtocolAbort", message
    assert "malformed frame from P1" in message
    assert f"announces {LIMIT + 1} payload bytes at step 'probe', the limit is {LIMIT}" in message
    assert outcomes[0][0] == "ProtocolAbort", outcomes[0]


def test_read_frame_limits_by_kind() -> None:
    """Data frames up to the caller's limit; hellos up to MAX_HELLO_BYTES whatever the data limit."""
    left, right = socket.socketpair()
    try:
        right.sendall(
            encode_frame(KIND_HELLO, "hello", 0, bytes(100)) + encode_frame(KIND_DATA, "x", 1, bytes(9))
        )
        tls_like: Any = left
        assert read_frame(tls_like, 0, time.monotonic() + 5) == (KIND_HELLO, "hello", 0, bytes(100))
        with raises_exactly(
            FrameError, match="announces 9 payload bytes at step 'x', the limit is 8"
        ) as raised:
            read_frame(tls_like, 8)
        assert type(raised.value) is FrameError
    finally:
        left.close()
        right.close()


def test_receive_queue_is_bounded() -> None:
    """The reader waits while the queue holds its capacity; a get makes room; a stop releases it."""
    inbox = BoundedInbox(1000, lambda: stopped.is_set())
    stopped = threading.Event()
    inbox.put(Envelope("a", 1, bytes(600)))
    second = threading.Thread(target=inbox.put, args=(Envelope("b", 2, bytes(600)),), daemon=True)
    second.start()
    second.join(0.5)
    assert second.is_alive() and inbox.qsize() == 1
    assert inbox.get(timeout=1).step == "a"
    second.join(2)
    assert not second.is_alive() and inbox.get(timeout=1).step == "b"
    inbox.put(Envelope("c", 3, bytes(900)))
    inbox.put(ABORT_SIGNAL)  # never charged, never waits
    stuck = threading.Thread(target=inbox.put, args=(Envelope("d", 4, bytes(900)),), daemon=True)
    stuck.start()
    stopped.set()
    stuck.join(2)
    assert not stuck.is_alive() and inbox.qsize() == 2


def test_network_queues_hold_a_few_largest_messages(tmp_path: Path) -> None:
    """Every receive queue of a TlsNetwork is bounded by RECEIVE_QUEUE_MESSAGES frames of its limit."""
    config = load_cluster_config(_cluster(tmp_path))
    network = TlsNetwork(0, config, RunBinding(RUN_ID, "wide"), max_message_bytes=LIMIT)
    default = TlsNetwork(0, config, RunBinding(RUN_ID, "wide"))
    for peer in (1, 2):
        inbox = network.queues[(peer, 0)]
        assert isinstance(inbox, BoundedInbox)
        assert inbox.capacity == RECEIVE_QUEUE_MESSAGES * LIMIT + QUEUE_SLACK_BYTES
        assert default.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES


# --------------------------------------------------------------------------- hellos


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _hello(**changes: Any) -> dict[str, Any]:
    """A well-formed hello of H1 (party 1) for the run of _server."""
    hello: dict[str, Any] = RunBinding(RUN_ID, "wide", roles=("P0", "H1")).hello(1, CONFIG[0])
    hello["announcement"] = None
    hello.update(changes)
    return hello


CONFIG: list[Any] = []
MALFORMED: dict[str, tuple[bytes, str]] = {
    "nested-array": (_nested(30000), "nested deeper than 8 levels"),
    "nested-announcement": (b"", "nested deeper than 8 levels"),
    "not-json": (b"{hello", "not UTF-8 JSON"),
    "not-utf8": (b'{"a":"\xff"}', "not UTF-8 JSON"),
    "not-object": (b"[1, 2]", "not a JSON object"),
    "missing-field": (b"", "missing fields ['run_id']"),
    "unknown-field": (b"", "unknown fields ['extra']"),
    "party-as-string": (b"", "party is not a JSON int"),
    "party-as-bool": (b"", "party is not a JSON int"),
    "testing-as-int": (b"", "insecure_testing is not a JSON bool"),
    "roles-of-ints": (b"", "roles is not a list of strings"),
    "oversize": (b" " * (MAX_HELLO_BYTES + 1), f"the limit is {MAX_HELLO_BYTES}"),
}


def _malformed(case: str) -> bytes:
    payload, _ = MALFORMED[case]
    if payload:
        return payload
    if case == "nested-announcement":
        return canonical_json(_hello(announcement=json.loads(_nested(9))))
    hello = _hello()
    if case == "missing-field":
        del hello["run_id"]
    changes: dict[str, dict[str, object]] = {
        "unknown-field": {"extra": 1},
        "party-as-string": {"party": "1"},
        "party-as-bool": {"party": True},
        "testing-as-int": {"insecure_testing": 0},
        "roles-of-ints": {"roles": [0, 1]},
    }
    hello.update(changes.get(case, {}))
    return canonical_json(hello)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, dict[int, Outcome], threading.Thread]]:
    """P0 of a run with one data holder H1, connecting in a thread; yields its config and outcome."""
    config = _cluster(tmp_path, servers=1, holders=("H1",))
    CONFIG[:] = [load_cluster_config(config)]
    outcomes: dict[int, Outcome] = {}
    thread = _start(arithmetic_program, 0, config, outcomes, roles=("P0", "H1"))
    yield config, outcomes, thread
    thread.join(3 * TIMEOUT)


def _as_holder(config: Path, payload: bytes) -> bytes:
    """Connect as H1 (its own pinned certificate), send ``payload`` as the hello; the abort reason."""
    cluster = load_cluster_config(config)
    me, server = cluster.entry("H1"), cluster.entry("P0")
    assert me.key is not None and server.port is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(cluster.ca))
    context.load_cert_chain(str(me.certificate), str(me.key))
    raw = _wait_listening(server.port)
    with context.wrap_socket(raw, server_hostname=None) as tls:
        header = HEADER.pack(MAGIC, VERSION, KIND_HELLO, 5) + b"hello" + TRAILER.pack(0, len(payload))
        tls.sendall(header + payload[:MAX_HELLO_BYTES])
        tls.settimeout(TIMEOUT)
        reply = read_frame(tls, 0, time.monotonic() + TIMEOUT)
    assert reply is not None and reply[0] == KIND_ABORT, reply
    return reply[3]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_hello_is_refused_as_a_hello(
    server: tuple[Path, dict[int, Outcome], threading.Thread], case: str
) -> None:
    """Every malformed hello: P0 stops with ProtocolAbort naming H1 and what is wrong, and tells H1 so."""
    config, outcomes, thread = server
    reason = _as_holder(config, _malformed(case)).decode("utf-8")
    thread.join(3 * TIMEOUT)
    kind, message = outcomes[0]
    assert kind == "ProtocolAbort", message
    expected = MALFORMED[case][1]
    assert message.startswith("P0 refused P1 (H1): malformed hello: ") and expected in message, message
    assert reason == message


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": "[[[[", "b": [1, {"c": []}]}') == 4
    assert json_depth(b'"\\"[["') == 0


# --------------------------------------------------------------------------- message bounds


@pytest.fixture
def largest_sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The largest payload sent at each step while the test runs (PartyContext.send instrumented)."""
    largest: dict[str, int] = {}
    send = PartyContext.send

    def recording(self: PartyContext, to: int, step: str, payload: bytes) -> None:
        largest[step] = max(largest.get(step, 0), len(payload))
        send(self, to, step, payload)

    monkeypatch.setattr(PartyContext, "send", recording)
    return largest


def _parsed_train(arguments: list[str]) -> Any:
    import argparse

    from fast.deploy_cli import _add_train, _build_train

    parser = argparse.ArgumentParser()
    _add_train(parser.add_subparsers(dest="job"))
    return _build_train(parser.parse_args(arguments))


@pytest.mark.skipif(not os.environ.get("MPBADNET_MNIST_DIR"), reason="needs MNIST")
def test_job_bounds_cover_every_message(tmp_path: Path, largest_sent: dict[str, int]) -> None:
    """A small training job and a detection on its model: no message exceeds the job's bound.

    The bound is tight for these jobs (the dealt data sets are their largest messages).
    """
    from fast.deploy_cli import DeployedDetection, detection_largest_message, training_largest_message
    from fast.detection import DetectionSettings
    from fast.detection_job import DetectJob, run_detection
    from fast.pipeline import run_training
    from refimpl.training import Architecture

    train = ["train", "--holders", "2", "--malicious", "0", "--layers", "784,16,10", "--train-records", "256"]
    job = _parsed_train(
        [*train, "--test-records", "100", "--epochs", "1", "--quiet", "--output", str(tmp_path)]
    )
    run_training(job)
    bound = training_largest_message(job)
    assert max(largest_sent.values()) <= bound <= 2 * max(largest_sent.values()), (bound, largest_sent)
    largest_sent.clear()
    detection = DetectJob(
        model_directory=str(tmp_path),
        settings=DetectionSettings(max_steps=2),
        labels=(1, 0),
        images=64,
        output=str(tmp_path / "detection"),
        quiet=True,
        figures=False,
    )
    run_detection(detection)
    deployed = DeployedDetection(detection, job.profile, Architecture((784, 16, 10)), None)
    bound = detection_largest_message(deployed)
    assert max(largest_sent.values()) <= bound <= 2 * max(largest_sent.values()), (bound, largest_sent)
