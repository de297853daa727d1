"""§4 Replicated sharing: input sharing, reveal, and linear operations in every ring."""

from __future__ import annotations

from collections.abc import Sequence

from refimpl.randomness import component_elements, private_elements, zero_share
from refimpl.ring import Ring, ShapeError, Share, check_elements, element_count
from refimpl.transport import COMPUTING_PARTIES, PartyContext, recv_elements, send_elements


class ShareConsistencyError(ValueError):
    """§4.5 Checked reveal: two parties hold different values for the same share component."""


def following(party: int) -> int:
    """§2.5 Party indexing and replicated shares: P_{i+1}."""
    return (party + 1) % COMPUTING_PARTIES


def preceding(party: int) -> int:
    """§2.5 Party indexing and replicated shares: P_{i-1}."""
    return (party - 1) % COMPUTING_PARTIES


def share_input(
    ctx: PartyContext, ring: Ring, owner: int, values: Sequence[int] | None, shape: tuple[int, ...]
) -> Share:
    """§4.1 Input by a computing party: P_owner shares ``values`` of public ``shape``.

    With j = owner: x_j = PRG(kappa_j), x_{j+1} = PRG(kappa_{j+1}) and
    x_{j+2} = v - x_j - x_{j+1}, which P_j sends to P_{j+1} and P_{j+2}.
    Pre-condition: ``values`` are elements of ``ring`` (only the owner passes them).
    """
    count = element_count(shape)
    j = owner
    if ctx.party == j:
        if values is None:
            raise ValueError(f"P{j} owns the input but passed no values")
        check_elements(ring, values, shape)
        mine = component_elements(ctx, j, ring, "input", count)
        theirs = component_elements(ctx, following(j), ring, "input", count)
        last = [(v - a - b) % ring.modulus for v, a, b in zip(values, mine, theirs, strict=True)]
        send_elements(ctx, following(j), "input", ring, last)
        send_elements(ctx, preceding(j), "input", ring, last)
        return Share(ring, shape, mine, theirs)
    last = recv_elements(ctx, j, "input", ring, count)
    if ctx.party == following(j):
        known = component_elements(ctx, following(j), ring, "input", count)
        return Share(ring, shape, known, last)
    known = component_elements(ctx, j, ring, "input", count)
    return Share(ring, shape, last, known)


def deal_input(ctx: PartyContext, ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> None:
    """§4.2 Input by a data holder: draw x_0, x_1 privately, x_2 = v - x_0 - x_1; send P_i (x_i, x_{i+1}).

    Run by the data holder; the computing parties run :func:`receive_input`.
    """
    check_elements(ring, values, shape)
    count = element_count(shape)
    component_0 = private_elements(ctx, ring, "deal", count)
    component_1 = private_elements(ctx, ring, "deal", count)
    component_2 = [
        (v - a - b) % ring.modulus for v, a, b in zip(values, component_0, component_1, strict=True)
    ]
    components = [component_0, component_1, component_2]
    for party in range(COMPUTING_PARTIES):
        pair = components[party] + components[following(party)]
        send_elements(ctx, party, "deal", ring, pair)


def receive_input(ctx: PartyContext, ring: Ring, holder: int, shape: tuple[int, ...]) -> Share:
    """§4.2 Input by a data holder: P_i receives its pair (x_i, x_{i+1}) from the holder."""
    count = element_count(shape)
    pair = recv_elements(ctx, holder, "deal", ring, 2 * count)
    return Share(ring, shape, pair[:count], pair[count:])


def reveal(ctx: PartyContext, x: Share) -> list[int]:
    """§4.3 Reveal to all: P_i sends x_i to P_{i+1}; each party adds its three components."""
    count = element_count(x.shape)
    send_elements(ctx, following(ctx.party), "reveal", x.ring, x.first)
    missing = recv_elements(ctx, preceding(ctx.party), "reveal", x.ring, count)
    return _sum_components(x.ring, x.first, x.second, missing)


def reveal_to(ctx: PartyContext, x: Share, receiver: int) -> list[int] | None:
    """§4.4 Reveal to one party: P_{j+1} sends x_{j+2} to P_j; outside receivers get x_i + alpha_i.

    The zero-sharing alpha (§3.6) makes the three values an outside receiver sees a
    uniformly random additive sharing of x. Returns the values at the receiver and ``None``
    at the other computing parties; an outside receiver (party 3 or higher) runs
    :func:`receive_revealed`.
    """
    count = element_count(x.shape)
    if receiver >= COMPUTING_PARTIES:
        alpha = zero_share(ctx, x.ring, count)
        masked = [(a + b) % x.ring.modulus for a, b in zip(x.first, alpha, strict=True)]
        send_elements(ctx, receiver, "reveal-to", x.ring, masked)
        return None
    if ctx.party == following(receiver):
        send_elements(ctx, receiver, "reveal-to", x.ring, x.second)
    if ctx.party != receiver:
        return None
    missing = recv_elements(ctx, following(receiver), "reveal-to", x.ring, count)
    return _sum_components(x.ring, x.first, x.second, missing)


def receive_revealed(ctx: PartyContext, ring: Ring, shape: tuple[int, ...]) -> list[int]:
    """§4.4 Reveal to one party: an outside receiver adds x_i + alpha_i sent by P0, P1, P2."""
    count = element_count(shape)
    components = [recv_elements(ctx, party, "reveal-to", ring, count) for party in range(COMPUTING_PARTIES)]
    return _sum_components(ring, *components)


def reveal_checked(ctx: PartyContext, x: Share) -> list[int]:
    """§4.5 Checked reveal: the missing component comes from both other parties and must agree.

    P_i sends x_i to P_{i+1} and x_{i+1} to P_{i-1}. Raises
    :class:`ShareConsistencyError` naming the component and the first differing index.
    """
    count = element_count(x.shape)
    send_elements(ctx, following(ctx.party), "reveal-checked", x.ring, x.first)
    send_elements(ctx, preceding(ctx.party), "reveal-checked", x.ring, x.second)
    from_preceding = recv_elements(ctx, preceding(ctx.party), "reveal-checked", x.ring, count)
    from_following = recv_elements(ctx, following(ctx.party), "reveal-checked", x.ring, count)
    for index, (a, b) in enumerate(zip(from_preceding, from_following, strict=True)):
        if a != b:
            component = preceding(ctx.party)
            raise ShareConsistencyError(
                f"P{ctx.party}: component x_{component} from P{preceding(ctx.party)} and "
                f"P{following(ctx.party)} differ at index {index}"
            )
    return _sum_components(x.ring, x.first, x.second, from_preceding)


def _sum_components(ring: Ring, *components: Sequence[int]) -> list[int]:
    return [sum(parts) % ring.modulus for parts in zip(*components, strict=True)]


def _check_same_layout(x: Share, y: Share) -> None:
    if x.ring != y.ring:
        raise ShapeError(f"ring mismatch: {x.ring.name} and {y.ring.name}")
    if x.shape != y.shape:
        raise ShapeError(f"shape mismatch: {x.shape} and {y.shape}")


def add(x: Share, y: Share) -> Share:
    """§4.6 Linear operations: x + y, componentwise."""
    _check_same_layout(x, y)
    modulus = x.ring.modulus
    first = [(a + b) % modulus for a, b in zip(x.first, y.first, strict=True)]
    second = [(a + b) % modulus for a, b in zip(x.second, y.second, strict=True)]
    return Share(x.ring, x.shape, first, second)


def sub(x: Share, y: Share) -> Share:
    """§4.6 Linear operations: x - y, componentwise."""
    _check_same_layout(x, y)
    modulus = x.ring.modulus
    first = [(a - b) % modulus for a, b in zip(x.first, y.first, strict=True)]
    second = [(a - b) % modulus for a, b in zip(x.second, y.second, strict=True)]
    return Share(x.ring, x.shape, first, second)


def neg(x: Share) -> Share:
    """§4.6 Linear operations: -x, componentwise."""
    modulus = x.ring.modulus
    return Share(x.ring, x.shape, [-a % modulus for a in x.first], [-a % modulus for a in x.second])


def _public_operand(ring: Ring, constant: int | Sequence[int], count: int) -> list[int]:
    if isinstance(constant, int):
        return [constant % ring.modulus] * count
    if len(constant) != count:
        raise ShapeError(f"{len(constant)} public values for {count} shared values")
    return [value % ring.modulus for value in constant]


def add_public(ctx: PartyContext, x: Share, constant: int | Sequence[int]) -> Share:
    """§4.6 Linear operations: x + c adds c to component x_0 (held by P0 and P2)."""
    constants = _public_operand(x.ring, constant, len(x.first))
    modulus = x.ring.modulus
    first, second = list(x.first), list(x.second)
    if ctx.party == 0:
        first = [(a + c) % modulus for a, c in zip(first, constants, strict=True)]
    if ctx.party == COMPUTING_PARTIES - 1:
        second = [(a + c) % modulus for a, c in zip(second, constants, strict=True)]
    return Share(x.ring, x.shape, first, second)


def mul_public(x: Share, constant: int | Sequence[int]) -> Share:
    """§4.6 Linear operations: c * x, componentwise (c a scalar or one value per element)."""
    constants = _public_operand(x.ring, constant, len(x.first))
    modulus = x.ring.modulus
    first = [(a * c) % modulus for a, c in zip(x.first, constants, strict=True)]
    second = [(a * c) % modulus for a, c in zip(x.second, constants, strict=True)]
    return Share(x.ring, x.shape, first, second)


def gather(x: Share, indices: Sequence[int], shape: tuple[int, ...]) -> Share:
    """§4.6 Linear operations: rearrange elements locally: element e of the output is x[indices[e]] (flat)."""
    if len(indices) != element_count(shape):
        raise ShapeError(f"{len(indices)} indices do not fill shape {shape}")
    size = len(x.first)
    for index in indices:
        if not 0 <= index < size:
            raise ShapeError(f"index {index} is outside a sharing of {size} elements")
    return Share(x.ring, shape, [x.first[i] for i in indices], [x.second[i] for i in indices])


def concatenate(parts: Sequence[Share]) -> Share:
    """§4.6 Linear operations: the flat concatenation of sharings in one ring, shape (total,)."""
    ring = parts[0].ring
    if any(part.ring != ring for part in parts):
        raise ShapeError("cannot concatenate sharings of different rings")
    first = [value for part in parts for value in part.first]
    second = [value for part in parts for value in part.second]
    return Share(ring, (len(first),), first, second)


def public_share(ctx: PartyContext, ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> Share:
    """§4.6 Linear operations: the sharing (c, 0, 0) of public values c, without communication."""
    zero = [0] * element_count(shape)
    return add_public(ctx, Share(ring, shape, zero, list(zero)), values)


def sum_last_axis(x: Share) -> Share:
    """§4.6 Linear operations: the sum over the last axis, shape x.shape[:-1]."""
    if not x.shape:
        raise ShapeError("cannot sum over the last axis of a scalar sharing")
    width = x.shape[-1]
    rows = element_count(x.shape[:-1])
    modulus = x.ring.modulus

    def sums(values: list[int]) -> list[int]:
        return [sum(values[row * width : (row + 1) * width]) % modulus for row in range(rows)]

    return Share(x.ring, x.shape[:-1], sums(x.first), sums(x.second))
