"""§3 Randomness, vectorised: batched PRG expansion into numpy arrays.

Keys, counters and key setup are :mod:`refimpl.randomness`'s own objects, so both
implementations draw the same bytes in the same order.
"""

from __future__ import annotations

import numpy as np

from fast.ring import Array, Share, dtype_of, ring_sub
from refimpl.randomness import (
    DOMAIN,
    KEY_BYTES,
    KeyStream,
    PartyRandomness,
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
    "bytes_to_elements",
    "component_elements",
    "draw_elements",
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
    """§3.2 Sampling ring elements: little-endian words, reduced into ``ring``.

    Z_2^l takes l/8 bytes per element; Z_p takes 8 bytes reduced mod p (statistical
    distance below 2^-57 from uniform); Z_2 takes the low bit of one byte.
    """
    width = sample_width(ring)
    if ring.modulus == 2:
        return np.frombuffer(data, dtype=np.uint8, count=count) & np.uint8(1)
    if ring.is_power_of_two:
        return np.frombuffer(data, dtype=np.dtype(dtype_of(ring)).newbyteorder("<"), count=count).astype(
            dtype_of(ring)
        )
    words = np.frombuffer(data, dtype="<u8", count=count)
    assert width == 8
    return (words % np.uint64(ring.modulus)).astype(np.uint8)


def draw_elements(stream: KeyStream, ring: Ring, label: str, count: int) -> Array:
    """§3.2 Sampling ring elements: one draw of ``count`` elements from ``stream``."""
    return bytes_to_elements(ring, stream.draw_bytes(label, count * sample_width(ring)), count)


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
