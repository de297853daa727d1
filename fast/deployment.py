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
import json
import os
import queue
import re
import socket
import ssl
import struct
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

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
KIND_HELLO = 3
KINDS = (KIND_DATA, KIND_GOODBYE, KIND_ABORT, KIND_HELLO)
HELLO_VERSION = 1
MAX_HELLO_BYTES = 1 << 16
HEADER = struct.Struct("<4sBBH")
TRAILER = struct.Struct("<QQ")
MAX_LABEL_BYTES = 1024
MAX_PAYLOAD_BYTES = 1 << 32
DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0
ABORT_GRACE_SECONDS = 1.0
ROLE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PartyEntry:
    """§12.6 Deployment over TLS: one role's public identity and, for a server, its address.

    ``host`` and ``port`` are None for a role that only connects out (a data holder).
    """

    role: str
    host: str | None
    port: int | None
    certificate: Path
    fingerprint: str
    key: Path | None

    @property
    def listens(self) -> bool:
        """True for a role with an address (a server), which accepts connections."""
        return self.host is not None and self.port is not None

    def public(self) -> dict[str, object]:
        """The fields every host's copy of the configuration must agree on."""
        address = f"{self.host}:{self.port}" if self.listens else None
        return {"role": self.role, "address": address, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class ClusterConfig:
    """§12.6 Deployment over TLS: the cluster configuration read from TOML."""

    ca: Path
    parties: tuple[PartyEntry, ...]
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    profile: str = "wide"
    ca_fingerprint: str = ""

    def entry(self, role: str) -> PartyEntry:
        """The entry of ``role``; ValueError naming the known roles if there is none."""
        for entry in self.parties:
            if entry.role == role:
                return entry
        known = ", ".join(entry.role for entry in self.parties)
        raise ValueError(f"role {role!r} is not in the cluster configuration (roles: {known})")

    @property
    def digest(self) -> str:
        """§12.6 Deployment over TLS: SHA-256 of the public configuration (the hello's ``config``).

        Covers the CA certificate, every role's address and fingerprint and both timeouts;
        not the profile (the hello carries it separately) and not local key paths.
        """
        public = {
            "ca": self.ca_fingerprint,
            "parties": [entry.public() for entry in self.parties],
            "timeout_seconds": self.timeout_seconds,
            "connect_timeout_seconds": self.connect_timeout_seconds,
        }
        return hashlib.sha256(canonical_json(public)).hexdigest()


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: the form that is hashed and sent in hellos."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def certificate_fingerprint(der: bytes) -> str:
    """§12.6 Deployment over TLS: the SHA-256 fingerprint (lower-case hex) of a DER certificate."""
    return hashlib.sha256(der).hexdigest()


def _pem_fingerprint(path: Path) -> str:
    return certificate_fingerprint(ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii")))


def load_cluster_config(path: Path | str) -> ClusterConfig:
    """§12.6 Deployment over TLS: read a cluster TOML file; relative paths are relative to it.

    Raises ValueError naming the file and the field for anything missing or malformed.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the cluster configuration {path}: {error}") from None
    base = path.parent
    cluster = data.get("cluster")
    if not isinstance(cluster, dict) or "ca" not in cluster:
        raise ValueError(f"{path}: a [cluster] table with 'ca' is required")
    entries = []
    for position, table in enumerate(data.get("party", [])):
        try:
            entries.append(_party_entry(base, table))
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: party table {position + 1}: {error}") from None
    roles = [entry.role for entry in entries]
    if len(set(roles)) != len(roles):
        raise ValueError(f"{path}: a role is listed twice: {roles}")
    if len(entries) < 2:
        raise ValueError(f"{path}: a cluster needs at least two parties")
    ca = base / str(cluster["ca"])
    try:
        ca_fingerprint = _pem_fingerprint(ca)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the CA certificate {ca}: {error}") from None
    try:
        return ClusterConfig(
            ca,
            tuple(entries),
            float(cluster.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            float(cluster.get("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT_SECONDS)),
            str(cluster.get("profile", "wide")),
            ca_fingerprint,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: [cluster]: {error}") from None


def _party_entry(base: Path, table: dict[str, object]) -> PartyEntry:
    role = str(table["role"])
    if not ROLE_PATTERN.match(role):
        raise ValueError(f"role {role!r} is not an upper-case name such as P0 or H1")
    address = table.get("address")
    host: str | None = None
    port: int | None = None
    if address is not None:
        host, separator, port_text = str(address).rpartition(":")
        if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{role}: address {address!r} is not HOST:PORT")
        port = int(port_text)
    fingerprint = str(table["fingerprint"]).lower().replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise ValueError(f"{role}: fingerprint is not 64 hex digits")
    key = table.get("key")
    return PartyEntry(
        role,
        host,
        port,
        base / str(table["certificate"]),
        fingerprint,
        None if key is None else base / str(key),
    )


def generate_cluster(
    directory: Path | str,
    addresses: Sequence[str],
    *,
    holders: Sequence[str] = (),
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    profile: str = "wide",
    valid_days: int = 365,
) -> Path:
    """§12.6 Deployment over TLS: a cluster CA, a key and certificate per role, and ``cluster.toml``.

    The servers ``P0``, ``P1``, ... listen on ``addresses`` in order; ``holders`` names the
    roles that only connect out (for example ``H1`` .. ``H5`` and ``EVAL``). Writes
    ``ca.pem``, ``ca.key`` and ``<role>.pem``, ``<role>.key`` in lower case (private keys mode
    0600) into ``directory`` and returns the path of the configuration. In a real deployment
    each host keeps only its own key; ``ca.key`` is kept offline.
    """
    roles = [f"P{index}" for index in range(len(addresses))] + list(holders)
    for role in roles:
        if not ROLE_PATTERN.match(role):
            raise ValueError(f"role {role!r} is not an upper-case name such as P0 or H1")
    if len(set(roles)) != len(roles):
        raise ValueError(f"a role is listed twice: {roles}")
    for address in addresses:
        _party_entry(Path(), {"role": "P0", "address": address, "fingerprint": "0" * 64, "certificate": ""})
    get_profile(profile)
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
    for index, name in enumerate(roles):
        key = ec.generate_private_key(ec.SECP256R1())
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
        stem = name.lower()
        write_key(directory / f"{stem}.key", key)
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fingerprint = certificate_fingerprint(cert.public_bytes(serialization.Encoding.DER))
        lines += ["", "[[party]]", f'role = "{name}"']
        if index < len(addresses):
            lines.append(f'address = "{addresses[index]}"')
        lines += [
            f'certificate = "{stem}.pem"',
            f'fingerprint = "{fingerprint}"',
            f'key = "{stem}.key"',
        ]
    config = directory / "cluster.toml"
    temporary = directory / "cluster.toml.tmp"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, config)
    return config


def check_private_key(path: Path) -> None:
    """§12.6 Deployment over TLS: a private key file must exist and be readable by its owner only."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise ValueError(f"cannot read the private key {path}: {error}") from None
    if mode & 0o077:
        raise ValueError(
            f"the private key {path} is accessible to other users (mode {mode & 0o777:o}); "
            f"run `chmod 600 {path}`"
        )


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


def read_frame(
    sock: ssl.SSLSocket, max_payload: int = MAX_PAYLOAD_BYTES
) -> tuple[int, str, int, bytes] | None:
    """§12.6 Deployment over TLS: the next frame (kind, step, depth, payload); None at end of stream."""
    header = _read_exact(sock, HEADER.size)
    if header is None:
        return None
    magic, version, kind, label_length = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}")
    if version != VERSION:
        raise FrameError(f"unsupported version {version}")
    if kind not in KINDS:
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
    if length > max_payload:
        raise FrameError(f"payload length {length} exceeds {max_payload}")
    payload = _read_exact(sock, length) if length else b""
    if payload is None:
        raise FrameError("connection closed inside a frame")
    return kind, step, depth, payload


# --------------------------------------------------------------------------- run binding


@dataclass(frozen=True)
class RunBinding:
    """§12.6 Deployment over TLS: what every party of a run must agree on before any protocol message.

    ``job_parameters`` is the SHA-256 (hex) of the job's public parameters, ``roles`` the
    run's role of each party number.
    """

    run_id: bytes
    profile: str
    job: str = ""
    job_parameters: str = ""
    roles: tuple[str, ...] = ()

    def hello(self, party: int, config: ClusterConfig) -> dict[str, object]:
        """The hello payload party ``party`` sends (as canonical JSON)."""
        return {
            "version": HELLO_VERSION,
            "party": party,
            "role": self.roles[party],
            "run_id": self.run_id.hex(),
            "profile": self.profile,
            "config": config.digest,
            "job": self.job,
            "job_parameters": self.job_parameters,
            "roles": list(self.roles),
        }


HELLO_FIELDS = ("version", "job", "run_id", "profile", "config", "job_parameters", "roles")
"""Compared in this order; the first difference names the refusal."""


def hello_mismatch(received: dict[str, object], expected: dict[str, object]) -> str | None:
    """§12.6 Deployment over TLS: None if a peer's hello agrees with ours, else what differs."""
    for name in (*HELLO_FIELDS, "party", "role"):
        if received.get(name) != expected.get(name):
            return f"its {name} is {received.get(name)!r}, expected {expected.get(name)!r}"
    return None


def _decode_hello(payload: bytes) -> dict[str, object]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("hello is not JSON") from None
    if not isinstance(value, dict):
        raise FrameError("hello is not a JSON object")
    return value


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

    ``roles[i]`` is the cluster role of party number i in this run (default: every role of
    the configuration, in its order). Call :meth:`connect` before running protocol code and
    :meth:`finish` then :meth:`close` after it. ``queues[(party, peer)]`` writes to the
    peer; ``queues[(peer, party)]`` is fed by a reader thread. A role without an address
    (a data holder) only connects out: it can send to servers, and nobody can send to it.
    """

    def __init__(
        self, party: int, config: ClusterConfig, binding: RunBinding, announcement: object = None
    ) -> None:
        roles = binding.roles or tuple(entry.role for entry in config.parties)
        binding = RunBinding(binding.run_id, binding.profile, binding.job, binding.job_parameters, roles)
        super().__init__(len(roles), config.timeout_seconds)
        if not 0 <= party < self.parties:
            raise ValueError(f"party {party} is not in the run of {self.parties} parties")
        if len(set(roles)) != len(roles):
            raise ValueError(f"a role is listed twice: {roles}")
        self.party = party
        self.config = config
        self.binding = binding
        self.entries = [config.entry(role) for role in roles]
        self.peers = [peer for peer in range(self.parties) if peer != party]
        me = self.entries[party]
        self.targets = [peer for peer in self.peers if self.entries[peer].listens]
        self.sources = self.peers if me.listens else []
        for peer in self.peers:
            self.queues[(party, peer)] = _Outbox(self, peer)
        self.outgoing: dict[int, ssl.SSLSocket] = {}
        self.incoming: dict[int, ssl.SSLSocket] = {}
        self.send_locks = {peer: threading.Lock() for peer in self.peers}
        self.goodbyes = {peer: threading.Event() for peer in self.peers}
        self.farewells: dict[int, bytes] = {}
        self.last_step = {peer: "" for peer in self.peers}
        self.refusals: list[str] = []
        self.readers: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._closed = False
        self._abort_lock = threading.Lock()
        if me.key is None:
            raise ValueError(f"the configuration names no private key for {me.role}")
        check_private_key(me.key)
        self.server_context = self._context(ssl.PROTOCOL_TLS_SERVER, me)
        self.server_context.num_tickets = 0
        self.client_context = self._context(ssl.PROTOCOL_TLS_CLIENT, me)
        self.client_context.check_hostname = False
        self.fingerprints = {entry.fingerprint: index for index, entry in enumerate(self.entries)}
        self.hello = binding.hello(party, config)
        self.hello["announcement"] = announcement
        self.announcements: dict[int, object] = {}
        self.barrier = threading.Barrier(1)

    def name(self, party: int) -> str:
        """``P<i>``, with the role when it differs (for example ``P3 (H1)``)."""
        role = self.entries[party].role
        return f"P{party}" if role == f"P{party}" else f"P{party} ({role})"

    def _context(self, protocol: int, me: PartyEntry) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.config.ca))
        assert me.key is not None
        context.load_cert_chain(str(me.certificate), str(me.key))
        return context

    def _expected_hello(self, peer: int) -> dict[str, object]:
        return {**self.hello, "party": peer, "role": self.entries[peer].role}

    def _check_hello(self, peer: int, payload: bytes) -> str | None:
        """None and the peer's announcement noted if its hello agrees with ours, else what differs."""
        try:
            hello = _decode_hello(payload)
        except FrameError as error:
            return str(error)
        mismatch = hello_mismatch(hello, self._expected_hello(peer))
        if mismatch is None:
            self.announcements[peer] = hello.get("announcement")
        return mismatch

    # ------------------------------------------------------------------ set-up

    def connect(self) -> None:
        """§12.6 Deployment over TLS: listen, connect to every server, accept one connection from each peer.

        Every connection is authenticated (pinned certificate) and bound to the run (hello
        exchange) before it is used. Raises :class:`ProtocolAbort` if a peer is not connected
        within the connect timeout, presents a certificate other than the one pinned for it,
        or disagrees on the run.
        """
        me = self.entries[self.party]
        deadline = time.monotonic() + self.config.connect_timeout_seconds
        acceptor_error: list[BaseException] = []
        acceptor: threading.Thread | None = None
        if self.sources:
            assert me.host is not None and me.port is not None
            listener = socket.create_server((me.host, me.port), reuse_port=False)
            listener.settimeout(0.1)
            self._listener = listener

            def accept_all() -> None:
                try:
                    self._accept_all(listener, deadline)
                except BaseException as error:
                    acceptor_error.append(error)
                    self._closed = True

            acceptor = threading.Thread(target=accept_all, name=f"P{self.party}-accept", daemon=True)
            acceptor.start()
        try:
            for peer in self.targets:
                self.outgoing[peer] = self._connect_to(peer, deadline, acceptor_error)
        except BaseException:
            self._closed = True
            if acceptor is not None:
                acceptor.join()
            self.close()
            if acceptor_error:
                raise acceptor_error[0] from None
            raise
        if acceptor is not None:
            acceptor.join()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if acceptor_error:
            self.close()
            raise acceptor_error[0]
        for peer in self.sources:
            reader = threading.Thread(
                target=self._read_loop, args=(peer,), name=f"P{self.party}-from-P{peer}", daemon=True
            )
            reader.start()
            self.readers.append(reader)

    def _connect_to(self, peer: int, deadline: float, acceptor_error: list[BaseException]) -> ssl.SSLSocket:
        entry = self.entries[peer]
        where = f"{self.name(peer)} at {entry.host}:{entry.port}"
        last_error: BaseException | None = None
        while time.monotonic() < deadline and not acceptor_error:
            remaining = max(0.05, deadline - time.monotonic())
            try:
                raw = socket.create_connection((str(entry.host), int(entry.port or 0)), timeout=remaining)
            except OSError as error:
                last_error = error
                time.sleep(0.05)
                continue
            try:
                tls = self.client_context.wrap_socket(raw, server_hostname=None)
            except (ssl.SSLError, OSError) as error:
                raw.close()
                raise ProtocolAbort(f"P{self.party}: TLS handshake with {where} failed: {error}") from None
            der = tls.getpeercert(binary_form=True)
            if der is None or certificate_fingerprint(der) != entry.fingerprint:
                tls.close()
                raise ProtocolAbort(
                    f"P{self.party}: refused {where}: its certificate is not the one pinned in the "
                    "cluster configuration"
                )
            try:
                tls.settimeout(max(0.05, deadline - time.monotonic()))
                tls.sendall(encode_frame(KIND_HELLO, "hello", 0, canonical_json(self.hello)))
                reply = read_frame(tls, MAX_HELLO_BYTES)
            except (OSError, FrameError) as error:
                tls.close()
                raise ProtocolAbort(
                    f"P{self.party}: {where} dropped the connection before answering our hello "
                    f"(it may have refused this party's certificate): {error}"
                ) from None
            if reply is None:
                tls.close()
                raise ProtocolAbort(
                    f"P{self.party}: {where} closed the connection before answering our hello "
                    "(it may have refused this party's certificate)"
                )
            kind, _, _, payload = reply
            if kind == KIND_ABORT:
                tls.close()
                raise ProtocolAbort(
                    f"P{self.party}: {where} refused this party: {payload.decode('utf-8', 'replace')}"
                )
            mismatch = "it sent no hello" if kind != KIND_HELLO else self._check_hello(peer, payload)
            if mismatch is not None:
                tls.close()
                raise ProtocolAbort(f"P{self.party}: refused {where}: {mismatch}")
            tls.settimeout(None)
            tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return tls
        if acceptor_error:
            raise acceptor_error[0]
        raise ProtocolAbort(
            f"P{self.party}: could not connect to {where} within "
            f"{self.config.connect_timeout_seconds} s: {last_error}"
        )

    def _accept_all(self, listener: socket.socket, deadline: float) -> None:
        while len(self.incoming) < len(self.sources):
            if self._closed:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(self.name(peer) for peer in self.sources if peer not in self.incoming)
                refused = f"; refused: {'; '.join(self.refusals)}" if self.refusals else ""
                raise ProtocolAbort(
                    f"P{self.party}: no authenticated connection from {missing} within "
                    f"{self.config.connect_timeout_seconds} s{refused}"
                )
            try:
                raw, address = listener.accept()
            except TimeoutError:
                continue
            where = f"a peer at {address[0]}:{address[1]}"
            raw.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                tls = self.server_context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as error:
                raw.close()
                self.refusals.append(f"{where} failed the TLS handshake: {error}")
                continue
            der = tls.getpeercert(binary_form=True)
            peer = None if der is None else self.fingerprints.get(certificate_fingerprint(der))
            if peer is None or peer == self.party or peer in self.incoming:
                tls.close()
                self.refusals.append(f"{where} presented a certificate not pinned for any expected party")
                continue
            try:
                frame = read_frame(tls, MAX_HELLO_BYTES)
            except (OSError, FrameError) as error:
                tls.close()
                self.refusals.append(f"{self.name(peer)} at {address[0]} failed before its hello: {error}")
                continue
            if frame is None or frame[0] != KIND_HELLO:
                tls.close()
                self.refusals.append(f"{self.name(peer)} at {address[0]} sent no hello")
                continue
            mismatch = self._check_hello(peer, frame[3])
            if mismatch is not None:
                identity = mismatch.startswith(("its party ", "its role "))
                if identity:
                    mismatch = f"it presented {self.name(peer)}'s certificate but {mismatch}"
                reason = f"P{self.party} refused {self.name(peer)}: {mismatch}"
                with contextlib.suppress(OSError):
                    tls.sendall(encode_frame(KIND_ABORT, "", 0, reason.encode("utf-8")))
                tls.close()
                if identity:  # not this run's peer: refuse it and keep accepting, as for a wrong certificate
                    self.refusals.append(f"a peer at {address[0]}:{address[1]}: {mismatch}")
                    continue
                raise ProtocolAbort(reason)
            try:
                tls.sendall(encode_frame(KIND_HELLO, "hello", 0, canonical_json(self.hello)))
            except OSError as error:
                tls.close()
                self.refusals.append(f"{self.name(peer)} at {address[0]} left during the hello: {error}")
                continue
            tls.settimeout(None)
            self.incoming[peer] = tls

    # ------------------------------------------------------------------ traffic

    def send_frame(self, peer: int, kind: int, step: str, depth: int, payload: bytes) -> None:
        """§12.6 Deployment over TLS: write one frame to ``peer``; a failure aborts naming peer and step."""
        if peer not in self.targets:
            raise ProtocolAbort(
                f"P{self.party} cannot send step {step!r} to {self.name(peer)}: it has no address "
                "in the cluster configuration (data holders only connect out)"
            )
        frame = encode_frame(kind, step, depth, payload)
        try:
            with self.send_locks[peer]:
                if self.aborted.is_set():
                    raise ProtocolAbort(f"P{self.party} aborted at step {step!r}: {self.abort_reason}")
                self.outgoing[peer].sendall(frame)
        except (OSError, KeyError, ValueError) as error:
            # A peer that closed its end has usually aborted: give its abort frame (or another
            # peer's) a moment to arrive, so that the root cause is reported.
            if self.aborted.wait(ABORT_GRACE_SECONDS):
                raise ProtocolAbort(f"P{self.party} aborted at step {step!r}: {self.abort_reason}") from None
            reason = f"connection to {self.name(peer)} failed sending step {step!r}: {error}"
            self.abort(reason)
            raise ProtocolAbort(f"P{self.party}: {reason}") from None

    def _read_loop(self, peer: int) -> None:
        sock = self.incoming[peer]
        channel = self.queues[(peer, self.party)]
        name = self.name(peer)
        while True:
            try:
                frame = read_frame(sock)
            except FrameError as error:
                self.abort(f"malformed frame from {name} after step {self.last_step[peer]!r}: {error}")
                return
            except (OSError, ValueError) as error:
                if not self.goodbyes[peer].is_set() and not self._closed:
                    self.abort(f"connection from {name} failed after step {self.last_step[peer]!r}: {error}")
                return
            if frame is None:
                if not self.goodbyes[peer].is_set() and not self._closed:
                    self.abort(f"{name} disconnected after step {self.last_step[peer]!r}")
                return
            kind, step, depth, payload = frame
            if self.goodbyes[peer].is_set() and kind != KIND_ABORT:
                self.abort(f"malformed frame from {name}: a frame after its goodbye")
                return
            if kind == KIND_DATA:
                self.last_step[peer] = step
                channel.put(Envelope(step, depth, payload))
            elif kind == KIND_GOODBYE:
                self.farewells[peer] = payload
                self.goodbyes[peer].set()
            elif kind == KIND_ABORT:
                self.abort(f"{name} aborted: {payload.decode('utf-8', 'replace')}")
                return
            else:
                self.abort(
                    f"malformed frame from {name} after step {self.last_step[peer]!r}: a hello after set-up"
                )
                return

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

    def finish(self, farewell: bytes = b"") -> dict[int, bytes]:
        """§12.6 Deployment over TLS: say goodbye to every peer and wait for theirs.

        ``farewell`` travels in this party's goodbye frames (outside the protocol's
        accounting); returns the farewell each peer sent this party.
        """
        for peer in self.targets:
            self.send_frame(peer, KIND_GOODBYE, "", 0, farewell)
        deadline = time.monotonic() + self.timeout_seconds
        for peer in self.sources:
            while not self.goodbyes[peer].wait(0.05):
                if self.aborted.is_set():
                    raise ProtocolAbort(f"P{self.party} aborted at the end: {self.abort_reason}")
                if time.monotonic() > deadline:
                    raise ProtocolAbort(f"P{self.party} timed out waiting for {self.name(peer)}'s goodbye")
        if self.aborted.is_set():
            raise ProtocolAbort(f"P{self.party} aborted at the end: {self.abort_reason}")
        return dict(self.farewells)

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


@dataclass
class PartyRun(Generic[Result]):
    """§12.6 Deployment over TLS: one party's output, accounting and the farewells it received."""

    output: Result
    stats: PartyStats
    farewells: dict[int, bytes]


def run_party_over_tls(
    program: Callable[[PartyContext], Result],
    party: int,
    config: ClusterConfig | Path | str,
    *,
    run_id: bytes,
    profile: Profile | str | None = None,
    seed: bytes | None = None,
    keep_transcript: bool = False,
    job: str = "",
    job_parameters: str = "",
    roles: Sequence[str] = (),
    farewell: Callable[[Result], bytes] | None = None,
    announcement: object = None,
) -> PartyRun[Result]:
    """§12.6 Deployment over TLS: run ``program`` as party ``party`` in this process.

    Connects to every peer and exchanges hellos binding ``run_id``, the profile, the
    configuration, ``job``, ``job_parameters`` and ``roles`` (party number -> cluster role;
    default every role of the configuration in order), with ``announcement`` (public JSON
    data, e.g. input shapes) in this party's hello; then runs §3 key setup with ``seed``
    and ``program(ctx)``, says goodbye (carrying ``farewell(output)``) and returns a
    :class:`PartyRun`. Any error aborts every peer and is re-raised here.
    """
    from refimpl.randomness import setup_keys

    chosen_config = config if isinstance(config, ClusterConfig) else load_cluster_config(config)
    chosen = profile if profile is not None else chosen_config.profile
    chosen_profile = get_profile(chosen) if isinstance(chosen, str) else chosen
    binding = RunBinding(run_id, chosen_profile.name, job, job_parameters, tuple(roles))
    network = TlsNetwork(party, chosen_config, binding, announcement)
    network.connect()
    ctx = PartyContext(party, network, chosen_profile, keep_transcript)
    try:
        try:
            setup_keys(ctx, seed)
            output = program(ctx)
            message = b"" if farewell is None else farewell(output)
        except BaseException as error:
            network.abort(f"P{party} failed: {error}")
            raise
        farewells = network.finish(message)
    finally:
        network.close()
    return PartyRun(output, ctx.stats, farewells)
