"""Preprocessing (§6) and comparison (§7): correctness, consistency, cost and refimpl == fast.

Each example of :func:`test_preprocessing` and :func:`test_comparisons` draws one case of
every operation of a bundle (:data:`conformance.strategies.BUNDLES`) and runs them one after
another in one run of every implementation under test (same seed), sharing one pool of
comparison material generated first, so that refimpl's slow offline phase (k sequential
ANDs) runs once per example. For every implementation and every operation it checks
(:mod:`conformance.checks`):

* correctness against plaintext, exactly: lift_bits and bit_to_ring (Z_2 to Z_p, Z_2^l and
  Z_2), mask_bits (of given shares, and of a PRSS mask revealed beside its bits),
  generate_comparison_material (everything revealed and checked for consistency),
  compare_vector (the §7.2 vector: one zero exactly when [r > c mod 2^k] XOR beta),
  sign_bits (v XOR u = DReLU), drelu, relu, relu_and_derivative, compare, select_shares,
  maximum, argmax (one-hot of the first maximum) and max_and_argmax, on inputs with
  -2^k <= signed(x) < 2^k including the domain's edges -2^k, -1, 0, 1, 2^k - 1 and ties
  (maximum: pairwise differences below 2^k);
* consistency of every output sharing;
* cost: every operation's bytes and messages equal the spec's
  (:func:`conformance.operations.comparison_cost`), its rounds are at most the spec's
  (exactly the spec's when it runs alone, checked by :func:`test_cost_alone`), and the
  offline phase costs what §6.2 states for the material;
* equivalence: with both implementations under test, the outcomes of refimpl and fast are
  identical in every field: shares at every party, outputs, revealed material and masks,
  transcripts and their hashes, bytes, messages and rounds, offline segment included.

The examples per profile are those of the settings profile (quick: 200, thorough: 2,000),
and every example runs every implementation under test, so each (implementation, profile)
pair gets that many examples of every operation. Their shapes have every dimension at least
1; the scalar and empty shapes (and material of count 0, maxima over zero rows) are the
pinned cases of :func:`test_edge_shapes`, run in every mode.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.checks import cost_problems, exact_problems, outcome_differences
from conformance.harness import implementation, selected_names
from conformance.operations import (
    COMPARISON_OPERATIONS,
    FIXED_POINT_OPERATIONS,
    OPERATIONS,
    Case,
    Outcome,
    PartyShares,
    material_count,
    replicate,
    run_case,
    run_cases,
)
from conformance.strategies import PROFILE_NAMES, bundles, seeds
from refimpl.ring import BINARY, Ring, element_count, encode_fixed, get_profile
from refimpl.transport import PartyContext


def _run_everywhere(cases: list[Case], seed: bytes) -> dict[str, list[Outcome]]:
    return {name: run_cases(implementation(name), cases, seed) for name in selected_names()}


def check_bundle(cases: list[Case], outcomes: dict[str, list[Outcome]]) -> None:
    """Correctness, consistency and cost of every exact case, then equivalence across implementations."""
    pooled = any(OPERATIONS[case.operation].pooled is not None for case in cases)
    material = sum(material_count(case) for case in cases) if pooled else None
    problems = []
    for name, results in outcomes.items():
        for case, outcome in zip(cases, results, strict=True):
            found = exact_problems(case, outcome) if case.operation not in FIXED_POINT_OPERATIONS else []
            found += cost_problems(case, outcome, alone=False, material=material)
            problems += [f"{name} {case.operation}: {problem}" for problem in found]
    if "refimpl" in outcomes:
        for name, results in outcomes.items():
            for case, reference, other in zip(cases, outcomes["refimpl"], results, strict=True):
                problems += [
                    f"{name} {case.operation}: {line}" for line in outcome_differences(reference, other)
                ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_preprocessing(profile: str, data: st.DataObject) -> None:
    """lift_bits, bit_to_ring, mask_bits and generate_comparison_material: exact, consistent, costed,
    and equal across implementations."""
    cases = data.draw(bundles("preprocessing", profile), label="cases")
    seed = data.draw(seeds(), label="seed")
    check_bundle(cases, _run_everywhere(cases, seed))


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_comparisons(profile: str, data: st.DataObject) -> None:
    """compare_vector, sign_bits, drelu, relu, relu_and_derivative, compare, select_shares,
    maximum, argmax and max_and_argmax: exact, consistent, costed, and equal across implementations."""
    cases = data.draw(bundles("comparison", profile), label="cases")
    seed = data.draw(seeds(), label="seed")
    check_bundle(cases, _run_everywhere(cases, seed))


def _shares(generator: random.Random, ring: Ring, values: list[int]) -> PartyShares:
    first = [generator.randrange(ring.modulus) for _ in values]
    second = [generator.randrange(ring.modulus) for _ in values]
    return replicate(
        [first, second, [(v - a - b) % ring.modulus for v, a, b in zip(values, first, second, strict=True)]]
    )


def alone_cases(profile_name: str) -> list[Case]:
    """A few cases of every §6-§8 operation (pseudo-random, pinned) to run on their own."""
    profile = get_profile(profile_name)
    ring = profile.ring
    k = profile.comparison_bits
    generator = random.Random(f"alone/{profile_name}")
    name = ring.name

    def signed(count: int, bits: int) -> list[int]:
        return [generator.randrange(-(1 << bits), 1 << bits) % ring.modulus for _ in range(count)]

    def shares(values: list[int], target: Ring = ring) -> PartyShares:
        return _shares(generator, target, values)

    cases = []
    for shape in [(), (0,), (3,), (2, 3)]:
        count = element_count(shape)
        for operation in ("drelu", "relu", "relu_and_derivative", "sign_bits"):
            cases.append(Case(operation, profile_name, name, shape, x=shares(signed(count, k))))
        cases.append(
            Case("compare", profile_name, name, shape, x=shares(signed(count, k)), y=shares([0] * count))
        )
        bits = [generator.randrange(2) for _ in range(count)]
        cases.append(
            Case(
                "select_shares",
                profile_name,
                name,
                shape,
                bit=shares(bits),
                x=shares(signed(count, 60)),
                y=shares(signed(count, 60)),
            )
        )
        for target in (ring.name, "Zp", "Z2"):
            for operation in ("lift_bits", "bit_to_ring"):
                cases.append(
                    Case(operation, profile_name, "Z2", shape, x=shares(bits, BINARY), target=target)
                )
        cases.append(Case("mask_bits", profile_name, name, shape, x=shares(signed(count, 60)), bits=k + 1))
        cases.append(Case("mask_bits", profile_name, name, shape, bits=2))
        reals = [-generator.uniform(0, 40) for _ in range(count)]
        cases.append(
            Case("exp_nonpositive", profile_name, name, shape, x=shares(encode_fixed(profile, reals)))
        )
        inverse = [generator.uniform(1, 10) for _ in range(count)]
        cases.append(
            Case(
                "reciprocal", profile_name, name, shape, x=shares(encode_fixed(profile, inverse)), upper=10.0
            )
        )
    for shape in [(1,), (4,), (2, 3), (1, 5), (3, 1), (0, 3)]:
        count = element_count(shape)
        for operation in ("maximum", "argmax", "max_and_argmax"):
            cases.append(Case(operation, profile_name, name, shape, x=shares(signed(count, k - 1))))
        logits = [generator.uniform(-5, 5) for _ in range(count)]
        cases.append(Case("softmax", profile_name, name, shape, x=shares(encode_fixed(profile, logits))))
    for count in (0, 1, 3):
        cases.append(Case("generate_comparison_material", profile_name, name, count=count))
        cases.append(
            Case("compare_vector", profile_name, name, (count,), values=signed(count, profile.ring_bits - 1))
        )
    return cases


def _material(case: Case) -> int | None:
    """The material a run of ``case`` generates first, ``None`` when it has no offline phase."""
    return material_count(case) if OPERATIONS[case.operation].pooled is not None else None


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
def test_cost_alone(impl_name: str, profile: str) -> None:
    """Run on its own after its offline phase, every §6-§8 operation costs exactly what the spec states:
    bytes and messages per party, rounds (DReLU and ReLU: 3), and the offline phase's."""
    impl = implementation(impl_name)
    problems = []
    covered = set()
    for index, case in enumerate(alone_cases(profile)):
        covered.add(case.operation)
        try:
            outcome = run_case(impl, case, f"alone/{index}".encode())
        except Exception as error:
            problems.append(f"{case.operation} {case.shape} (seed alone/{index}): raised {error!r}")
            continue
        problems += [
            f"{case.operation} {case.shape}: {problem}"
            for problem in cost_problems(case, outcome, alone=True, material=_material(case))
        ]
    assert covered == set(COMPARISON_OPERATIONS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("impl_name", selected_names())
def test_pool_and_slices(impl_name: str, profile: str) -> None:
    """§6.4: a pool hands out its material in order; take(n) equals slice_material of the whole."""
    impl = implementation(impl_name)
    chosen = get_profile(profile)

    def program(ctx: PartyContext) -> list[list[int]]:
        pool = impl.preprocessing.generate_comparison_pool(ctx, chosen, 5)
        whole = pool.material
        pieces = [pool.take(2), pool.take(0), pool.take(3)]
        expected = [
            impl.preprocessing.slice_material(whole, 0, 2),
            impl.preprocessing.slice_material(whole, 2, 0),
            impl.preprocessing.slice_material(whole, 2, 3),
        ]
        flat = []
        for piece, reference in zip(pieces, expected, strict=True):
            for item in (piece, reference):
                row = []
                for field_name in ("mask", "mask_bits", "flip", "flipped_bits", "top"):
                    share = getattr(item, field_name)
                    row += impl.flat(share.first) + impl.flat(share.second)
                for field_name in ("multipliers", "blinding", "rotations"):
                    row += impl.flat(getattr(item, field_name))
                flat.append([*row, item.count])
        return flat

    result = impl.run(program, profile=profile, seed=b"pool")
    for party_rows in result.outputs:
        for index in range(0, len(party_rows), 2):
            assert party_rows[index] == party_rows[index + 1], "take() differs from slice_material()"
        counts = [row[-1] for row in party_rows[::2]]
        assert counts == [2, 0, 3]


def is_edge(case: Case) -> bool:
    """A scalar or empty operand, or no material: the shapes the strategies leave out."""
    if case.operation == "generate_comparison_material":
        return case.count == 0
    return case.shape == () or element_count(case.shape) == 0


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_edge_shapes(profile: str) -> None:
    """The scalar and empty cases of every §6-§8 operation (:func:`alone_cases`), each run alone in
    every implementation: exact, consistent, costed, and equal across implementations."""
    edges = [case for case in alone_cases(profile) if is_edge(case)]
    assert {case.operation for case in edges} == set(COMPARISON_OPERATIONS)
    outcomes = {
        name: [
            run_case(implementation(name), case, f"edge/{index}".encode()) for index, case in enumerate(edges)
        ]
        for name in selected_names()
    }
    first = outcomes[selected_names()[0]]
    problems = []
    for name, results in outcomes.items():
        for case, outcome, reference in zip(edges, results, first, strict=True):
            found = exact_problems(case, outcome) if case.operation not in FIXED_POINT_OPERATIONS else []
            found += cost_problems(case, outcome, alone=True, material=_material(case))
            found += outcome_differences(reference, outcome)
            problems += [f"{name} {case.operation} {case.shape}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_comparisons_for_max_and_softmax(profile: str) -> None:
    """comparisons_for_max = rows (C - 1), comparisons_for_softmax = rows (2 C - 1), every implementation."""
    for name in selected_names():
        impl = implementation(name)
        for shape, rows, classes in [((5,), 1, 5), ((3, 4), 3, 4), ((2, 1), 2, 1), ((0, 3), 0, 3)]:
            assert impl.comparison.comparisons_for_max(shape) == rows * (classes - 1)
            assert impl.nonlinear.comparisons_for_softmax(shape) == rows * (2 * classes - 1)
