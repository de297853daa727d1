"""§3 Randomness: the PRG, key setup, pseudo-random secret sharing and zero-sharing.

Every random value of the protocol is a deterministic function of a 32-byte key, a
per-key counter and a label, so that two implementations holding the same keys draw the
same values in the same order.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from refimpl.ring import Ring, Share, element_count
from refimpl.transport import COMPUTING_PARTIES, PartyContext

DOMAIN = b"MP-BADNET/v1"
KEY_BYTES = 32
AES_KEY_BYTES = 16
ZERO_COUNTER_BLOCK = bytes(16)


def draw_key(key: bytes, counter: int, label: str) -> bytes:
    """§3.1 PRG: the AES-128 key of one draw, SHA-256(DOMAIN || key || LE64(counter) || label)[:16]."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"PRG keys are {KEY_BYTES} bytes, got {len(key)}")
    material = DOMAIN + key + counter.to_bytes(8, "little") + label.encode("ascii")
    return hashlib.sha256(material).digest()[:AES_KEY_BYTES]


def prg_bytes(key: bytes, counter: int, label: str, length: int) -> bytes:
    """§3.1 PRG: the first ``length`` bytes of AES-128-CTR under the draw key, counter block 0."""
    cipher = Cipher(algorithms.AES(draw_key(key, counter, label)), modes.CTR(ZERO_COUNTER_BLOCK))
    return cipher.encryptor().update(bytes(length))


def sample_width(ring: Ring) -> int:
    """§3.2 Sampling ring elements: PRG bytes per element for Z_2^l and Z_2 (Z_p is rejection-sampled)."""
    if ring.modulus == 2:
        return 1
    if ring.is_power_of_two:
        return ring.bits // 8
    raise ValueError(f"{ring.name} elements are rejection-sampled, see draw_below")


def bytes_to_elements(ring: Ring, data: bytes, count: int) -> list[int]:
    """§3.2 Sampling ring elements: Z_2^l from l/8 little-endian bytes; Z_2 from the low bit of a byte."""
    width = sample_width(ring)
    return [
        int.from_bytes(data[index * width : (index + 1) * width], "little") % ring.modulus
        for index in range(count)
    ]


def accepted_bytes(key: bytes, counter: int, label: str, count: int, bound: int) -> list[int]:
    """§3.2 Sampling ring elements: the first ``count`` PRG bytes below the largest multiple of ``bound``.

    The PRG output of (key, counter, label) is read as far as needed; each accepted byte b
    yields b mod bound, exactly uniform in [0, bound).
    """
    if not 1 < bound <= 256:
        raise ValueError(f"byte rejection sampling needs 1 < bound <= 256, got {bound}")
    limit = 256 // bound * bound
    length = count + count // 2 + 64
    while True:
        accepted = [byte % bound for byte in prg_bytes(key, counter, label, length) if byte < limit]
        if len(accepted) >= count:
            return accepted[:count]
        length *= 2


@dataclass
class KeyStream:
    """§3.1 PRG: a key and the counter of its next draw."""

    key: bytes
    counter: int = 0

    def draw_bytes(self, label: str, length: int) -> bytes:
        """§3.1 PRG: ``length`` bytes for (key, counter, label), then advance the counter."""
        data = prg_bytes(self.key, self.counter, label, length)
        self.counter += 1
        return data


def draw_elements(stream: KeyStream, ring: Ring, label: str, count: int) -> list[int]:
    """§3.2 Sampling ring elements: one draw of ``count`` elements from ``stream``.

    Z_2^l and Z_2 read fixed-width words; Z_p takes accepted bytes (:func:`accepted_bytes`).
    """
    if ring.is_power_of_two:
        return bytes_to_elements(ring, stream.draw_bytes(label, count * sample_width(ring)), count)
    return draw_below(stream, label, count, ring.modulus)


def draw_below(stream: KeyStream, label: str, count: int, bound: int) -> list[int]:
    """§3.2 Sampling ring elements: one draw of ``count`` integers uniform in [0, bound), bound <= 256."""
    values = accepted_bytes(stream.key, stream.counter, label, count, bound)
    stream.counter += 1
    return values


def draw_integers(stream: KeyStream, label: str, count: int, bound: int) -> list[int]:
    """§3.2 Sampling ring elements: one draw of ``count`` integers in [0, bound), 8-byte words mod bound.

    The statistical distance from uniform is below bound / 2^64 per integer.
    """
    data = stream.draw_bytes(label, count * 8)
    return [int.from_bytes(data[index * 8 : (index + 1) * 8], "little") % bound for index in range(count)]


@dataclass
class PartyRandomness:
    """§3.3 Key setup: a party's private stream and the streams of its component keys.

    P_i holds kappa_i (shared with P_{i-1}) and kappa_{i+1} (shared with P_{i+1}).
    """

    own: KeyStream
    components: dict[int, KeyStream] = field(default_factory=dict)


def party_key(party: int, seed: bytes | None) -> bytes:
    """§3.3 Key setup: a party's private key: from the OS, or pinned by a test seed."""
    if seed is None:
        return os.urandom(KEY_BYTES)
    material = DOMAIN + b"/test-party-key" + party.to_bytes(1, "little") + seed
    return hashlib.shake_128(material).digest(KEY_BYTES)


def setup_keys(ctx: PartyContext, seed: bytes | None) -> None:
    """§3.3 Key setup: P_i draws kappa_{i+1} from its private stream and sends it to P_{i+1}.

    Parties other than P0..P2 (data holders, the secondary server) keep only their
    private stream.
    """
    own = KeyStream(party_key(ctx.party, seed))
    randomness = PartyRandomness(own)
    ctx.randomness = randomness
    if not ctx.is_computing_party:
        return
    following = (ctx.party + 1) % COMPUTING_PARTIES
    preceding = (ctx.party - 1) % COMPUTING_PARTIES
    next_key = own.draw_bytes("component-key", KEY_BYTES)
    ctx.send(following, "key-setup", next_key)
    this_key = ctx.recv(preceding, "key-setup", KEY_BYTES)
    randomness.components[ctx.party] = KeyStream(this_key)
    randomness.components[following] = KeyStream(next_key)


def party_randomness(ctx: PartyContext) -> PartyRandomness:
    """§3.3 Key setup: the randomness state that key setup stored in ``ctx``."""
    randomness = ctx.randomness
    if not isinstance(randomness, PartyRandomness):
        raise RuntimeError(f"P{ctx.party} has no keys: run setup_keys first")
    return randomness


def private_elements(ctx: PartyContext, ring: Ring, label: str, count: int) -> list[int]:
    """§3.4 Private randomness: ``count`` elements from the party's own stream."""
    return draw_elements(party_randomness(ctx).own, ring, label, count)


def component_elements(ctx: PartyContext, component: int, ring: Ring, label: str, count: int) -> list[int]:
    """§3.5 PRSS: ``count`` elements from kappa_component (held by two parties)."""
    streams = party_randomness(ctx).components
    if component not in streams:
        raise RuntimeError(f"P{ctx.party} does not hold kappa_{component}")
    return draw_elements(streams[component], ring, label, count)


def prss_share(ctx: PartyContext, ring: Ring, shape: tuple[int, ...]) -> Share:
    """§3.5 PRSS: a replicated sharing of a uniformly random value, without communication.

    r_i = PRG(kappa_i); P_i holds (r_i, r_{i+1}).
    """
    count = element_count(shape)
    following = (ctx.party + 1) % COMPUTING_PARTIES
    first = component_elements(ctx, ctx.party, ring, "prss", count)
    second = component_elements(ctx, following, ring, "prss", count)
    return Share(ring, shape, first, second)


def zero_share(ctx: PartyContext, ring: Ring, count: int) -> list[int]:
    """§3.6 Zero-sharing: alpha_i = PRG(kappa_i) - PRG(kappa_{i+1}); the alphas sum to 0."""
    following = (ctx.party + 1) % COMPUTING_PARTIES
    this = component_elements(ctx, ctx.party, ring, "zero", count)
    after = component_elements(ctx, following, ring, "zero", count)
    return [(a - b) % ring.modulus for a, b in zip(this, after, strict=True)]
