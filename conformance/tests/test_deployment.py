"""§12.6 Deployment over TLS: each party in its own process on loopback, mutual TLS 1.3.

Every test generates a fresh cluster (CA, keys, certificates, ``cluster.toml``) in a
temporary directory, picks ephemeral ports, and starts one ``spawn`` process per party.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.expect import raises_exactly
from conformance.loopback import arithmetic_program, free_ports
from fast.arithmetic import mul
from fast.comparison import relu
from fast.deployment import (
    KIND_DATA,
    RunBinding,
    TlsNetwork,
    encode_frame,
    generate_cluster,
    hello_mismatch,
    load_cluster_config,
    run_party_over_tls,
)
from fast.preprocessing import generate_comparison_pool
from fast.ring import dtype_of
from fast.sharing import deal_input, receive_input, receive_revealed, reveal, reveal_to, share_input
from fast.transport import recv_elements
from refimpl.transport import PartyContext, ProtocolAbort, WireFormatError, run_parties

SEED = b"deployment-test-seed"
RUN_ID = bytes(range(16))
PARTIES = 3
TIMEOUT = 8.0


# --- programs (module level: spawn pickles them by name)


def relu_program(ctx: PartyContext) -> list[int]:
    """share_input, a generated comparison pool, one relu, reveal."""
    ring = ctx.ring
    dtype = dtype_of(ring)
    values = np.array([5, ring.modulus - 3, 0, ring.modulus - 1000], dtype=dtype)
    x = share_input(ctx, ring, 2, values if ctx.party == 2 else None, (4,))
    pool = generate_comparison_pool(ctx, ctx.profile, 4)
    return [int(value) for value in reveal(ctx, relu(ctx, x, pool))]


def crashing_program(ctx: PartyContext) -> list[int]:
    """P1 dies (no goodbye, no abort frame) after one multiplication; the others keep going."""
    result = arithmetic_program(ctx)
    if ctx.party == 1:
        os._exit(3)
    return result + arithmetic_program(ctx)


def wrong_length_program(ctx: PartyContext) -> bytes:
    """Each party sends 8 bytes to the next at step 'probe'; P1 sends 7."""
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    ctx.send(following, "probe", bytes(7 if ctx.party == 1 else 8))
    return ctx.recv(preceding, "probe", 8)


def malformed_frame_program(ctx: PartyContext) -> bytes:
    """P1 writes a frame with a bad magic straight onto its socket to P2."""
    network = ctx.network
    assert isinstance(network, TlsNetwork)
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    if ctx.party == 1:
        frame = encode_frame(KIND_DATA, "probe", 1, bytes(8))
        network.outgoing[following].sendall(b"XXXX" + frame[4:])
    else:
        ctx.send(following, "probe", bytes(8))
    return ctx.recv(preceding, "probe", 8)


def wrong_label_program(ctx: PartyContext) -> bytes:
    """Each party sends 8 bytes to the next at step 'probe'; P1 labels its message 'other'."""
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    ctx.send(following, "other" if ctx.party == 1 else "probe", bytes(8))
    return ctx.recv(preceding, "probe", 8)


def wrong_kind_program(ctx: PartyContext) -> bytes:
    """P1 writes a well-formed frame of an unknown kind (7), or a hello after set-up, to P2."""
    network = ctx.network
    assert isinstance(network, TlsNetwork)
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    if ctx.party == 1:
        kind = int(os.environ.get("MPBADNET_TEST_KIND", "7"))
        frame = encode_frame(KIND_DATA, "probe", 1, bytes(8))
        network.outgoing[following].sendall(frame[:5] + bytes([kind]) + frame[6:])
    else:
        ctx.send(following, "probe", bytes(8))
    return ctx.recv(preceding, "probe", 8)


def wrong_element_program(ctx: PartyContext) -> list[int]:
    """P1 sends P2 the byte 67, which is no element of Z_p, where P2 expects one element of Z_p."""
    following, preceding = (ctx.party + 1) % 3, (ctx.party - 1) % 3
    ctx.send(following, "probe", bytes([67 if ctx.party == 1 else 5]))
    return [int(value) for value in recv_elements(ctx, preceding, "probe", ctx.profile.field, 1)]


def secondary_server_program(ctx: PartyContext) -> list[int] | None:
    """Detection's numbering: H1 (party 4) deals to P0-P2, who square and reveal to P3 (party 3)."""
    ring, shape = ctx.ring, (4,)
    if ctx.party == 4:
        deal_input(ctx, ring, np.array([3, 5, 7, 11], dtype=dtype_of(ring)), shape)
        return None
    if ctx.party == 3:
        return [int(value) for value in receive_revealed(ctx, ring, shape)]
    x = receive_input(ctx, ring, 4, shape)
    reveal_to(ctx, mul(ctx, x, x), 3)
    return None


# --------------------------------------------------------------------------- harness


def _party_main(
    program: Callable[[PartyContext], Any], party: int, config: str, results: Any, options: dict[str, Any]
) -> None:
    try:
        pinned = {"seed": SEED, "insecure_testing": True, "run_id": RUN_ID}
        run = run_party_over_tls(program, party, config, **{**pinned, **options})
        results.put((party, "ok", run.output, run.stats.transcript_hash, run.stats.rounds))
    except BaseException as error:
        results.put((party, type(error).__name__, f"{error}\n{traceback.format_exc()}", None, None))


def _cluster(directory: Path, parties: int = PARTIES, connect_timeout: float = TIMEOUT) -> Path:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(parties)]
    return generate_cluster(
        directory, addresses, timeout_seconds=TIMEOUT, connect_timeout_seconds=connect_timeout, profile="wide"
    )


def _run(
    program: Callable[[PartyContext], Any],
    configs: list[Path | None],
    wait_for: list[int] | None = None,
    options: dict[int, dict[str, Any]] | None = None,
) -> dict[int, tuple[str, Any, Any, Any]]:
    """One process per party with ``configs[i]`` (None: not started); collect the parties in ``wait_for``.

    ``options[i]`` overrides keyword arguments of :func:`run_party_over_tls` at party i.
    """
    options = options or {}
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=_party_main,
            args=(program, party, str(config), results, options.get(party, {})),
            daemon=True,
        )
        for party, config in enumerate(configs)
        if config is not None
    ]
    for process in processes:
        process.start()
    expected = set(range(len(configs)) if wait_for is None else wait_for)
    collected: dict[int, tuple[str, Any, Any, Any]] = {}
    deadline = time.monotonic() + 3 * TIMEOUT + 10
    try:
        while not expected <= collected.keys():
            party, kind, output, digest, rounds = results.get(timeout=max(0.1, deadline - time.monotonic()))
            collected[party] = (kind, output, digest, rounds)
    finally:
        for process in processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
    return collected


# --------------------------------------------------------------------------- tests


def test_key_material_and_config(tmp_path: Path) -> None:
    """Private keys are written mode 0600; the TOML names every party's address and fingerprint."""
    config_path = _cluster(tmp_path)
    config = load_cluster_config(config_path)
    assert [entry.role for entry in config.parties] == ["P0", "P1", "P2"]
    for entry in config.parties:
        assert entry.key is not None and entry.key.exists()
        assert stat.S_IMODE(entry.key.stat().st_mode) == 0o600
        assert len(entry.fingerprint) == 64
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    assert config.timeout_seconds == TIMEOUT


def test_private_key_must_be_private(tmp_path: Path) -> None:
    """A key file others can read is refused before anything is opened, with the chmod to fix it."""
    config = load_cluster_config(_cluster(tmp_path))
    key = config.parties[0].key
    assert key is not None
    key.chmod(0o644)
    with raises_exactly(ValueError, match=r"accessible to other users .*chmod 600"):
        TlsNetwork(0, config, RunBinding(RUN_ID, "wide"))


@pytest.mark.parametrize("program", [arithmetic_program, relu_program], ids=["mul", "relu"])
def test_tls_run_matches_in_process(tmp_path: Path, program: Callable[[PartyContext], list[int]]) -> None:
    """Same outputs, transcript hashes and rounds over TLS as with run_parties and the same seed."""
    config = _cluster(tmp_path)
    reference = run_parties(program, parties=PARTIES, profile="wide", seed=SEED)
    collected = _run(program, [config] * PARTIES)
    for party in range(PARTIES):
        kind, output, digest, rounds = collected[party]
        assert kind == "ok", output
        assert output == reference.outputs[party]
        assert digest == reference.stats[party].transcript_hash
        assert rounds == reference.stats[party].rounds


@pytest.mark.parametrize("rogue", ["other-ca", "other-identity"])
def test_wrong_certificate_is_refused(tmp_path: Path, rogue: str) -> None:
    """P1 with another CA's certificate, or with P2's valid one, is refused before any message."""
    config = _cluster(tmp_path / "cluster", connect_timeout=4.0)
    text = config.read_text(encoding="utf-8")
    if rogue == "other-ca":
        other = generate_cluster(tmp_path / "other", ["127.0.0.1:1"] * PARTIES)
        text = text.replace('certificate = "p1.pem"', f'certificate = "{other.parent / "p1.pem"}"')
        text = text.replace('key = "p1.key"', f'key = "{other.parent / "p1.key"}"')
    else:
        text = text.replace('certificate = "p1.pem"', 'certificate = "p2.pem"')
        text = text.replace('key = "p1.key"', 'key = "p2.key"')
    rogue_config = config.parent / "rogue.toml"
    rogue_config.write_text(text, encoding="utf-8")
    collected = _run(arithmetic_program, [config, rogue_config, config], wait_for=[0, 2])
    for party in (0, 2):
        kind, message, digest, _ = collected[party]
        assert kind == "ProtocolAbort", message
        assert digest is None
    # P0 connects to P1 first and meets its certificate; P2 may instead find P0 already gone.
    assert "P1" in collected[0][1]


def test_peer_that_never_connects(tmp_path: Path) -> None:
    """P1 never starts: P0 and P2 raise ProtocolAbort naming it once the connect timeout expires."""
    config = _cluster(tmp_path, connect_timeout=3.0)
    start = time.monotonic()
    collected = _run(arithmetic_program, [config, None, config], wait_for=[0, 2])
    assert time.monotonic() - start < 3.0 + 10
    for party in (0, 2):
        kind, message, digest, _ = collected[party]
        assert kind == "ProtocolAbort", message
        assert "P1" in message and digest is None


def test_disconnect_aborts_naming_the_peer(tmp_path: Path) -> None:
    """A peer that dies mid-run makes the others raise ProtocolAbort naming it, within the timeout."""
    config = _cluster(tmp_path)
    start = time.monotonic()
    collected = _run(crashing_program, [config] * PARTIES, wait_for=[0, 2])
    assert time.monotonic() - start < TIMEOUT + 10
    for party in (0, 2):
        kind, message, _, _ = collected[party]
        assert kind == "ProtocolAbort", message
        assert "P1 disconnected" in message


def test_wrong_length_frame(tmp_path: Path) -> None:
    """A message of the wrong length: WireFormatError naming the peer and the step; the others abort."""
    config = _cluster(tmp_path)
    collected = _run(wrong_length_program, [config] * PARTIES)
    kind, message, _, _ = collected[2]
    assert kind == "WireFormatError", message
    assert "P1" in message and "'probe'" in message
    for party in (0, 1):
        kind, message, _, _ = collected[party]
        assert kind == "ProtocolAbort", message
        assert "P2 failed" in message


def test_malformed_frame(tmp_path: Path) -> None:
    """A frame with a bad header aborts the receiver naming the sender; every honest party stops."""
    config = _cluster(tmp_path)
    collected = _run(malformed_frame_program, [config] * PARTIES)
    kind, message, _, _ = collected[2]
    assert kind == "ProtocolAbort", message
    assert "malformed frame from P1" in message
    assert collected[0][0] == "ProtocolAbort", collected[0][1]
    assert "malformed frame from P1" in collected[0][1]


def test_wrong_step_label(tmp_path: Path) -> None:
    """A message of the wrong step: WireFormatError naming the peer and both labels; the others abort."""
    config = _cluster(tmp_path)
    collected = _run(wrong_label_program, [config] * PARTIES)
    kind, message, _, _ = collected[2]
    assert kind == "WireFormatError", message
    assert "from P1" in message and "'probe'" in message and "'other'" in message
    for party in (0, 1):
        assert collected[party][0] == "ProtocolAbort", collected[party][1]
        assert "P2 failed" in collected[party][1]


@pytest.mark.parametrize("frame_kind", [7, 3], ids=["unknown-kind", "hello-after-set-up"])
def test_wrong_frame_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame_kind: int) -> None:
    """A frame of an unknown kind, or a hello once the run started, aborts naming the sender and the step."""
    monkeypatch.setenv("MPBADNET_TEST_KIND", str(frame_kind))
    config = _cluster(tmp_path)
    collected = _run(wrong_kind_program, [config] * PARTIES)
    kind, message, _, _ = collected[2]
    assert kind == "ProtocolAbort", message
    assert "malformed frame from P1 after step 'key-setup'" in message
    assert collected[0][0] == "ProtocolAbort", collected[0][1]
    assert "malformed frame from P1" in collected[0][1]


@pytest.mark.parametrize(
    "field, value",
    [("run_id", bytes(16)), ("profile", "paper"), ("job", "detect"), ("job_parameters", "00" * 32)],
    ids=["run_id", "profile", "job", "job_parameters"],
)
def test_wrong_run_is_refused_before_any_message(tmp_path: Path, field: str, value: Any) -> None:
    """P1 bound to another run, profile, job or job parameters is refused at the hello, naming the field."""
    config = _cluster(tmp_path, connect_timeout=4.0)
    collected = _run(arithmetic_program, [config] * PARTIES, options={1: {field: value}})
    for party in range(PARTIES):
        kind, message, digest, _ = collected[party]
        assert kind == "ProtocolAbort", message
        assert digest is None
    # P0 and P2 each meet P1 (P0 accepts P1's connection or P1 answers P0's; likewise P2).
    refusals = [collected[party][1].splitlines()[0] for party in range(PARTIES)]
    assert any(f"its {field} is" in refusal for refusal in refusals), refusals
    assert any("P1" in refusal for refusal in (refusals[0], refusals[2])), refusals


def test_element_outside_the_ring(tmp_path: Path) -> None:
    """A well-framed message of the right length whose byte is no Z_p element: WireFormatError, all stop."""
    config = _cluster(tmp_path)
    collected = _run(wrong_element_program, [config] * PARTIES)
    kind, message, _, _ = collected[2]
    assert kind == "WireFormatError", message
    assert "element 67 is outside Zp" in message
    for party in (0, 1):
        assert collected[party][0] == "ProtocolAbort", collected[party][1]
        assert "P2 failed: element 67 is outside Zp" in collected[party][1]


def test_hello_mismatch_names_the_first_field() -> None:
    """The hello comparison reports the first differing field, in a fixed order."""
    ours = {"version": 1, "job": "train", "run_id": "aa", "profile": "wide", "config": "c", "party": 1}
    assert hello_mismatch(dict(ours), dict(ours)) is None
    theirs = {**ours, "profile": "paper", "config": "d"}
    assert hello_mismatch(theirs, ours) == "its profile is 'paper', expected 'wide'"


def test_secondary_server_and_data_holder(tmp_path: Path) -> None:
    """Four servers and a data holder that only connects out, numbered as detection will number them."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(4)]
    config = generate_cluster(
        tmp_path, addresses, holders=["H1"], timeout_seconds=TIMEOUT, connect_timeout_seconds=TIMEOUT
    )
    assert [entry.listens for entry in load_cluster_config(config).parties] == [True] * 4 + [False]
    reference = run_parties(secondary_server_program, parties=5, profile="wide", seed=SEED)
    collected = _run(secondary_server_program, [config] * 5)
    for party in range(5):
        kind, output, digest, rounds = collected[party]
        assert kind == "ok", output
        assert output == reference.outputs[party]
        assert digest == reference.stats[party].transcript_hash
        assert rounds == reference.stats[party].rounds
    assert collected[3][1] == [9, 25, 49, 121]


def test_exceptions_are_the_runtime_ones() -> None:
    """The deployment raises the in-process runtime's exception types."""
    assert issubclass(WireFormatError, ValueError)
    assert issubclass(ProtocolAbort, RuntimeError)
