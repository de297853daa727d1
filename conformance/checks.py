"""Checks of the outcomes of §6 and §7 operations against plaintext, the spec's costs and each other.

Every function returns a list of problems (empty: the outcome conforms), so that a property
can report all of them at once:

* :func:`exact_problems`: the output (and any further output, such as ReLU's derivative)
  reconstructs to the plaintext model of :mod:`conformance.operations`, every sharing is a
  consistent replicated sharing, and the operation-specific invariants below hold;
* :func:`material_problems`: revealed comparison material (§6.2) is consistent: the low
  k bits of r are the lifted bits, ``flipped_bits`` = beta * bits, ``top`` = r_k XOR beta,
  beta is a bit, and the masks are in range, equal at P0 and P1 and absent at P2;
* :func:`compare_vector_problems`: P0's and P1's parts of the private-compare vector (§7.2)
  add up to the vector of the spec's formula, which has exactly one zero when
  [r mod 2^k > c mod 2^k] XOR beta and none otherwise;
* :func:`cost_problems`: the online segment costs what the spec states (bytes and messages
  exactly; rounds exactly when the operation ran on its own after the offline phase, at
  most the stated rounds when it followed other operations in the same run, whose parties'
  round clocks may lag, §12.3), and the offline segment costs what §6.2 states for the
  material generated;
* :func:`outcome_differences`: two implementations' outcomes differ in no field.
"""

from __future__ import annotations

from dataclasses import fields

from conformance.operations import (
    COMPUTING_PARTIES,
    MATERIAL_VALUES,
    Case,
    Outcome,
    PartyShares,
    is_consistent,
    material_cost,
    material_layout,
    output_count,
    output_ring,
    plain_comparison,
    plain_named,
    reconstruct,
    segment_cost,
    stated_cost,
)
from refimpl.ring import BINARY, Profile, element_count, to_signed


def outcome_differences(reference: Outcome, other: Outcome) -> list[str]:
    """Every field in which two outcomes differ (shares, values, transcripts, costs)."""
    return [
        f"{item.name}: refimpl {getattr(reference, item.name)!r} != other {getattr(other, item.name)!r}"
        for item in fields(Outcome)
        if getattr(reference, item.name) != getattr(other, item.name)
    ]


def shares_problems(name: str, shares: PartyShares, modulus: int, count: int) -> list[str]:
    problems = []
    if len(shares) != COMPUTING_PARTIES:
        return [f"{name}: {len(shares)} parties' shares"]
    for party, (first, second) in enumerate(shares):
        if len(first) != count or len(second) != count:
            problems.append(f"{name}: P{party} holds {len(first)}/{len(second)} elements, expected {count}")
        if not all(0 <= value < modulus for value in first + second):
            problems.append(f"{name}: P{party} holds values outside the ring")
    if not problems and not is_consistent(shares):
        problems.append(f"{name}: inconsistent replicated sharing {shares}")
    return problems


def material_problems(profile: Profile, count: int, outcome: Outcome) -> list[str]:
    """§6.2: revealed comparison material of ``count`` elements is consistent (module docstring)."""
    named = outcome.named_shares or {}
    values = outcome.named_values or {}
    problems: list[str] = []
    opened: dict[str, list[int]] = {}
    for name, (ring, shape) in material_layout(profile, count).items():
        if name not in named:
            problems.append(f"material has no {name}")
            continue
        problems += shares_problems(name, named[name], ring.modulus, element_count(shape))
        opened[name] = reconstruct(ring, named[name])
    if problems:
        return problems
    k = profile.comparison_bits
    p = profile.field.modulus
    r, bits, beta = opened["mask"], opened["mask_bits"], opened["flip"]
    for element in range(count):
        expected_bits = [(r[element] >> j) & 1 for j in range(k)]
        row = bits[element * k : (element + 1) * k]
        if row != expected_bits:
            problems.append(
                f"element {element}: lifted bits {row} are not the low k bits of r = {r[element]}"
            )
        if beta[element] not in (0, 1):
            problems.append(f"element {element}: beta = {beta[element]} is not a bit")
        flipped = opened["flipped_bits"][element * k : (element + 1) * k]
        if flipped != [beta[element] * bit % p for bit in row]:
            problems.append(f"element {element}: flipped_bits {flipped} != beta * bits")
        top = ((r[element] >> k) & 1) ^ beta[element]
        if opened["top"][element] != top:
            problems.append(f"element {element}: top {opened['top'][element]} != r_k XOR beta = {top}")
    width = k + 1
    ranges = {"multipliers": (1, p), "blinding": (0, p), "rotations": (0, width)}
    lengths = {"multipliers": count * width, "blinding": count * width, "rotations": count}
    for name in MATERIAL_VALUES:
        per_party = values.get(name)
        if per_party is None or len(per_party) != COMPUTING_PARTIES:
            problems.append(f"material has no {name} for every party")
            continue
        first, second, third = per_party
        if first != second:
            problems.append(f"{name} differ at P0 and P1")
        if third:
            problems.append(f"P2 holds {name} {third}")
        low, high = ranges[name]
        if first is None or len(first) != lengths[name] or not all(low <= value < high for value in first):
            problems.append(f"{name} {first} are not {lengths[name]} values in [{low}, {high})")
    return problems


def private_compare_vector(profile: Profile, c: int, r_bits: list[int], beta: int) -> list[int]:
    """§7.2: the vector d (k + 1 positions, as integers before reduction mod p) for opened c.

    For j < k: d_j = 1 + c_j - r_j + sum_{i>j} (c_i + (1 - 2 c_i) r_i) - 2 c_j beta + 2 beta r_j;
    d_k = 1 - beta + sum_i (c_i beta + (1 - 2 c_i) beta r_i).
    """
    k = profile.comparison_bits
    c_bits = [(c >> j) & 1 for j in range(k)]
    vector = []
    for j in range(k):
        above = sum(c_bits[i] + (1 - 2 * c_bits[i]) * r_bits[i] for i in range(j + 1, k))
        vector.append(1 + c_bits[j] - r_bits[j] + above - 2 * c_bits[j] * beta + 2 * beta * r_bits[j])
    vector.append(1 - beta + sum(c_bits[i] * beta + (1 - 2 * c_bits[i]) * beta * r_bits[i] for i in range(k)))
    return vector


def compare_vector_problems(case: Case, outcome: Outcome) -> list[str]:
    """§7.2 Private compare: step 1: d^(0) + d^(1) is the vector; one zero iff r > c (mod 2^k) XOR beta."""
    profile = case.profile_object
    k = profile.comparison_bits
    p = profile.field.modulus
    opened = list(case.values or [])
    named = outcome.named_shares or {}
    if outcome.party_outputs is None or outcome.party_outputs[2] is not None:
        return ["P2 computed a part of the private-compare vector"]
    bits = reconstruct(profile.field, named["mask_bits"])
    beta = reconstruct(profile.field, named["flip"])
    d = outcome.output or []
    problems = []
    width = k + 1
    for element, c in enumerate(opened):
        r_bits = bits[element * k : (element + 1) * k]
        expected = private_compare_vector(profile, c, r_bits, beta[element])
        row = d[element * width : (element + 1) * width]
        if row != [value % p for value in expected]:
            problems.append(f"element {element}: d = {row}, the spec's formula gives {expected}")
        if not all(0 <= value < p for value in expected):
            problems.append(f"element {element}: d leaves [0, p) before reduction: {expected}")
        r_low = sum(bit << j for j, bit in enumerate(r_bits))
        wanted = int(r_low > c % (1 << k)) ^ beta[element]
        if row.count(0) != wanted:
            problems.append(f"element {element}: {row.count(0)} zeros, expected {wanted}")
    return problems


def sign_bits_problems(case: Case, outcome: Outcome) -> list[str]:
    """§7.3: v is public (the same at every party) and v XOR (r_k XOR beta) = DReLU(x)."""
    ring = case.profile_object.ring
    values = outcome.party_outputs or []
    if len({tuple(value or []) for value in values}) != 1:
        return [f"the public bits differ between the parties: {values}"]
    named = outcome.named_shares or {}
    problems = shares_problems("top", named["top"], ring.modulus, element_count(case.shape))
    if problems:
        return problems
    top = reconstruct(ring, named["top"])
    x = reconstruct(ring, case.x or [])
    expected = [int(value >= 0) for value in to_signed(ring, x)]
    got = [v ^ u for v, u in zip(values[0] or [], top, strict=True)]
    return [] if got == expected else [f"v XOR u = {got}, DReLU(x) = {expected}"]


def exact_problems(case: Case, outcome: Outcome) -> list[str]:
    """Correctness and consistency of an exact §6/§7 operation (module docstring)."""
    if case.operation == "generate_comparison_material":
        return material_problems(case.profile_object, case.count, outcome)
    if case.operation == "compare_vector":
        return compare_vector_problems(case, outcome)
    if case.operation == "sign_bits":
        return sign_bits_problems(case, outcome)
    ring = output_ring(case)
    if outcome.shares is None or outcome.output is None:
        return ["no output sharing"]
    problems = shares_problems("output", outcome.shares, ring.modulus, output_count(case))
    if case.operation == "mask_bits" and case.x is None:
        named = outcome.named_shares or {}
        mask = reconstruct(case.profile_object.ring, named["mask"])
        expected = [(value >> bit) & 1 for value in mask for bit in range(case.bits)]
    else:
        expected = plain_comparison(case)
    if not problems and outcome.output != expected:
        problems.append(f"output {outcome.output}, expected {expected}")
    for name, model in plain_named(case).items():
        shares = (outcome.named_shares or {}).get(name)
        if shares is None:
            problems.append(f"no {name} output")
            continue
        named_problems = shares_problems(name, shares, case.profile_object.ring.modulus, len(model))
        problems += named_problems
        if not named_problems and reconstruct(case.profile_object.ring, shares) != model:
            problems.append(f"{name} {reconstruct(case.profile_object.ring, shares)}, expected {model}")
    if case.operation in ("drelu", "compare") and outcome.output and set(outcome.output) - {0, 1}:
        problems.append("a DReLU result is not a bit")
    if output_ring(case) == BINARY and set(outcome.output) - {0, 1}:
        problems.append("a Z_2 output is not a bit")
    return problems


def cost_problems(case: Case, outcome: Outcome, alone: bool, material: int | None) -> list[str]:
    """The online and offline segments against the stated costs (module docstring).

    ``alone``: the operation ran by itself after the offline phase (rounds must be equal);
    ``material``: the elements of material that the run generated first (``None``: the run
    had no offline phase).
    """
    problems = []
    stated = stated_cost(case)
    assert stated is not None and outcome.online is not None
    measured = segment_cost(outcome.online)
    if measured.bytes_sent != stated.bytes_sent or measured.messages_sent != stated.messages_sent:
        problems.append(f"online traffic {measured}, the spec states {stated}")
    if measured.rounds > stated.rounds or (alone and measured.rounds != stated.rounds):
        relation = "==" if alone else "<="
        problems.append(f"online rounds {measured.rounds}, expected {relation} {stated.rounds}")
    if material is None:
        if outcome.offline is not None:
            problems.append("an offline phase ran although no operation consumes material")
        return problems
    if outcome.offline is None:
        return [*problems, "no offline phase"]
    offline = segment_cost(outcome.offline)
    expected = material_cost(case.profile_object, material)
    if offline != expected:
        problems.append(f"offline cost {offline}, §6.2 states {expected} for {material} elements")
    return problems
