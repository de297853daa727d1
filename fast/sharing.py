"""§4 Replicated sharing, vectorised: input sharing, reveal and linear operations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from fast.randomness import component_elements, private_elements, zero_share
from fast.ring import (
    Array,
    Share,
    check_elements,
    dtype_of,
    reduce,
    ring_add,
    ring_mul,
    ring_neg,
    ring_sub,
    wraps_natively,
)
from fast.transport import recv_elements, send_elements
from refimpl.ring import Ring, ShapeError, element_count
from refimpl.sharing import ShareConsistencyError, following, preceding
from refimpl.transport import COMPUTING_PARTIES, PartyContext

__all__ = [
    "ShareConsistencyError",
    "add",
    "add_public",
    "concatenate",
    "deal_input",
    "following",
    "gather",
    "mul_public",
    "neg",
    "preceding",
    "public_share",
    "receive_input",
    "receive_revealed",
    "reveal",
    "reveal_checked",
    "reveal_to",
    "share_input",
    "sub",
    "sum_last_axis",
]


def share_input(
    ctx: PartyContext, ring: Ring, owner: int, values: Array | None, shape: tuple[int, ...]
) -> Share:
    """§4.1 Input by a computing party: P_owner shares ``values`` of public ``shape``.

    With j = owner: x_j = PRG(kappa_j), x_{j+1} = PRG(kappa_{j+1}) and
    x_{j+2} = v - x_j - x_{j+1}, which P_j sends to P_{j+1} and P_{j+2}.
    Pre-condition: ``values`` are elements of ``ring`` (only the owner passes them).
    """
    shape = tuple(shape)
    count = element_count(shape)
    j = owner
    if ctx.party == j:
        if values is None:
            raise ValueError(f"P{j} owns the input but passed no values")
        check_elements(ring, values, shape)
        mine = component_elements(ctx, j, ring, "input", count).reshape(shape)
        theirs = component_elements(ctx, following(j), ring, "input", count).reshape(shape)
        last = ring_sub(ring, ring_sub(ring, values, mine), theirs)
        send_elements(ctx, following(j), "input", ring, last)
        send_elements(ctx, preceding(j), "input", ring, last)
        return Share(ring, shape, mine, theirs)
    last = recv_elements(ctx, j, "input", ring, count).reshape(shape)
    if ctx.party == following(j):
        known = component_elements(ctx, following(j), ring, "input", count).reshape(shape)
        return Share(ring, shape, known, last)
    known = component_elements(ctx, j, ring, "input", count).reshape(shape)
    return Share(ring, shape, last, known)


def deal_input(ctx: PartyContext, ring: Ring, values: Array, shape: tuple[int, ...]) -> None:
    """§4.2 Input by a data holder: draw x_0, x_1 privately, x_2 = v - x_0 - x_1; send P_i (x_i, x_{i+1}).

    Run by the data holder; the computing parties run :func:`receive_input`.
    """
    shape = tuple(shape)
    check_elements(ring, values, shape)
    count = element_count(shape)
    component_0 = private_elements(ctx, ring, "deal", count)
    component_1 = private_elements(ctx, ring, "deal", count)
    component_2 = ring_sub(ring, ring_sub(ring, values.reshape(-1), component_0), component_1)
    components = [component_0, component_1, component_2]
    for party in range(COMPUTING_PARTIES):
        pair = np.concatenate([components[party], components[following(party)]])
        send_elements(ctx, party, "deal", ring, pair)


def receive_input(ctx: PartyContext, ring: Ring, holder: int, shape: tuple[int, ...]) -> Share:
    """§4.2 Input by a data holder: P_i receives its pair (x_i, x_{i+1}) from the holder."""
    shape = tuple(shape)
    count = element_count(shape)
    pair = recv_elements(ctx, holder, "deal", ring, 2 * count)
    return Share(ring, shape, pair[:count].reshape(shape), pair[count:].reshape(shape))


def _sum_components(ring: Ring, a: Array, b: Array, c: Array) -> Array:
    return ring_add(ring, ring_add(ring, a, b), c)


def reveal(ctx: PartyContext, x: Share) -> Array:
    """§4.3 Reveal to all: P_i sends x_i to P_{i+1}; each party adds its three components."""
    count = element_count(x.shape)
    send_elements(ctx, following(ctx.party), "reveal", x.ring, x.first)
    missing = recv_elements(ctx, preceding(ctx.party), "reveal", x.ring, count).reshape(x.shape)
    return _sum_components(x.ring, x.first, x.second, missing)


def reveal_to(ctx: PartyContext, x: Share, receiver: int) -> Array | None:
    """§4.4 Reveal to one party: P_{j+1} sends x_{j+2} to P_j; outside receivers get x_i + alpha_i.

    The zero-sharing alpha (§3.6) makes the three values an outside receiver sees a
    uniformly random additive sharing of x. Returns the values at the receiver and ``None``
    at the other computing parties; an outside receiver (party 3 or higher) runs
    :func:`receive_revealed`.
    """
    count = element_count(x.shape)
    if receiver >= COMPUTING_PARTIES:
        alpha = zero_share(ctx, x.ring, count).reshape(x.shape)
        send_elements(ctx, receiver, "reveal-to", x.ring, ring_add(x.ring, x.first, alpha))
        return None
    if ctx.party == following(receiver):
        send_elements(ctx, receiver, "reveal-to", x.ring, x.second)
    if ctx.party != receiver:
        return None
    missing = recv_elements(ctx, following(receiver), "reveal-to", x.ring, count).reshape(x.shape)
    return _sum_components(x.ring, x.first, x.second, missing)


def receive_revealed(ctx: PartyContext, ring: Ring, shape: tuple[int, ...]) -> Array:
    """§4.4 Reveal to one party: an outside receiver adds x_i + alpha_i sent by P0, P1, P2."""
    shape = tuple(shape)
    count = element_count(shape)
    parts = [
        recv_elements(ctx, party, "reveal-to", ring, count).reshape(shape)
        for party in range(COMPUTING_PARTIES)
    ]
    return _sum_components(ring, *parts)


def reveal_checked(ctx: PartyContext, x: Share) -> Array:
    """§4.5 Checked reveal: the missing component comes from both other parties and must agree.

    P_i sends x_i to P_{i+1} and x_{i+1} to P_{i-1}. Raises
    :class:`ShareConsistencyError` naming the component and the first differing index.
    """
    count = element_count(x.shape)
    send_elements(ctx, following(ctx.party), "reveal-checked", x.ring, x.first)
    send_elements(ctx, preceding(ctx.party), "reveal-checked", x.ring, x.second)
    from_preceding = recv_elements(ctx, preceding(ctx.party), "reveal-checked", x.ring, count)
    from_following = recv_elements(ctx, following(ctx.party), "reveal-checked", x.ring, count)
    differing = np.flatnonzero(from_preceding != from_following)
    if differing.size:
        raise ShareConsistencyError(
            f"P{ctx.party}: component x_{preceding(ctx.party)} from P{preceding(ctx.party)} and "
            f"P{following(ctx.party)} differ at index {int(differing[0])}"
        )
    return _sum_components(x.ring, x.first, x.second, from_preceding.reshape(x.shape))


def _check_same_layout(x: Share, y: Share) -> None:
    if x.ring != y.ring:
        raise ShapeError(f"ring mismatch: {x.ring.name} and {y.ring.name}")
    if x.shape != y.shape:
        raise ShapeError(f"shape mismatch: {x.shape} and {y.shape}")


def add(x: Share, y: Share) -> Share:
    """§4.6 Linear operations: x + y, componentwise."""
    _check_same_layout(x, y)
    return Share(x.ring, x.shape, ring_add(x.ring, x.first, y.first), ring_add(x.ring, x.second, y.second))


def sub(x: Share, y: Share) -> Share:
    """§4.6 Linear operations: x - y, componentwise."""
    _check_same_layout(x, y)
    return Share(x.ring, x.shape, ring_sub(x.ring, x.first, y.first), ring_sub(x.ring, x.second, y.second))


def neg(x: Share) -> Share:
    """§4.6 Linear operations: -x, componentwise."""
    return Share(x.ring, x.shape, ring_neg(x.ring, x.first), ring_neg(x.ring, x.second))


def _public_operand(ring: Ring, constant: int | ArrayLike, shape: tuple[int, ...]) -> Array:
    if isinstance(constant, int):
        return np.full(shape, constant % ring.modulus, dtype=dtype_of(ring))
    array = np.asarray(constant)
    if array.size != element_count(shape):
        raise ShapeError(f"{array.size} public values for {element_count(shape)} shared values")
    return reduce(ring, array).reshape(shape)


def add_public(ctx: PartyContext, x: Share, constant: int | ArrayLike) -> Share:
    """§4.6 Linear operations: x + c adds c to component x_0 (held by P0 and P2)."""
    constants = _public_operand(x.ring, constant, x.shape)
    first, second = x.first, x.second
    if ctx.party == 0:
        first = ring_add(x.ring, first, constants)
    if ctx.party == COMPUTING_PARTIES - 1:
        second = ring_add(x.ring, second, constants)
    return Share(x.ring, x.shape, first, second)


def mul_public(x: Share, constant: int | ArrayLike) -> Share:
    """§4.6 Linear operations: c * x, componentwise (c a scalar or one value per element)."""
    constants = _public_operand(x.ring, constant, x.shape)
    return Share(x.ring, x.shape, ring_mul(x.ring, x.first, constants), ring_mul(x.ring, x.second, constants))


def gather(x: Share, indices: ArrayLike, shape: tuple[int, ...]) -> Share:
    """§4.6 Linear operations: rearrange elements locally: element e of the output is x[indices[e]] (flat)."""
    shape = tuple(shape)
    positions = np.asarray(indices, dtype=np.intp).reshape(-1)
    if positions.size != element_count(shape):
        raise ShapeError(f"{positions.size} indices do not fill shape {shape}")
    outside = (positions < 0) | (positions >= x.first.size)
    if outside.any():
        index = int(positions[np.argmax(outside)])
        raise ShapeError(f"index {index} is outside a sharing of {x.first.size} elements")
    return Share(
        x.ring,
        shape,
        x.first.reshape(-1)[positions].reshape(shape),
        x.second.reshape(-1)[positions].reshape(shape),
    )


def concatenate(parts: Sequence[Share]) -> Share:
    """§4.6 Linear operations: the flat concatenation of sharings in one ring, shape (total,)."""
    ring = parts[0].ring
    if any(part.ring != ring for part in parts):
        raise ShapeError("cannot concatenate sharings of different rings")
    first = np.concatenate([part.first.reshape(-1) for part in parts])
    second = np.concatenate([part.second.reshape(-1) for part in parts])
    return Share(ring, (first.size,), first, second)


def public_share(ctx: PartyContext, ring: Ring, values: ArrayLike, shape: tuple[int, ...]) -> Share:
    """§4.6 Linear operations: the sharing (c, 0, 0) of public values c, without communication."""
    shape = tuple(shape)
    zero = np.zeros(shape, dtype=dtype_of(ring))
    return add_public(ctx, Share(ring, shape, zero, zero.copy()), values)


def sum_last_axis(x: Share) -> Share:
    """§4.6 Linear operations: the sum over the last axis, shape x.shape[:-1]."""
    if not x.shape:
        raise ShapeError("cannot sum over the last axis of a scalar sharing")
    if wraps_natively(x.ring):
        dtype = dtype_of(x.ring)
        return Share(
            x.ring, x.shape[:-1], x.first.sum(axis=-1, dtype=dtype), x.second.sum(axis=-1, dtype=dtype)
        )

    def sums(values: Array) -> Array:
        totals: Array = (values.astype(np.int64).sum(axis=-1) % x.ring.modulus).astype(dtype_of(x.ring))
        return totals

    return Share(x.ring, x.shape[:-1], sums(x.first), sums(x.second))
