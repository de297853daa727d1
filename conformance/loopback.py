"""Loopback helpers for the deployment tests and benchmark (§12.6)."""

from __future__ import annotations

import socket

import numpy as np

from fast.arithmetic import mul
from fast.ring import dtype_of
from fast.sharing import reveal, share_input
from refimpl.transport import PartyContext


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago (bound, then released)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def arithmetic_program(ctx: PartyContext) -> list[int]:
    """A small deployed program (module level: spawn pickles it by name): two inputs, mul, reveal."""
    ring = ctx.ring
    dtype = dtype_of(ring)
    x = share_input(ctx, ring, 0, np.array([3, 5, 7, 11], dtype=dtype) if ctx.party == 0 else None, (4,))
    y = share_input(ctx, ring, 1, np.array([2, 4, 6, 8], dtype=dtype) if ctx.party == 1 else None, (4,))
    return [int(value) for value in reveal(ctx, mul(ctx, x, y))]
