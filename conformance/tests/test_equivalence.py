"""refimpl == fast, bit for bit.

For the same case and seed, both implementations must produce the same output shares
(first and second component of every party), the same revealed values, and the same
accounting: every party's transcript (and so ``PartyStats.transcript_hash``),
``bytes_sent``, ``messages_sent``, ``bytes_received`` and rounds. Local functions
(ring, randomness, wire encoding, local products and shifts) must return the same values,
or raise the same exception class.

The operations of chapters 2 to 5 and 12 are compared here, one case per example; those of
chapters 6 to 8 (preprocessing, comparison, non-linear) are compared, with their offline
phase, by the properties of ``test_comparison.py`` and ``test_nonlinear.py``, which run
every example on both implementations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import CORE_OPERATIONS, Outcome, replicate, run_case
from conformance.strategies import (
    PROFILE_NAMES,
    cases,
    element_lists,
    get_ring,
    keys,
    ring_names,
    seeds,
    shapes,
    share_triples,
)
from refimpl.ring import element_count, get_profile

pytestmark = pytest.mark.skipif(
    set(selected_names()) != {"refimpl", "fast"},
    reason="MPBADNET_IMPLEMENTATIONS explicitly narrowed the implementations under test",
)


def _both() -> tuple[Implementation, Implementation]:
    return implementation("refimpl"), implementation("fast")


def _differences(reference: Outcome, fast: Outcome) -> list[str]:
    return [
        f"{item.name}: refimpl {getattr(reference, item.name)!r} != fast {getattr(fast, item.name)!r}"
        for item in fields(Outcome)
        if getattr(reference, item.name) != getattr(fast, item.name)
    ]


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("operation", sorted(CORE_OPERATIONS))
@given(data=st.data())
def test_same_outcome(operation: str, profile: str, data: st.DataObject) -> None:
    """Same shares, values, transcripts, hashes, bytes, messages and rounds for equal seeds."""
    case = data.draw(cases(operation, profile), label="case")
    seed = data.draw(seeds(), label="seed")
    reference, fast = _both()
    differences = _differences(run_case(reference, case, seed), run_case(fast, case, seed))
    assert not differences, "\n".join(differences)


def _outcome(function: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("raised", exception class name) of calling ``function``."""
    try:
        return "ok", function()
    except Exception as error:
        return "raised", type(error).__name__


def _same(reference: Callable[[], Any], fast: Callable[[], Any]) -> None:
    assert _outcome(reference) == _outcome(fast)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_ring_functions(profile: str, data: st.DataObject) -> None:
    """reduce, to_signed, decode_fixed, check_elements and element_count agree."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    shape = data.draw(shapes(), label="shape")
    values = data.draw(element_lists(ring, element_count(shape)), label="values")
    integers = data.draw(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=6), label="integers")
    _same(
        lambda: reference.ring.reduce(ring, integers),
        lambda: fast.flat(fast.ring.reduce(ring, np.array(integers, dtype=np.int64))),
    )
    _same(
        lambda: reference.ring.to_signed(ring, values),
        lambda: fast.flat(fast.ring.to_signed(ring, fast.plain(ring, values, shape))),
    )
    _same(
        lambda: reference.ring.check_elements(ring, values, shape),
        lambda: fast.ring.check_elements(ring, fast.plain(ring, values, shape), shape),
    )
    _same(lambda: reference.ring.element_count(shape), lambda: fast.ring.element_count(shape))
    if ring == get_profile(profile).ring:
        profile_object = get_profile(profile)
        _same(
            lambda: reference.ring.decode_fixed(profile_object, values),
            lambda: fast.flat_floats(fast.ring.decode_fixed(profile_object, fast.plain(ring, values, shape))),
        )


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_randomness_functions(profile: str, data: st.DataObject) -> None:
    """prg_bytes, sample_width, bytes_to_elements, draw_elements, accepted_bytes, draw_below and
    draw_integers agree (Z_p is rejection-sampled: sample_width raises for it in both)."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    key = data.draw(keys(), label="key")
    counter = data.draw(st.integers(0, (1 << 64) - 1), label="counter")
    label = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", max_size=12), label="label")
    count = data.draw(st.integers(0, 8), label="count")
    _same(lambda: reference.randomness.sample_width(ring), lambda: fast.randomness.sample_width(ring))
    width = reference.randomness.sample_width(ring) if ring.is_power_of_two else 1
    _same(
        lambda: reference.randomness.prg_bytes(key, counter, label, count * width),
        lambda: fast.randomness.prg_bytes(key, counter, label, count * width),
    )
    data_bytes = reference.randomness.prg_bytes(key, counter, label, count * width)
    _same(
        lambda: reference.randomness.bytes_to_elements(ring, data_bytes, count),
        lambda: fast.flat(fast.randomness.bytes_to_elements(ring, data_bytes, count)),
    )
    _same(
        lambda: reference.randomness.draw_elements(
            reference.randomness.KeyStream(key, counter), ring, label, count
        ),
        lambda: fast.flat(
            fast.randomness.draw_elements(fast.randomness.KeyStream(key, counter), ring, label, count)
        ),
    )
    bound = data.draw(st.one_of(st.sampled_from([2, 66, 67, 256]), st.integers(-2, 300)), label="bound")
    _same(
        lambda: reference.randomness.accepted_bytes(key, counter, label, count, bound),
        lambda: fast.flat(fast.randomness.accepted_bytes(key, counter, label, count, bound)),
    )
    streams = [
        (reference.randomness.KeyStream(key, counter), fast.randomness.KeyStream(key, counter))
        for _ in range(2)
    ]
    _same(
        lambda: reference.randomness.draw_below(streams[0][0], label, count, bound),
        lambda: fast.flat(fast.randomness.draw_below(streams[0][1], label, count, bound)),
    )
    assert streams[0][0].counter == streams[0][1].counter
    integer_bound = data.draw(st.integers(1, 1 << 40), label="integer bound")
    _same(
        lambda: reference.randomness.draw_integers(streams[1][0], label, count, integer_bound),
        lambda: fast.flat(fast.randomness.draw_integers(streams[1][1], label, count, integer_bound)),
    )
    assert streams[1][0].counter == streams[1][1].counter


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_wire_functions(profile: str, data: st.DataObject) -> None:
    """encoded_length, encode_elements and decode_elements agree, also on malformed bytes."""
    reference, fast = _both()
    ring = get_ring(get_profile(profile), data.draw(ring_names(profile), label="ring"))
    count = data.draw(st.integers(0, 12), label="count")
    values = data.draw(element_lists(ring, count), label="values")
    assert reference.transport.encoded_length(ring, count) == fast.transport.encoded_length(ring, count)
    _same(
        lambda: reference.transport.encode_elements(ring, values),
        lambda: fast.transport.encode_elements(ring, fast.plain(ring, values, (count,))),
    )
    length = reference.transport.encoded_length(ring, count)
    raw = data.draw(
        st.one_of(st.binary(min_size=length, max_size=length), st.binary(max_size=length + 2)), label="raw"
    )
    _same(
        lambda: reference.transport.decode_elements(ring, raw, count),
        lambda: fast.flat(fast.transport.decode_elements(ring, raw, count)),
    )


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_local_arithmetic(profile: str, data: st.DataObject) -> None:
    """local_products, local_matrix_products, matmul_shape, shift_a and shift_b agree."""
    reference, fast = _both()
    profile_object = get_profile(profile)
    ring = get_ring(profile_object, data.draw(ring_names(profile), label="ring"))
    shape = data.draw(shapes(), label="shape")
    count = element_count(shape)
    x = replicate(data.draw(share_triples(ring, count), label="x"))[0]
    y = replicate(data.draw(share_triples(ring, count), label="y"))[0]
    _same(
        lambda: reference.arithmetic.local_products(
            reference.make_share(ring, shape, *x), reference.make_share(ring, shape, *y)
        ),
        lambda: fast.flat(
            fast.arithmetic.local_products(fast.make_share(ring, shape, *x), fast.make_share(ring, shape, *y))
        ),
    )
    rows, inner, columns = (data.draw(st.integers(0, 3), label=name) for name in ("m", "k", "n"))
    a = replicate(data.draw(share_triples(ring, rows * inner), label="a"))[1]
    b = replicate(data.draw(share_triples(ring, inner * columns), label="b"))[1]
    _same(
        lambda: reference.arithmetic.local_matrix_products(
            reference.make_share(ring, (rows, inner), *a), reference.make_share(ring, (inner, columns), *b)
        ),
        lambda: fast.flat(
            fast.arithmetic.local_matrix_products(
                fast.make_share(ring, (rows, inner), *a), fast.make_share(ring, (inner, columns), *b)
            )
        ),
    )
    _same(
        lambda: reference.arithmetic.matmul_shape(
            reference.make_share(ring, shape, *x), reference.make_share(ring, shape, *y)
        ),
        lambda: fast.arithmetic.matmul_shape(
            fast.make_share(ring, shape, *x), fast.make_share(ring, shape, *y)
        ),
    )
    arithmetic_ring = profile_object.ring
    values = data.draw(element_lists(arithmetic_ring, count), label="shifted")
    bits = data.draw(st.integers(1, arithmetic_ring.bits - 1), label="bits")
    _same(
        lambda: reference.arithmetic.shift_a(arithmetic_ring, values, bits),
        lambda: fast.flat(
            fast.arithmetic.shift_a(arithmetic_ring, fast.plain(arithmetic_ring, values, shape), bits)
        ),
    )
    _same(
        lambda: reference.arithmetic.shift_b(arithmetic_ring, values, bits),
        lambda: fast.flat(
            fast.arithmetic.shift_b(arithmetic_ring, fast.plain(arithmetic_ring, values, shape), bits)
        ),
    )
