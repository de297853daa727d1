"""§12.6 Deployment over TLS: one operating-system process per party, mutual TLS 1.3 channels.

:class:`TlsNetwork` is a :class:`refimpl.transport.Network` whose channels are TCP
connections with mutual TLS (standard library :mod:`ssl`), so the unchanged
:class:`refimpl.transport.PartyContext` and all protocol code run over it. Each ordered
pair (i, j) has its own connection, opened by the sender i: a socket is only ever written
by its sender and read by one reader thread at its receiver. Identities are X.509
certificates issued by a cluster CA and pinned by SHA-256 fingerprint in the cluster
configuration (a TOML file). This module lives in ``fast`` because it is an operational
runtime, not part of the readable reference; it uses only ``refimpl.transport``'s
public interface, so both implementations deploy through it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import queue
import socket
import ssl
import struct
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from refimpl.ring import Profile, get_profile
from refimpl.transport import (
    ABORT_SIGNAL,
    DEFAULT_TIMEOUT_SECONDS,
    Envelope,
    Network,
    PartyContext,
    PartyStats,
    ProtocolAbort,
)

Result = TypeVar("Result")

MAGIC = b"MPBN"
VERSION = 1
KIND_DATA = 0
KIND_GOODBYE = 1
KIND_ABORT = 2
HEADER = struct.Struct("<4sBBH")
TRAILER = struct.Struct("<QQ")
MAX_LABEL_BYTES = 1024
MAX_PAYLOAD_BYTES = 1 << 32
DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PartyEntry:
    """§12.6 Deployment over TLS: one party's address and public identity."""

    index: int
    host: str
    port: int
    certificate: Path
    fingerprint: str
    key: Path | None


@dataclass(frozen=True)
class ClusterConfig:
    """§12.6 Deployment over TLS: the cluster configuration read from TOML."""

    ca: Path
    parties: tuple[PartyEntry, ...]
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    profile: str = "wide"


def certificate_fingerprint(der: bytes) -> str:
    """§12.6 Deployment over TLS: the SHA-256 fingerprint (lower-case hex) of a DER certificate."""
    return hashlib.sha256(der).hexdigest()


def load_cluster_config(path: Path | str) -> ClusterConfig:
    """§12.6 Deployment over TLS: read a cluster TOML file; relative paths are relative to it."""
    path = Path(path)
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    base = path.parent
    cluster = data.get("cluster", {})
    entries = []
    for position, table in enumerate(data.get("party", [])):
        index = int(table["index"])
        if index != position:
            raise ValueError(f"{path}: party tables must be listed in order P0, P1, ...; got P{index}")
        host, _, port = str(table["address"]).rpartition(":")
        key = table.get("key")
        entries.append(
            PartyEntry(
                index,
                host,
                int(port),
                base / str(table["certificate"]),
                str(table["fingerprint"]).lower().replace(":", ""),
                None if key is None else base / str(key),
            )
        )
    if len(entries) < 2:
        raise ValueError(f"{path}: a cluster needs at least two parties")
    return ClusterConfig(
        base / str(cluster["ca"]),
        tuple(entries),
        float(cluster.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        float(cluster.get("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT_SECONDS)),
        str(cluster.get("profile", "wide")),
    )


def generate_cluster(
    directory: Path | str,
    addresses: Sequence[str],
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    profile: str = "wide",
    valid_days: int = 365,
) -> Path:
    """§12.6 Deployment over TLS: a cluster CA, a key and certificate per party, and ``cluster.toml``.

    Writes ``ca.pem``, ``ca.key``, ``p<i>.pem`` and ``p<i>.key`` (private keys mode 0600)
    into ``directory`` and returns the path of the configuration. In a real deployment
    each host keeps only its own ``p<i>.key``; ``ca.key`` is kept offline.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=valid_days)

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.chmod(path, 0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MP-BADNet cluster CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_key(directory / "ca.key", ca_key)
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    lines = [
        "[cluster]",
        'ca = "ca.pem"',
        f"timeout_seconds = {float(timeout_seconds)}",
        f"connect_timeout_seconds = {float(connect_timeout_seconds)}",
        f'profile = "{profile}"',
    ]
    for index, address in enumerate(addresses):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"P{index}"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name.lower())]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_key(directory / f"p{index}.key", key)
        (directory / f"p{index}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fingerprint = certificate_fingerprint(cert.public_bytes(serialization.Encoding.DER))
        lines += [
            "",
            "[[party]]",
            f"index = {index}",
            f'address = "{address}"',
            f'certificate = "p{index}.pem"',
            f'fingerprint = "{fingerprint}"',
            f'key = "p{index}.key"',
        ]
    config = directory / "cluster.toml"
    temporary = directory / "cluster.toml.tmp"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, config)
    return config


# --------------------------------------------------------------------------- framing


def encode_frame(kind: int, step: str, depth: int, payload: bytes) -> bytes:
    """§12.6 Deployment over TLS: header (magic, version, kind, label) + depth, length, payload."""
    label = step.encode("ascii")
    if len(label) > MAX_LABEL_BYTES:
        raise ValueError(f"step label of {len(label)} bytes is too long")
    return HEADER.pack(MAGIC, VERSION, kind, len(label)) + label + TRAILER.pack(depth, len(payload)) + payload


class FrameError(Exception):
    """§12.6 Deployment over TLS: a malformed frame (turned into an abort naming the peer)."""


def _read_exact(sock: ssl.SSLSocket, count: int) -> bytes | None:
    """``count`` bytes, or None on a clean end of stream before the first byte."""
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(min(count - len(chunks), 1 << 20))
        if not chunk:
            if not chunks:
                return None
            raise FrameError(f"connection closed inside a frame ({len(chunks)} of {count} bytes)")
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: ssl.SSLSocket) -> tuple[int, str, int, bytes] | None:
    """§12.6 Deployment over TLS: the next frame (kind, step, depth, payload); None at end of stream."""
    header = _read_exact(sock, HEADER.size)
    if header is None:
        return None
    magic, version, kind, label_length = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}")
    if version != VERSION:
        raise FrameError(f"unsupported version {version}")
    if kind not in (KIND_DATA, KIND_GOODBYE, KIND_ABORT):
        raise FrameError(f"unknown frame kind {kind}")
    if label_length > MAX_LABEL_BYTES:
        raise FrameError(f"step label length {label_length} exceeds {MAX_LABEL_BYTES}")
    rest = _read_exact(sock, label_length + TRAILER.size)
    if rest is None:
        raise FrameError("connection closed inside a frame")
    try:
        step = rest[:label_length].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("step label is not ASCII") from None
    depth, length = TRAILER.unpack(rest[label_length:])
    if length > MAX_PAYLOAD_BYTES:
        raise FrameError(f"payload length {length} exceeds {MAX_PAYLOAD_BYTES}")
    payload = _read_exact(sock, length) if length else b""
    if payload is None:
        raise FrameError("connection closed inside a frame")
    return kind, step, depth, payload


# --------------------------------------------------------------------------- network


class _Outbox(queue.Queue[Envelope]):
    """The sending end of channel (party, peer): ``put`` writes a frame to the peer's socket."""

    def __init__(self, network: TlsNetwork, peer: int) -> None:
        super().__init__()
        self.network = network
        self.peer = peer

    def put(self, item: Envelope, block: bool = True, timeout: float | None = None) -> None:
        if item is ABORT_SIGNAL:
            return
        self.network.send_frame(self.peer, KIND_DATA, item.step, item.depth, item.payload)


class TlsNetwork(Network):
    """§12.6 Deployment over TLS: party ``party``'s channels to every peer, over mutual TLS 1.3.

    Call :meth:`connect` before running protocol code and :meth:`finish` then :meth:`close`
    after it. ``queues[(party, peer)]`` writes to the peer; ``queues[(peer, party)]`` is fed
    by a reader thread.
    """

    def __init__(self, party: int, config: ClusterConfig) -> None:
        super().__init__(len(config.parties), config.timeout_seconds)
        if not 0 <= party < self.parties:
            raise ValueError(f"party {party} is not in the cluster of {self.parties}")
        self.party = party
        self.config = config
        self.peers = [peer for peer in range(self.parties) if peer != party]
        for peer in self.peers:
            self.queues[(party, peer)] = _Outbox(self, peer)
        self.outgoing: dict[int, ssl.SSLSocket] = {}
        self.incoming: dict[int, ssl.SSLSocket] = {}
        self.send_locks = {peer: threading.Lock() for peer in self.peers}
        self.goodbyes = {peer: threading.Event() for peer in self.peers}
        self.last_step = {peer: "" for peer in self.peers}
        self.refusals: list[str] = []
        self.readers: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._closed = False
        self._abort_lock = threading.Lock()
        me = config.parties[party]
        if me.key is None:
            raise ValueError(f"the configuration names no private key for P{party}")
        self.server_context = self._context(ssl.PROTOCOL_TLS_SERVER, me)
        self.server_context.num_tickets = 0
        self.client_context = self._context(ssl.PROTOCOL_TLS_CLIENT, me)
        self.client_context.check_hostname = False
        self.fingerprints = {entry.fingerprint: entry.index for entry in config.parties}
        self.barrier = threading.Barrier(1)

    def _context(self, protocol: int, me: PartyEntry) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.config.ca))
        assert me.key is not None
        context.load_cert_chain(str(me.certificate), str(me.key))
        return context

    # ------------------------------------------------------------------ set-up

    def connect(self) -> None:
        """§12.6 Deployment over TLS: listen, connect to every peer, accept one connection from each.

        Raises :class:`ProtocolAbort` if a peer is not connected within the connect timeout
        or presents a certificate other than the one pinned for it.
        """
        me = self.config.parties[self.party]
        deadline = time.monotonic() + self.config.connect_timeout_seconds
        listener = socket.create_server((me.host, me.port), reuse_port=False)
        listener.settimeout(0.1)
        self._listener = listener
        acceptor_error: list[BaseException] = []

        def accept_all() -> None:
            try:
                self._accept_all(listener, deadline)
            except BaseException as error:
                acceptor_error.append(error)

        acceptor = threading.Thread(target=accept_all, name=f"P{self.party}-accept", daemon=True)
        acceptor.start()
        try:
            for peer in self.peers:
                self.outgoing[peer] = self._connect_to(peer, deadline)
        except BaseException:
            self._closed = True
            acceptor.join()
            self.close()
            raise
        acceptor.join()
        listener.close()
        self._listener = None
        if acceptor_error:
            self.close()
            raise acceptor_error[0]
        for peer in self.peers:
            reader = threading.Thread(
                target=self._read_loop, args=(peer,), name=f"P{self.party}-from-P{peer}", daemon=True
            )
            reader.start()
            self.readers.append(reader)

    def _connect_to(self, peer: int, deadline: float) -> ssl.SSLSocket:
        entry = self.config.parties[peer]
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            remaining = max(0.05, deadline - time.monotonic())
            try:
                raw = socket.create_connection((entry.host, entry.port), timeout=remaining)
            except OSError as error:
                last_error = error
                time.sleep(0.05)
                continue
            try:
                tls = self.client_context.wrap_socket(raw, server_hostname=None)
            except (ssl.SSLError, OSError) as error:
                raw.close()
                raise ProtocolAbort(
                    f"P{self.party}: TLS handshake with P{peer} at {entry.host}:{entry.port} failed: {error}"
                ) from None
            der = tls.getpeercert(binary_form=True)
            if der is None or certificate_fingerprint(der) != entry.fingerprint:
                tls.close()
                raise ProtocolAbort(
                    f"P{self.party}: refused P{peer} at {entry.host}:{entry.port}: "
                    "its certificate is not the one pinned in the cluster configuration"
                )
            tls.settimeout(None)
            tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return tls
        raise ProtocolAbort(
            f"P{self.party}: could not connect to P{peer} at {entry.host}:{entry.port} within "
            f"{self.config.connect_timeout_seconds} s: {last_error}"
        )

    def _accept_all(self, listener: socket.socket, deadline: float) -> None:
        while len(self.incoming) < len(self.peers):
            if self._closed:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(f"P{peer}" for peer in self.peers if peer not in self.incoming)
                refused = f"; refused: {'; '.join(self.refusals)}" if self.refusals else ""
                raise ProtocolAbort(
                    f"P{self.party}: no authenticated connection from {missing} within "
                    f"{self.config.connect_timeout_seconds} s{refused}"
                )
            try:
                raw, address = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                tls = self.server_context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as error:
                raw.close()
                self.refusals.append(f"a peer at {address[0]}:{address[1]} failed the TLS handshake: {error}")
                continue
            der = tls.getpeercert(binary_form=True)
            peer = None if der is None else self.fingerprints.get(certificate_fingerprint(der))
            if peer is None or peer == self.party or peer in self.incoming:
                tls.close()
                self.refusals.append(
                    f"a peer at {address[0]}:{address[1]} presented a certificate not pinned for any "
                    "expected party"
                )
                continue
            tls.settimeout(None)
            self.incoming[peer] = tls

    # ------------------------------------------------------------------ traffic

    def send_frame(self, peer: int, kind: int, step: str, depth: int, payload: bytes) -> None:
        """§12.6 Deployment over TLS: write one frame to ``peer``; a failure aborts naming peer and step."""
        frame = encode_frame(kind, step, depth, payload)
        try:
            with self.send_locks[peer]:
                if self.aborted.is_set():
                    raise ProtocolAbort(f"P{self.party} aborted at step {step!r}: {self.abort_reason}")
                self.outgoing[peer].sendall(frame)
        except (OSError, KeyError, ValueError) as error:
            if self.aborted.is_set():
                raise ProtocolAbort(f"P{self.party} aborted at step {step!r}: {self.abort_reason}") from None
            reason = f"connection to P{peer} failed sending step {step!r}: {error}"
            self.abort(reason)
            raise ProtocolAbort(f"P{self.party}: {reason}") from None

    def _read_loop(self, peer: int) -> None:
        sock = self.incoming[peer]
        channel = self.queues[(peer, self.party)]
        while True:
            try:
                frame = read_frame(sock)
            except FrameError as error:
                self.abort(f"malformed frame from P{peer} after step {self.last_step[peer]!r}: {error}")
                return
            except (OSError, ValueError) as error:
                if not self.goodbyes[peer].is_set() and not self._closed:
                    self.abort(f"connection from P{peer} failed after step {self.last_step[peer]!r}: {error}")
                return
            if frame is None:
                if not self.goodbyes[peer].is_set() and not self._closed:
                    self.abort(f"P{peer} disconnected after step {self.last_step[peer]!r}")
                return
            kind, step, depth, payload = frame
            if kind == KIND_DATA:
                self.last_step[peer] = step
                channel.put(Envelope(step, depth, payload))
            elif kind == KIND_GOODBYE:
                self.goodbyes[peer].set()
            else:
                self.abort(f"P{peer} aborted: {payload.decode('utf-8', 'replace')}")

    def abort(self, reason: str) -> None:
        """§12.6 Deployment over TLS: tell every peer (best effort), then abort locally.

        The abort frames are written before the local flag is set, so that the party's own
        thread, woken by the flag, cannot close the sockets under them.
        """
        with self._abort_lock:
            if self.aborted.is_set():
                return
            self.abort_reason = reason
            message = reason.encode("utf-8")[:65536]
            for peer in self.peers:
                if peer in self.outgoing and not self._closed:
                    try:
                        with self.send_locks[peer]:
                            self.outgoing[peer].sendall(encode_frame(KIND_ABORT, "", 0, message))
                    except (OSError, ValueError):
                        pass
            super().abort(reason)

    def finish(self) -> None:
        """§12.6 Deployment over TLS: say goodbye to every peer and wait for theirs."""
        for peer in self.peers:
            self.send_frame(peer, KIND_GOODBYE, "", 0, b"")
        deadline = time.monotonic() + self.timeout_seconds
        for peer in self.peers:
            while not self.goodbyes[peer].wait(0.05):
                if self.aborted.is_set():
                    raise ProtocolAbort(f"P{self.party} aborted at the end: {self.abort_reason}")
                if time.monotonic() > deadline:
                    raise ProtocolAbort(f"P{self.party} timed out waiting for P{peer}'s goodbye")
        if self.aborted.is_set():
            raise ProtocolAbort(f"P{self.party} aborted at the end: {self.abort_reason}")

    def close(self) -> None:
        """Close every socket (idempotent)."""
        self._closed = True
        with self._abort_lock:
            for peer, sock in self.outgoing.items():
                with self.send_locks[peer], contextlib.suppress(OSError):
                    sock.close()
            for sock in self.incoming.values():
                with contextlib.suppress(OSError):
                    sock.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def run_party_over_tls(
    program: Callable[[PartyContext], Result],
    party: int,
    config: ClusterConfig | Path | str,
    *,
    profile: Profile | str | None = None,
    seed: bytes | None = None,
    keep_transcript: bool = False,
) -> tuple[Result, PartyStats]:
    """§12.6 Deployment over TLS: run ``program`` as party ``party`` in this process.

    Connects to every peer, runs §3 key setup with ``seed`` then ``program(ctx)``, says
    goodbye, and returns the output and this party's :class:`PartyStats`. Any error aborts
    every peer and is re-raised here.
    """
    from refimpl.randomness import setup_keys

    chosen_config = config if isinstance(config, ClusterConfig) else load_cluster_config(config)
    chosen = profile if profile is not None else chosen_config.profile
    chosen_profile = get_profile(chosen) if isinstance(chosen, str) else chosen
    network = TlsNetwork(party, chosen_config)
    network.connect()
    ctx = PartyContext(party, network, chosen_profile, keep_transcript)
    try:
        try:
            setup_keys(ctx, seed)
            output = program(ctx)
        except BaseException as error:
            network.abort(f"P{party} failed: {error}")
            raise
        network.finish()
    finally:
        network.close()
    return output, ctx.stats
