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
import dataclasses
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
MAX_HELLO_DEPTH = 8
"""The deepest nesting of arrays and objects a hello may have (its announcement included)."""
MAX_CONTROL_BYTES = 1 << 20
"""The largest goodbye (farewell) or abort payload a receiver accepts."""
HEADER = struct.Struct("<4sBBH")
TRAILER = struct.Struct("<QQ")
MAX_LABEL_BYTES = 1024
DEFAULT_MAX_MESSAGE_BYTES = 1 << 24
"""The data-frame limit of a run that states none (a deployed job derives its own)."""
MESSAGE_LIMIT_MARGIN = 2
"""A deployed job's data-frame limit is this multiple of its largest message bound."""
RECEIVE_QUEUE_MESSAGES = 4
"""A receive queue holds this many largest messages (plus QUEUE_SLACK_BYTES) before its reader waits."""
QUEUE_SLACK_BYTES = 1 << 20
ENVELOPE_OVERHEAD_BYTES = 256
"""What a queued message is charged beyond its payload (its label, depth and bookkeeping)."""
MAX_PENDING_HANDSHAKES = 32
"""The most incoming connections a server authenticates at once; more are closed at once."""
DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0
DEFAULT_HANDSHAKE_TIMEOUT_SECONDS = 10.0
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
    handshake_timeout_seconds: float = DEFAULT_HANDSHAKE_TIMEOUT_SECONDS

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

        Covers the CA certificate, every role's address and fingerprint and the three timeouts;
        not the profile (the hello carries it separately) and not local key paths.
        """
        public = {
            "ca": self.ca_fingerprint,
            "parties": [entry.public() for entry in self.parties],
            "timeout_seconds": self.timeout_seconds,
            "connect_timeout_seconds": self.connect_timeout_seconds,
            "handshake_timeout_seconds": self.handshake_timeout_seconds,
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
        config = ClusterConfig(
            ca,
            tuple(entries),
            float(cluster.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            float(cluster.get("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT_SECONDS)),
            str(cluster.get("profile", "wide")),
            ca_fingerprint,
            float(cluster.get("handshake_timeout_seconds", DEFAULT_HANDSHAKE_TIMEOUT_SECONDS)),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: [cluster]: {error}") from None
    if not config.handshake_timeout_seconds > 0:
        raise ValueError(f"{path}: [cluster]: handshake_timeout_seconds must be positive")
    return config


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
    handshake_timeout_seconds: float = DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
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
        f"handshake_timeout_seconds = {float(handshake_timeout_seconds)}",
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


def _read_exact(sock: ssl.SSLSocket, count: int, deadline: float | None = None) -> bytes | None:
    """``count`` bytes, or None on a clean end of stream before the first byte.

    With ``deadline`` (a ``time.monotonic()`` value) every wait is cut to the time left, so a
    peer that trickles bytes cannot stretch the wait past it.
    """
    chunks = bytearray()
    while len(chunks) < count:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
        chunk = sock.recv(min(count - len(chunks), 1 << 20))
        if not chunk:
            if not chunks:
                return None
            raise FrameError(f"connection closed inside a frame ({len(chunks)} of {count} bytes)")
        chunks += chunk
    return bytes(chunks)


def payload_limit(kind: int, max_data_bytes: int) -> int:
    """§12.6 Deployment over TLS: the largest payload a receiver accepts in a frame of ``kind``."""
    if kind == KIND_DATA:
        return max_data_bytes
    if kind == KIND_HELLO:
        return MAX_HELLO_BYTES
    return MAX_CONTROL_BYTES


def read_frame(
    sock: ssl.SSLSocket, max_data_bytes: int, deadline: float | None = None
) -> tuple[int, str, int, bytes] | None:
    """§12.6 Deployment over TLS: the next frame (kind, step, depth, payload); None at end of stream.

    A header announcing more than :func:`payload_limit` for its kind is refused before any
    byte of its payload is read.
    """
    header = _read_exact(sock, HEADER.size, deadline)
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
    rest = _read_exact(sock, label_length + TRAILER.size, deadline)
    if rest is None:
        raise FrameError("connection closed inside a frame")
    try:
        step = rest[:label_length].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("step label is not ASCII") from None
    depth, length = TRAILER.unpack(rest[label_length:])
    limit = payload_limit(kind, max_data_bytes)
    if length > limit:
        raise FrameError(f"a frame announces {length} payload bytes at step {step!r}, the limit is {limit}")
    payload = _read_exact(sock, length, deadline) if length else b""
    if payload is None:
        raise FrameError("connection closed inside a frame")
    return kind, step, depth, payload


def message_bound(profile: Profile, elements: int, comparisons: int) -> int:
    """§12.6 Deployment over TLS: a bound on every message of a job, from its public shapes.

    ``elements`` is the most ring elements in one tensor of the job (a dealt data set, an
    activation or weight matrix); ``comparisons`` the most comparisons generated or run at
    once. A message carries at most two components of one tensor, or one element of at most
    l bits per bit of each comparison (k + 1 per comparison).
    """
    element_bytes = profile.ring.element_bytes
    per_comparison = (profile.comparison_bits + 1) * element_bytes
    return max(2 * elements * element_bytes, comparisons * per_comparison, 1)


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
    insecure_testing: bool = False

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
            "insecure_testing": self.insecure_testing,
        }


HELLO_FIELDS = (
    "version",
    "insecure_testing",
    "job",
    "run_id",
    "profile",
    "config",
    "job_parameters",
    "roles",
)
"""Compared in this order; the first difference names the refusal."""


def hello_mismatch(received: dict[str, object], expected: dict[str, object]) -> str | None:
    """§12.6 Deployment over TLS: None if a peer's hello agrees with ours, else what differs."""
    for name in (*HELLO_FIELDS, "party", "role"):
        if received.get(name) != expected.get(name):
            return f"its {name} is {received.get(name)!r}, expected {expected.get(name)!r}"
    return None


HELLO_TYPES: dict[str, type] = {
    "version": int,
    "party": int,
    "role": str,
    "run_id": str,
    "profile": str,
    "config": str,
    "job": str,
    "job_parameters": str,
    "roles": list,
    "insecure_testing": bool,
    "announcement": object,
}
"""§12.6 Deployment over TLS: every field a hello has, and its JSON type (``object``: any value)."""


def json_depth(text: bytes) -> int:
    """§12.6 Deployment over TLS: the deepest nesting of arrays and objects in JSON ``text``.

    Counted without parsing (brackets inside strings do not count), so that a deeply nested
    hello is refused before a recursive parser sees it.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def decode_hello(payload: bytes) -> dict[str, object]:
    """§12.6 Deployment over TLS: a peer's hello, checked; FrameError saying what is wrong.

    The hello must be at most ``MAX_HELLO_BYTES``, nested at most ``MAX_HELLO_DEPTH`` deep,
    a UTF-8 JSON object with exactly the fields of :data:`HELLO_TYPES`, each of its type
    (integers are not booleans), and ``roles`` a list of strings.
    """
    if len(payload) > MAX_HELLO_BYTES:
        raise FrameError(f"malformed hello: {len(payload)} bytes, the limit is {MAX_HELLO_BYTES}")
    if json_depth(payload) > MAX_HELLO_DEPTH:
        raise FrameError(f"malformed hello: nested deeper than {MAX_HELLO_DEPTH} levels")
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FrameError("malformed hello: not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise FrameError("malformed hello: not a JSON object")
    missing = sorted(set(HELLO_TYPES) - set(value))
    unknown = sorted(set(value) - set(HELLO_TYPES))
    if missing or unknown:
        raise FrameError(f"malformed hello: missing fields {missing}, unknown fields {unknown}")
    for name, kind in HELLO_TYPES.items():
        field = value[name]
        if not isinstance(field, kind) or (kind is int and isinstance(field, bool)):
            raise FrameError(f"malformed hello: {name} is not a JSON {kind.__name__}")
    roles = value["roles"]
    assert isinstance(roles, list)
    if not all(isinstance(role, str) for role in roles):
        raise FrameError("malformed hello: roles is not a list of strings")
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


class BoundedInbox(queue.Queue[Envelope]):
    """§12.6 Deployment over TLS: the receiving end of channel (peer, party), ``capacity`` bytes at most.

    The reader thread's ``put`` waits while the queue is full (so the peer's writes wait in
    TCP, not in this process's memory) and gives up when ``stopped()`` turns true. An empty
    queue always takes one message, so a message up to the frame limit never waits forever.
    """

    def __init__(self, capacity: int, stopped: Callable[[], bool]) -> None:
        super().__init__()
        self.capacity = capacity
        self.stopped = stopped
        self.held = 0
        self.space = threading.Condition()

    @staticmethod
    def cost(item: Envelope) -> int:
        """What ``item`` is charged against the capacity (nothing for the abort signal)."""
        return 0 if item is ABORT_SIGNAL else len(item.payload) + ENVELOPE_OVERHEAD_BYTES

    def put(self, item: Envelope, block: bool = True, timeout: float | None = None) -> None:
        cost = self.cost(item)
        with self.space:
            while cost and self.held and self.held + cost > self.capacity:
                if self.stopped():
                    return
                self.space.wait(0.1)
            self.held += cost
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Envelope:
        item = super().get(block, timeout)
        cost = self.cost(item)
        if cost:
            with self.space:
                self.held -= cost
                self.space.notify_all()
        return item


class TlsNetwork(Network):
    """§12.6 Deployment over TLS: party ``party``'s channels to every peer, over mutual TLS 1.3.

    ``roles[i]`` is the cluster role of party number i in this run (default: every role of
    the configuration, in its order). Call :meth:`connect` before running protocol code and
    :meth:`finish` then :meth:`close` after it. ``queues[(party, peer)]`` writes to the
    peer; ``queues[(peer, party)]`` is fed by a reader thread and holds at most
    ``RECEIVE_QUEUE_MESSAGES`` messages of ``max_message_bytes`` (plus ``QUEUE_SLACK_BYTES``).
    A data frame announcing more than ``max_message_bytes`` is refused before its payload is
    read. A role without an address (a data holder) only connects out: it can send to
    servers, and nobody can send to it.
    """

    def __init__(
        self,
        party: int,
        config: ClusterConfig,
        binding: RunBinding,
        announcement: object = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        roles = binding.roles or tuple(entry.role for entry in config.parties)
        binding = dataclasses.replace(binding, roles=roles)
        super().__init__(len(roles), config.timeout_seconds)
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        self.max_message_bytes = max_message_bytes
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
        capacity = RECEIVE_QUEUE_MESSAGES * max_message_bytes + QUEUE_SLACK_BYTES
        for peer in self.peers:
            self.queues[(party, peer)] = _Outbox(self, peer)
            self.queues[(peer, party)] = BoundedInbox(capacity, self._stopped)
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
        self._accept_lock = threading.Lock()
        self._accept_failures: list[BaseException] = []
        self._accepting = True
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

    def _stopped(self) -> bool:
        return self._closed or self.aborted.is_set()

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
            hello = decode_hello(payload)
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
            handshake_deadline = min(deadline, time.monotonic() + self.config.handshake_timeout_seconds)
            try:
                raw.settimeout(max(0.05, handshake_deadline - time.monotonic()))
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
                tls.settimeout(max(0.05, handshake_deadline - time.monotonic()))
                tls.sendall(encode_frame(KIND_HELLO, "hello", 0, canonical_json(self.hello)))
                reply = read_frame(tls, 0, handshake_deadline)
            except FrameError as error:
                tls.close()
                raise ProtocolAbort(f"P{self.party}: refused {where}: malformed hello: {error}") from None
            except OSError as error:
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
        """§12.6 Deployment over TLS: accept until every source is in; one thread per handshake.

        An idle or slow connection therefore holds only its own thread, for at most the
        handshake timeout; at most ``MAX_PENDING_HANDSHAKES`` run at once.
        """
        handshakes: list[threading.Thread] = []
        try:
            while not self._all_accepted():
                if self._closed:
                    return
                if self._accept_failures:
                    raise self._accept_failures[0]
                if time.monotonic() > deadline:
                    raise self._accept_timeout()
                try:
                    raw, address = listener.accept()
                except TimeoutError:
                    continue
                handshakes = [thread for thread in handshakes if thread.is_alive()]
                if len(handshakes) >= MAX_PENDING_HANDSHAKES:
                    raw.close()
                    self._refuse(f"a peer at {address[0]}:{address[1]}: too many handshakes at once")
                    continue
                handshake = threading.Thread(
                    target=self._handshake_incoming,
                    args=(raw, address, deadline),
                    name=f"P{self.party}-handshake",
                    daemon=True,
                )
                handshake.start()
                handshakes.append(handshake)
        finally:
            with self._accept_lock:
                self._accepting = False

    def _all_accepted(self) -> bool:
        with self._accept_lock:
            return len(self.incoming) == len(self.sources)

    def _accept_timeout(self) -> ProtocolAbort:
        with self._accept_lock:
            missing = ", ".join(self.name(peer) for peer in self.sources if peer not in self.incoming)
            refused = f"; refused: {'; '.join(self.refusals)}" if self.refusals else ""
        return ProtocolAbort(
            f"P{self.party}: no authenticated connection from {missing} within "
            f"{self.config.connect_timeout_seconds} s{refused}"
        )

    def _refuse(self, reason: str) -> None:
        with self._accept_lock:
            self.refusals.append(reason)

    def _handshake_incoming(self, raw: socket.socket, address: tuple[str, int], deadline: float) -> None:
        """§12.6 Deployment over TLS: one connection's TLS handshake, certificate and hello, timed."""
        handshake_deadline = min(deadline, time.monotonic() + self.config.handshake_timeout_seconds)
        where = f"a peer at {address[0]}:{address[1]}"
        raw.settimeout(max(0.05, handshake_deadline - time.monotonic()))
        try:
            tls = self.server_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as error:
            raw.close()
            self._refuse(f"{where} failed the TLS handshake: {error}")
            return
        try:
            accepted = self._authenticate_incoming(tls, address, handshake_deadline)
        except BaseException as error:  # a run-level refusal: the acceptor re-raises it
            with self._accept_lock:
                self._accept_failures.append(error)
            accepted = False
        if not accepted:
            tls.close()

    def _authenticate_incoming(self, tls: ssl.SSLSocket, address: tuple[str, int], deadline: float) -> bool:
        """Check the certificate and the hello, answer it and keep the connection; False if refused."""
        where = f"a peer at {address[0]}:{address[1]}"
        der = tls.getpeercert(binary_form=True)
        peer = None if der is None else self.fingerprints.get(certificate_fingerprint(der))
        if peer is None or peer == self.party or peer not in self.sources:
            self._refuse(f"{where} presented a certificate not pinned for any expected party")
            return False
        try:
            frame = read_frame(tls, 0, deadline)
        except OSError as error:
            self._refuse(f"{self.name(peer)} at {address[0]} failed before its hello: {error}")
            return False
        except FrameError as error:
            mismatch: str | None = f"malformed hello: {error}"
        else:
            if frame is None or frame[0] != KIND_HELLO:
                self._refuse(f"{self.name(peer)} at {address[0]} sent no hello")
                return False
            mismatch = self._check_hello(peer, frame[3])
        if mismatch is not None:
            identity = mismatch.startswith(("its party ", "its role "))
            if identity:
                mismatch = f"it presented {self.name(peer)}'s certificate but {mismatch}"
            reason = f"P{self.party} refused {self.name(peer)}: {mismatch}"
            with contextlib.suppress(OSError):
                tls.sendall(encode_frame(KIND_ABORT, "", 0, reason.encode("utf-8")))
            if identity:  # not this run's peer: refuse it and keep accepting, as for a wrong certificate
                self._refuse(f"{where}: {mismatch}")
                return False
            raise ProtocolAbort(reason)
        with self._accept_lock:
            if not self._accepting or peer in self.incoming:
                self.refusals.append(f"{self.name(peer)} at {address[0]} connected twice")
                return False
            try:
                tls.sendall(encode_frame(KIND_HELLO, "hello", 0, canonical_json(self.hello)))
            except OSError as error:
                self.refusals.append(f"{self.name(peer)} at {address[0]} left during the hello: {error}")
                return False
            tls.settimeout(None)
            self.incoming[peer] = tls
        return True

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
                frame = read_frame(sock, self.max_message_bytes)
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


class PinnedKeysError(ValueError):
    """§12.6 Deployment over TLS: pinned keys without the insecure-testing setting, or the reverse."""


def check_key_setting(seed: bytes | None, insecure_testing: bool) -> None:
    """§12.6 Deployment over TLS: a deployed party draws its keys from the OS unless explicitly testing.

    A seed pins every party's keys (any party could compute the keys it must not hold, and
    they repeat across runs), so it is refused unless ``insecure_testing`` is set; the
    setting without a seed is refused too, so that it never lingers in a production command.
    """
    if seed is not None and not insecure_testing:
        raise PinnedKeysError(
            "pinned keys (a seed) are refused in a deployment: every party's keys would follow from "
            "the seed; keys come from the OS (tests only: the insecure-testing setting, at every party)"
        )
    if seed is None and insecure_testing:
        raise PinnedKeysError("the insecure-testing setting only goes with pinned keys (a seed)")


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
    insecure_testing: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> PartyRun[Result]:
    """§12.6 Deployment over TLS: run ``program`` as party ``party`` in this process.

    Connects to every peer and exchanges hellos binding ``run_id``, the profile, the
    configuration, ``job``, ``job_parameters``, ``roles`` (party number -> cluster role;
    default every role of the configuration in order) and ``insecure_testing``, with
    ``announcement`` (public JSON data, e.g. input shapes) in this party's hello; then runs
    §3 key setup and ``program(ctx)``, says goodbye (carrying ``farewell(output)``) and
    returns a :class:`PartyRun`. Keys come from the OS; a ``seed`` pins them only with
    ``insecure_testing`` (:func:`check_key_setting`), which every peer must share. Data
    frames of more than ``max_message_bytes`` are refused. Any error aborts every peer and
    is re-raised here.
    """
    from refimpl.randomness import setup_keys

    check_key_setting(seed, insecure_testing)
    chosen_config = config if isinstance(config, ClusterConfig) else load_cluster_config(config)
    chosen = profile if profile is not None else chosen_config.profile
    chosen_profile = get_profile(chosen) if isinstance(chosen, str) else chosen
    binding = RunBinding(run_id, chosen_profile.name, job, job_parameters, tuple(roles), insecure_testing)
    network = TlsNetwork(party, chosen_config, binding, announcement, max_message_bytes)
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
