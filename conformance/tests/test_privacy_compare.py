"""Privacy sanity of private compare (§7.1-§7.3): what a party sees opened is independent of x.

DReLU is run on two different secrets, x = 5.0 and x = -7.0 in fixed point (opposite signs),
each over :data:`RUNS` pinned seeds with :data:`ELEMENTS` elements per run (every element of
a run holds the same secret, with its own material; the two secrets' seed lists differ, so
the samples are independent). From the transcripts and each party's own shares we rebuild
what the parties see:

* P2 (the opener of §7.2): the sum of the two vectors it receives, row by row: whether a
  row has a zero, the zero's position, and the non-zero entries (uniform in Z_p^*); each of
  the two received vectors on its own (uniform in Z_p, blinded); and the bit c_k from P0;
* P0 and P1: the opened value c = x + 2^k + r (§7.1; the same at both), binned by its low,
  middle (around bit k) and top four bits, and the bit beta' that P2 returns;
* every party: its output share of DReLU (each component and their sum, low and top four
  bits), which belongs to its view (§13.2).

A chi-square homogeneity test (:func:`conformance.statistics.homogeneity_p_value`) compares
the two secrets' distributions of every feature; the threshold is p > 10^-4 for the family
of features of one implementation and profile (Bonferroni), conservative and deterministic
with the pinned seeds.

**Negative controls** show that the test would catch a leak. They post-process the same
views with material that P2 must not know (the library is unchanged): without the
rotations (the zero's position in the unrotated vector) or without the flip beta
(beta' XOR beta = [r > c mod 2^k]), the same test finds the secret (p < 10^-6).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.harness import Implementation, implementation, selected_names
from conformance.operations import replicate
from conformance.statistics import homogeneity_p_value
from conformance.strategies import PROFILE_NAMES
from refimpl.ring import BINARY, Profile, encode_fixed, get_profile
from refimpl.transport import PartyContext, decode_elements

RUNS = 20
ELEMENTS = 100
THRESHOLD = 1e-4
CONTROL_THRESHOLD = 1e-6
SECRETS = (5.0, -7.0)


@dataclass
class Views:
    """Per element: what P0, P1 and P2 saw, and (for the controls) material P2 must not know."""

    totals: list[list[int]]
    from_p0: list[list[int]]
    from_p1: list[list[int]]
    top_bits: list[int]
    opened_p0: list[int]
    opened_p1: list[int]
    flipped_p0: list[int]
    flipped_p1: list[int]
    rotations: list[int]
    flips: list[int]
    outputs: list[list[int]]
    """Per party: its DReLU output share components, first then second, for every element."""


def _received(
    transcripts: list[list[tuple[int, str, bytes]]], sender: int, receiver: int, step: str
) -> bytes:
    payloads = [payload for to, label, payload in transcripts[sender] if to == receiver and label == step]
    assert len(payloads) == 1, f"P{sender} sent {len(payloads)} {step!r} messages to P{receiver}"
    return payloads[0]


def _program(
    impl: Implementation, profile: Profile, secret: int, run_seed: str
) -> Callable[[PartyContext], Any]:
    """Every party starts from a fresh consistent sharing of ELEMENTS copies of ``secret``."""
    ring = profile.ring
    generator = random.Random(run_seed)
    first = [generator.randrange(ring.modulus) for _ in range(ELEMENTS)]
    second = [generator.randrange(ring.modulus) for _ in range(ELEMENTS)]
    last = [(secret - a - b) % ring.modulus for a, b in zip(first, second, strict=True)]
    shares = replicate([first, second, last])

    def program(ctx: PartyContext) -> dict[str, list[int]]:
        x = impl.make_share(ring, (ELEMENTS,), *shares[ctx.party])
        pool = impl.preprocessing.generate_comparison_pool(ctx, profile, ELEMENTS)
        material = pool.material
        output_first, output_second = impl.parts(impl.comparison.drelu(ctx, x, pool))
        mask_first, mask_second = impl.parts(material.mask)
        flip_first, _ = impl.parts(material.flip)
        return {
            "x": list(shares[ctx.party][0]) + list(shares[ctx.party][1]),
            "mask": mask_first + mask_second,
            "flip": flip_first,
            "rotations": impl.flat(material.rotations),
            "output": output_first + output_second,
        }

    return program


def collect(impl: Implementation, profile: Profile, secret_real: float, index: int) -> Views:
    """Run DReLU RUNS times on ELEMENTS copies of the secret; rebuild every party's view."""
    ring, field = profile.ring, profile.field
    k = profile.comparison_bits
    width = k + 1
    secret = encode_fixed(profile, [secret_real])[0]
    views = Views([], [], [], [], [], [], [], [], [], [], [[], [], []])
    for run in range(RUNS):
        seed = f"privacy-compare/{profile.name}/{index}/{run}"
        result = impl.run(_program(impl, profile, secret, seed), profile=profile.name, seed=seed.encode())
        transcripts = [list(stats.transcript) for stats in result.stats]
        outputs = result.outputs
        vectors = [
            decode_elements(field, _received(transcripts, sender, 2, "cmp-compare"), ELEMENTS * width)
            for sender in (0, 1)
        ]
        for element in range(ELEMENTS):
            row_0 = vectors[0][element * width : (element + 1) * width]
            row_1 = vectors[1][element * width : (element + 1) * width]
            views.from_p0.append(row_0)
            views.from_p1.append(row_1)
            views.totals.append([(a + b) % field.modulus for a, b in zip(row_0, row_1, strict=True)])
        views.top_bits += decode_elements(BINARY, _received(transcripts, 0, 2, "cmp-top"), ELEMENTS)
        for party, opened, flipped in (
            (0, views.opened_p0, views.flipped_p0),
            (1, views.opened_p1, views.flipped_p1),
        ):
            missing = decode_elements(ring, _received(transcripts, 2, party, "cmp-open"), ELEMENTS)
            own = outputs[party]
            public = 1 << k if party == 0 else 0
            for element in range(ELEMENTS):
                total = own["x"][element] + own["x"][ELEMENTS + element] + public
                total += own["mask"][element] + own["mask"][ELEMENTS + element] + missing[element]
                opened.append(total % ring.modulus)
            flipped += decode_elements(BINARY, _received(transcripts, 2, party, "cmp-result"), ELEMENTS)
        for party in range(3):
            views.outputs[party] += outputs[party]["output"]
        views.rotations += outputs[0]["rotations"]
        views.flips += [
            sum(parts) % field.modulus for parts in zip(*(outputs[p]["flip"] for p in range(3)), strict=True)
        ]
    return views


def features(profile: Profile, views: Views) -> dict[str, list[int]]:
    """The samples (bin labels) of every feature that a party sees (module docstring)."""
    k, bits = profile.comparison_bits, profile.ring_bits
    zero_rows = [row for row in views.totals if 0 in row]
    return {
        "P2: a zero in the row": [int(0 in row) for row in views.totals],
        "P2: zero position": [row.index(0) for row in zero_rows],
        "P2: non-zero entries": [value for row in views.totals for value in row if value],
        "P2: entries from P0": [value for row in views.from_p0 for value in row],
        "P2: entries from P1": [value for row in views.from_p1 for value in row],
        "P2: c_k from P0": views.top_bits,
        "P0/P1: c low bits": [value & 15 for value in views.opened_p0],
        "P0/P1: c bits k-3..k": [(value >> (k - 3)) & 15 for value in views.opened_p0],
        "P0/P1: c top bits": [value >> (bits - 4) for value in views.opened_p0],
        "P0: beta'": views.flipped_p0,
        "P1: beta'": views.flipped_p1,
        **{
            name: sample
            for party in range(3)
            for name, sample in _output_features(profile, views, party).items()
        },
    }


def _output_features(profile: Profile, views: Views, party: int) -> dict[str, list[int]]:
    """A party's DReLU output share (its whole view includes it, §13.2): each component and their sum."""
    modulus, bits = profile.ring.modulus, profile.ring_bits
    components = views.outputs[party]
    firsts, seconds = [], []
    for start in range(0, len(components), 2 * ELEMENTS):
        firsts += components[start : start + ELEMENTS]
        seconds += components[start + ELEMENTS : start + 2 * ELEMENTS]
    sums = [(a + b) % modulus for a, b in zip(firsts, seconds, strict=True)]
    features = {}
    for name, values in (("first", firsts), ("second", seconds), ("sum", sums)):
        features[f"P{party}: output {name}, low bits"] = [value & 15 for value in values]
        features[f"P{party}: output {name}, top bits"] = [value >> (bits - 4) for value in values]
    return features


def controls(profile: Profile, views: Views) -> dict[str, list[int]]:
    """Leaky variants of P2's view, rebuilt with material it does not have (module docstring)."""
    width = profile.comparison_bits + 1
    return {
        "zero position without rotation": [
            (row.index(0) + shift) % width
            for row, shift in zip(views.totals, views.rotations, strict=True)
            if 0 in row
        ],
        "beta' without the flip": [
            int(0 in row) ^ flip for row, flip in zip(views.totals, views.flips, strict=True)
        ],
    }


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
def test_private_compare_views_independent_of_secret(impl_name: str, profile: str) -> None:
    """Every party's view of DReLU has the same distribution for x = 5.0 and x = -7.0; the controls leak."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)
    views = [collect(impl, chosen, secret, index) for index, secret in enumerate(SECRETS)]
    assert views[0].opened_p0 == views[0].opened_p1, "P0 and P1 opened different values c"
    samples = [features(chosen, view) for view in views]
    problems = []
    for name in samples[0]:
        p_value = homogeneity_p_value(samples[0][name], samples[1][name])
        if p_value <= THRESHOLD / len(samples[0]):
            problems.append(f"{name}: p = {p_value:.3g}")
    assert not problems, "views depend on the secret:\n" + "\n".join(problems)
    leaky = [controls(chosen, view) for view in views]
    for name in leaky[0]:
        p_value = homogeneity_p_value(leaky[0][name], leaky[1][name])
        assert p_value < CONTROL_THRESHOLD, f"negative control {name!r} not detected: p = {p_value:.3g}"
