"""§12 Communication: channels, wire encoding, rounds, accounting and the in-process runtime.

Protocol code is party-local: it talks only through :meth:`PartyContext.send` and
:meth:`PartyContext.recv`. The runtime here runs the parties as threads over in-memory
channels; every message is counted (bytes, messages, rounds) and hashed into the
sending party's transcript.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from refimpl.ring import Profile, Ring, get_profile

COMPUTING_PARTIES = 3
SECONDARY_SERVER = 3
DEFAULT_TIMEOUT_SECONDS = 30.0

Result = TypeVar("Result")


class ProtocolAbort(RuntimeError):
    """§12.1 Channels: a party stopped the protocol: a peer failed, disconnected or timed out."""


class WireFormatError(ValueError):
    """§12.2 Wire encoding: a message has the wrong length or the wrong step label."""


@dataclass
class PartyStats:
    """§12.4 Accounting: what one party sent and received, and its round clock."""

    bytes_sent: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    messages_received: int = 0
    rounds: int = 0
    transcript: list[tuple[int, str, bytes]] = field(default_factory=list)
    transcript_hash: bytes = hashlib.sha256(b"MP-BADNET/v1/transcript").digest()

    def record(self, to: int, step: str, payload: bytes, keep: bool) -> None:
        """§12.4 Accounting: chain a sent message into the transcript hash."""
        digest = hashlib.sha256()
        digest.update(self.transcript_hash)
        digest.update(to.to_bytes(1, "little"))
        label = step.encode("utf-8")
        digest.update(len(label).to_bytes(2, "little") + label)
        digest.update(len(payload).to_bytes(8, "little") + payload)
        self.transcript_hash = digest.digest()
        if keep:
            self.transcript.append((to, step, payload))


@dataclass(frozen=True)
class Envelope:
    """§12.3 Rounds: a payload with its step label and its causal depth."""

    step: str
    depth: int
    payload: bytes


ABORT_SIGNAL = Envelope("", 0, b"")
"""Put into every queue on abort so that a waiting receiver wakes at once (never sent by a party)."""


class Network:
    """§12.5 In-process runtime: in-memory channels between ``parties`` parties, a FIFO per direction."""

    def __init__(self, parties: int, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.parties = parties
        self.timeout_seconds = timeout_seconds
        self.aborted = threading.Event()
        self.abort_reason = ""
        self.queues = {
            (sender, receiver): queue.Queue[Envelope]()
            for sender in range(parties)
            for receiver in range(parties)
            if sender != receiver
        }
        self.barrier = threading.Barrier(parties)

    def abort(self, reason: str) -> None:
        """§12.1 Channels: stop every party: set the flag, break the barrier, wake every receiver."""
        if not self.aborted.is_set():
            self.abort_reason = reason
            self.aborted.set()
            self.barrier.abort()
            for channel in self.queues.values():
                channel.put(ABORT_SIGNAL)


class PartyContext:
    """§12.1 Channels: one party's view of the network, its profile and its randomness.

    ``randomness`` is filled by §3 key setup (:func:`refimpl.randomness.setup_keys`).
    """

    def __init__(
        self,
        party: int,
        network: Network,
        profile: Profile,
        keep_transcript: bool = False,
    ) -> None:
        self.party = party
        self.network = network
        self.profile = profile
        self.keep_transcript = keep_transcript
        self.stats = PartyStats()
        self.clock = 0
        self.randomness: object = None

    @property
    def ring(self) -> Ring:
        """§2.4 Parameter profiles: the profile's ring Z_2^l."""
        return self.profile.ring

    @property
    def is_computing_party(self) -> bool:
        """§1 Overview: True for P0, P1 and P2."""
        return self.party < COMPUTING_PARTIES

    def send(self, to: int, step: str, payload: bytes) -> None:
        """§12.1 Channels: send ``payload`` to party ``to``, labelled with ``step``."""
        if to == self.party or not 0 <= to < self.network.parties:
            raise ValueError(f"P{self.party} cannot send to party {to}")
        self._check_not_aborted(step)
        envelope = Envelope(step, self.clock + 1, payload)
        self.stats.rounds = max(self.stats.rounds, envelope.depth)
        self.stats.bytes_sent += len(payload)
        self.stats.messages_sent += 1
        self.stats.record(to, step, payload, self.keep_transcript)
        self.network.queues[(self.party, to)].put(envelope)

    def recv(self, frm: int, step: str, length: int) -> bytes:
        """§12.1 Channels: receive the next message from ``frm``; check step and length."""
        channel = self.network.queues[(frm, self.party)]
        deadline = time.monotonic() + self.network.timeout_seconds
        while True:
            self._check_not_aborted(step)
            try:
                envelope = channel.get(timeout=0.05)
                if envelope is ABORT_SIGNAL:
                    continue
                break
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise ProtocolAbort(
                        f"P{self.party} timed out waiting for P{frm} at step {step!r}"
                    ) from None
        if envelope.step != step:
            raise WireFormatError(f"P{self.party} expected step {step!r} from P{frm}, got {envelope.step!r}")
        if len(envelope.payload) != length:
            raise WireFormatError(
                f"P{self.party} expected {length} bytes from P{frm} at step {step!r}, "
                f"got {len(envelope.payload)}"
            )
        self.clock = max(self.clock, envelope.depth)
        self.stats.rounds = max(self.stats.rounds, self.clock)
        self.stats.bytes_received += length
        self.stats.messages_received += 1
        return envelope.payload

    def barrier(self) -> None:
        """§12.5 In-process runtime: synchronise all simulated parties (benchmarks only; never counted)."""
        try:
            self.network.barrier.wait(timeout=self.network.timeout_seconds)
        except threading.BrokenBarrierError:
            raise ProtocolAbort(f"P{self.party}: barrier broken: {self.network.abort_reason}") from None

    def _check_not_aborted(self, step: str) -> None:
        if self.network.aborted.is_set():
            raise ProtocolAbort(f"P{self.party} aborted at step {step!r}: {self.network.abort_reason}")


def encoded_length(ring: Ring, count: int) -> int:
    """§12.2 Wire encoding: the byte length of ``count`` elements of ``ring``."""
    if ring.modulus == 2:
        return (count + 7) // 8
    return count * ring.element_bytes


def encode_elements(ring: Ring, values: Sequence[int]) -> bytes:
    """§12.2 Wire encoding: little-endian fixed width; Z_2 packed LSB first."""
    if ring.modulus == 2:
        packed = bytearray(encoded_length(ring, len(values)))
        for index, bit in enumerate(values):
            packed[index // 8] |= (bit & 1) << (index % 8)
        return bytes(packed)
    width = ring.element_bytes
    return b"".join(value.to_bytes(width, "little") for value in values)


def decode_elements(ring: Ring, data: bytes, count: int) -> list[int]:
    """§12.2 Wire encoding: the inverse of :func:`encode_elements`, checking every element.

    Raises :class:`WireFormatError` on a wrong length or an element outside the ring.
    """
    if len(data) != encoded_length(ring, count):
        raise WireFormatError(
            f"expected {encoded_length(ring, count)} bytes for {count} elements of "
            f"{ring.name}, got {len(data)}"
        )
    if ring.modulus == 2:
        values = [(data[index // 8] >> (index % 8)) & 1 for index in range(count)]
        if count % 8 and data[-1] >> (count % 8):
            raise WireFormatError("padding bits of a packed Z2 message are not zero")
        return values
    width = ring.element_bytes
    values = [int.from_bytes(data[i * width : (i + 1) * width], "little") for i in range(count)]
    for value in values:
        if value >= ring.modulus:
            raise WireFormatError(f"element {value} is outside {ring.name}")
    return values


def send_elements(ctx: PartyContext, to: int, step: str, ring: Ring, values: Sequence[int]) -> None:
    """§12.2 Wire encoding: encode ring elements and send them."""
    ctx.send(to, step, encode_elements(ring, values))


def recv_elements(ctx: PartyContext, frm: int, step: str, ring: Ring, count: int) -> list[int]:
    """§12.2 Wire encoding: receive exactly ``count`` elements of ``ring``."""
    return decode_elements(ring, ctx.recv(frm, step, encoded_length(ring, count)), count)


@dataclass
class RunResult(Generic[Result]):
    """§12.5 In-process runtime: the outputs and the accounting of one run, indexed by party."""

    outputs: list[Result]
    stats: list[PartyStats]

    @property
    def rounds(self) -> int:
        """§12.3 Rounds: the largest round clock over all parties."""
        return max(stats.rounds for stats in self.stats)


def run_parties(
    program: Callable[[PartyContext], Result],
    *,
    parties: int = COMPUTING_PARTIES,
    profile: Profile | str = "wide",
    seed: bytes | None = None,
    keep_transcript: bool = False,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> RunResult[Result]:
    """§12.5 In-process runtime: run ``program`` as ``parties`` threads and collect results.

    Each party first runs §3 key setup; ``seed`` pins every party's private key (tests);
    ``None`` draws keys from the operating system. The first exception raised by any
    party aborts the others and is re-raised here.
    """
    from refimpl.randomness import setup_keys

    chosen = get_profile(profile) if isinstance(profile, str) else profile
    network = Network(parties, timeout_seconds)
    contexts = [PartyContext(party, network, chosen, keep_transcript) for party in range(parties)]
    outputs: list[Result | None] = [None] * parties
    errors: list[BaseException | None] = [None] * parties

    def body(party: int) -> None:
        try:
            setup_keys(contexts[party], seed)
            outputs[party] = program(contexts[party])
        except BaseException as error:
            errors[party] = error
            network.abort(f"P{party} failed: {error}")

    threads = [threading.Thread(target=body, args=(party,), name=f"P{party}") for party in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first_error = _first_root_error(errors)
    if first_error is not None:
        raise first_error
    return RunResult([output for output in outputs], [ctx.stats for ctx in contexts])  # type: ignore[misc]


def _first_root_error(errors: list[BaseException | None]) -> BaseException | None:
    """The error that caused the abort, preferring it over the aborts it triggered."""
    raised = [error for error in errors if error is not None]
    for error in raised:
        if not isinstance(error, ProtocolAbort):
            return error
    return raised[0] if raised else None
