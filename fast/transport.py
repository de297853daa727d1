"""§12 Communication, vectorised wire encoding; the runtime is :mod:`refimpl.transport`'s."""

from __future__ import annotations

import numpy as np

from fast.ring import Array, dtype_of
from refimpl.ring import Ring
from refimpl.transport import (
    COMPUTING_PARTIES,
    DEFAULT_TIMEOUT_SECONDS,
    SECONDARY_SERVER,
    Envelope,
    Network,
    PartyContext,
    PartyStats,
    ProtocolAbort,
    RunResult,
    WireFormatError,
    encoded_length,
    run_parties,
)

__all__ = [
    "COMPUTING_PARTIES",
    "DEFAULT_TIMEOUT_SECONDS",
    "SECONDARY_SERVER",
    "Envelope",
    "Network",
    "PartyContext",
    "PartyStats",
    "ProtocolAbort",
    "RunResult",
    "WireFormatError",
    "decode_elements",
    "encode_elements",
    "encoded_length",
    "recv_elements",
    "run_parties",
    "send_elements",
]


def _wire_dtype(ring: Ring) -> np.dtype[np.unsignedinteger]:
    return np.dtype(dtype_of(ring)).newbyteorder("<")


def encode_elements(ring: Ring, values: Array) -> bytes:
    """§12.2 Wire encoding: little-endian fixed width; Z_2 packed LSB first."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if ring.modulus == 2:
        return np.packbits(flat.astype(np.uint8) & 1, bitorder="little").tobytes()
    return flat.astype(_wire_dtype(ring), copy=False).tobytes()


def decode_elements(ring: Ring, data: bytes, count: int) -> Array:
    """§12.2 Wire encoding: the inverse of :func:`encode_elements`, checking every element.

    Raises :class:`WireFormatError` on a wrong length or an element outside the ring.
    """
    if len(data) != encoded_length(ring, count):
        raise WireFormatError(
            f"expected {encoded_length(ring, count)} bytes for {count} elements of "
            f"{ring.name}, got {len(data)}"
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    if ring.modulus == 2:
        if count % 8 and raw[-1] >> (count % 8):
            raise WireFormatError("padding bits of a packed Z2 message are not zero")
        return np.unpackbits(raw, bitorder="little", count=count)
    values = np.frombuffer(data, dtype=_wire_dtype(ring)).astype(dtype_of(ring))
    if ring.modulus < 256 and count and int(values.max()) >= ring.modulus:
        raise WireFormatError(f"element {int(values.max())} is outside {ring.name}")
    return values


def send_elements(ctx: PartyContext, to: int, step: str, ring: Ring, values: Array) -> None:
    """§12.2 Wire encoding: encode ring elements and send them."""
    ctx.send(to, step, encode_elements(ring, values))


def recv_elements(ctx: PartyContext, frm: int, step: str, ring: Ring, count: int) -> Array:
    """§12.2 Wire encoding: receive exactly ``count`` elements of ``ring`` (a flat array)."""
    return decode_elements(ring, ctx.recv(frm, step, encoded_length(ring, count)), count)
