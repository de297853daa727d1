"""§3 Randomness, vectorised: batched PRG expansion into numpy arrays.

Keys, counters and key setup are :mod:`refimpl.randomness`'s own objects, so both
implementations draw the same bytes in the same order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fast.ring import Array, Share, dtype_of, ring_sub
from refimpl.randomness import (
    DOMAIN,
    KEY_BYTES,
    KeyStream,
    PartyRandomness,
    draw_key,
    party_key,
    party_randomness,
    prg_bytes,
    sample_width,
    setup_keys,
)
from refimpl.ring import Ring, element_count
from refimpl.transport import COMPUTING_PARTIES, PartyContext

__all__ = [
    "DOMAIN",
    "KEY_BYTES",
    "KeyStream",
    "PartyRandomness",
    "accepted_bytes",
    "bytes_to_elements",
    "component_elements",
    "draw_below",
    "draw_elements",
    "draw_integers",
    "draw_key",
    "party_key",
    "party_randomness",
    "prg_bytes",
    "private_elements",
    "prss_share",
    "sample_width",
    "setup_keys",
    "zero_share",
]


def bytes_to_elements(ring: Ring, data: bytes, count: int) -> Array:
    """§3.2 Sampling ring elements: Z_2^l from l/8 little-endian bytes; Z_2 from the low bit of a byte."""
    sample_width(ring)
    if ring.modulus == 2:
        return np.frombuffer(data, dtype=np.uint8, count=count) & np.uint8(1)
    wire = np.dtype(dtype_of(ring)).newbyteorder("<")
    return np.frombuffer(data, dtype=wire, count=count).astype(dtype_of(ring))


def accepted_bytes(key: bytes, counter: int, label: str, count: int, bound: int) -> NDArray[np.uint8]:
    """§3.2 Sampling ring elements: the first ``count`` PRG bytes below the largest multiple of ``bound``.

    The PRG output of (key, counter, label) is read as far as needed; each accepted byte b
    yields b mod bound, exactly uniform in [0, bound).
    """
    if not 1 < bound <= 256:
        raise ValueError(f"byte rejection sampling needs 1 < bound <= 256, got {bound}")
    limit = 256 // bound * bound
    length = count + count // 2 + 64
    while True:
        raw = np.frombuffer(prg_bytes(key, counter, label, length), dtype=np.uint8)
        accepted = np.compress(raw < limit, raw) if limit < 256 else raw
        if accepted.size >= count:
            return accepted[:count] % np.uint8(bound) if bound < 256 else accepted[:count].copy()
        length *= 2


def draw_elements(stream: KeyStream, ring: Ring, label: str, count: int) -> Array:
    """§3.2 Sampling ring elements: one draw of ``count`` elements from ``stream``.

    Z_2^l and Z_2 read fixed-width words; Z_p takes accepted bytes (:func:`accepted_bytes`).
    """
    if ring.is_power_of_two:
        return bytes_to_elements(ring, stream.draw_bytes(label, count * sample_width(ring)), count)
    return draw_below(stream, label, count, ring.modulus)


def draw_below(stream: KeyStream, label: str, count: int, bound: int) -> NDArray[np.uint8]:
    """§3.2 Sampling ring elements: one draw of ``count`` integers uniform in [0, bound), bound <= 256."""
    values = accepted_bytes(stream.key, stream.counter, label, count, bound)
    stream.counter += 1
    return values


def draw_integers(stream: KeyStream, label: str, count: int, bound: int) -> NDArray[np.uint64]:
    """§3.2 Sampling ring elements: one draw of ``count`` integers in [0, bound), 8-byte words mod bound.

    The statistical distance from uniform is below bound / 2^64 per integer.
    """
    words = np.frombuffer(stream.draw_bytes(label, count * 8), dtype="<u8", count=count)
    return words.astype(np.uint64) % np.uint64(bound)


def private_elements(ctx: PartyContext, ring: Ring, label: str, count: int) -> Array:
    """§3.4 Private randomness: ``count`` elements from the party's own stream."""
    return draw_elements(party_randomness(ctx).own, ring, label, count)


def component_elements(ctx: PartyContext, component: int, ring: Ring, label: str, count: int) -> Array:
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
    first = component_elements(ctx, ctx.party, ring, "prss", count).reshape(shape)
    second = component_elements(ctx, following, ring, "prss", count).reshape(shape)
    return Share(ring, shape, first, second)


def zero_share(ctx: PartyContext, ring: Ring, count: int) -> Array:
    """§3.6 Zero-sharing: alpha_i = PRG(kappa_i) - PRG(kappa_{i+1}); the alphas sum to 0."""
    following = (ctx.party + 1) % COMPUTING_PARTIES
    this = component_elements(ctx, ctx.party, ring, "zero", count)
    after = component_elements(ctx, following, ring, "zero", count)
    return ring_sub(ring, this, after)
