"""Non-linear approximations (§8): accuracy against binary64, cost and refimpl == fast.

Each example of :func:`test_approximations` draws one case of exp_nonpositive, reciprocal and
softmax (:data:`conformance.strategies.BUNDLES`) and runs them in one run of every
implementation under test (same seed, one pool of material), then checks, per
implementation, every output element against binary64 evaluated on the decoded inputs:

* exp_nonpositive on [-40, 0] with the edges 0, -u, -32 +- u, -40 (and -1000, clamped);
  reciprocal on [1, S] with the edges 1, 1 + u, S - u, S for upper bounds S in [1, 10];
  softmax on rows of up to 5 logits (ties included) in [-20, 20] (``wide``) or [-5, 5]
  (``paper``, where its results are meaningful at all, spec §8.3);
* each error is within the pointwise bound of :mod:`conformance.bounds` (spec §8's error
  analysis: approximation plus rounding, exact recurrences), and for ``wide`` also within
  the targets: exp error <= 1.2e-2 on [-40, 0] (spec §8.1's analytic bound at f = 13; the
  issue's 2e-3 was measured at f = 16), reciprocal relative error <= 1e-3 on [1, 10],
  softmax error <= 0.01 per probability;
* cost (bytes and messages exactly, rounds at most the spec's) and, with both
  implementations under test, identical outcomes in every field.

**Truncation failures.** A bound holds unless one of the evaluation's probabilistic
truncations fails (§5.3; probability |z| / 2^l each). For ``wide`` (l = 64) the failure
probability per evaluation is below 2^-28 (softmax row of 10: 2^-25), so over a thorough
run (2,000 examples of a few evaluations, or 2,000 rows) the chance that a legitimate
failure breaks the property is below 10^-4: every element must be within its bound. For
``paper`` (l = 32) failures are frequent (about 0.1 to 1 % per evaluation, spec §8), so an
element beyond its bound counts as a failure against an explicit allowance
(:class:`conformance.bounds.FailureAllowance`): the failures seen so far in the property
(per implementation) must stay within mu + 6 sqrt(mu) + 6, mu being the sum of the
failure probabilities (:func:`conformance.bounds.exp_failure_probability` and friends) of
every evaluation so far. Only gross errors count (:func:`conformance.bounds.is_truncation_failure`:
more than :data:`conformance.bounds.GROSS_RATIO` = 4 times the bound; a failed truncation
adds 2^(l-2f) = 1024 after decoding, and measured failures were never below 22 times their
bound); an error beyond its bound by less is a bound violation and fails the property at
once. Paper results are never skipped: each is within its bound, counted or a problem.

:func:`test_softmax_issue_criterion` is the issue's acceptance criterion: ``wide``, fast,
one row of 10 logits in [-20, 20] per example, at least 2,000 examples in every mode, each
probability within 0.01 of binary64 (and within its pointwise bound).

Both properties steer hypothesis towards large errors (``hypothesis.target``: the largest
error-to-bound ratio, and for the criterion the largest absolute error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from conformance.bounds import (
    SOFTMAX_TARGET,
    WIDE_EXP_TARGET,
    WIDE_RECIPROCAL_TARGET,
    FailureAllowance,
    exp_bound,
    exp_failure_probability,
    is_truncation_failure,
    reciprocal_error,
    reciprocal_failure_probability,
    softmax_bounds,
    softmax_failure_probability,
    softmax_reference,
)
from conformance.checks import cost_problems, outcome_differences, shares_problems
from conformance.harness import implementation, selected_names
from conformance.operations import Case, Outcome, material_count, plain_inputs, run_case, run_cases
from conformance.strategies import PROFILE_NAMES, bundles, logit_rows, seeds, shares_of
from refimpl.ring import decode_fixed, get_profile

ALLOWANCES: dict[tuple[str, str, str], FailureAllowance] = {}
"""Failures beyond the bound per (operation, implementation, profile), over a whole property."""
ISSUE_EXAMPLES = 2000
"""The issue's softmax criterion: at least 2,000 hypothesis examples, in every mode."""


def _allowance(operation: str, impl_name: str, profile: str) -> FailureAllowance:
    return ALLOWANCES.setdefault((operation, impl_name, profile), FailureAllowance())


def _strict(profile: str) -> bool:
    """``wide``: failures are negligible, every element must be within its bound."""
    return get_profile(profile).ring_bits == 64


def _ratio(error: float, bound: float) -> float:
    return error / bound if bound > 0 else math.inf


def _counted(profile: str, error: float, bound: float) -> bool:
    """An error beyond its bound counted as a truncation failure: ``paper`` only, and only if gross.

    Under ``wide`` every error beyond its bound is a problem; under ``paper`` one up to
    :data:`conformance.bounds.GROSS_RATIO` times its bound is a problem too (a small
    overshoot is a bound violation, not a failure), only a larger one is counted.
    """
    return not _strict(profile) and is_truncation_failure(error, bound)


def _inputs(case: Case) -> list[float]:
    return decode_fixed(case.profile_object, plain_inputs(case)[0])


@dataclass
class Accuracy:
    """The problems found, and the largest error and error-to-bound ratio of evaluations within bound."""

    problems: list[str] = field(default_factory=list)
    largest_error: float = 0.0
    largest_ratio: float = 0.0

    def observe(self, error: float, bound: float) -> None:
        if error <= bound:
            self.largest_error = max(self.largest_error, error)
            self.largest_ratio = max(self.largest_ratio, error / bound if bound > 0 else 0.0)


def accuracy(impl_name: str, case: Case, outcome: Outcome) -> Accuracy:
    """Every element within its bound (``wide``) or counted against the failure allowance (``paper``)."""
    profile = case.profile_object
    ring = profile.ring
    result = Accuracy()
    problems = result.problems
    if outcome.shares is None or outcome.real_output is None:
        return Accuracy(["no output sharing"])
    problems += shares_problems("output", outcome.shares, ring.modulus, len(outcome.real_output))
    x = _inputs(case)
    y = outcome.real_output
    failures = 0
    probability = 0.0
    evaluations = 0
    if case.operation == "exp_nonpositive":
        for value, got in zip(x, y, strict=True):
            error = abs(got - math.exp(value))
            result.observe(error, exp_bound(profile, value))
            evaluations += 1
            probability += exp_failure_probability(profile, value)
            if error > exp_bound(profile, value):
                if _counted(case.profile, error, exp_bound(profile, value)):
                    failures += 1
                else:
                    problems.append(
                        f"exp({value!r}) = {got!r}: error {error:.3g} > {exp_bound(profile, value):.3g}"
                    )
            elif _strict(case.profile) and value >= -40.0 and error > WIDE_EXP_TARGET:
                problems.append(f"exp({value!r}) = {got!r}: error {error:.3g} > target {WIDE_EXP_TARGET}")
    elif case.operation == "reciprocal":
        assert case.upper is not None
        for value, got in zip(x, y, strict=True):
            relative = abs(got * value - 1.0)
            result.observe(relative, reciprocal_error(profile, value, case.upper))
            evaluations += 1
            probability += reciprocal_failure_probability(profile, value, case.upper)
            if relative > reciprocal_error(profile, value, case.upper):
                if _counted(case.profile, relative, reciprocal_error(profile, value, case.upper)):
                    failures += 1
                else:
                    problems.append(
                        f"1/{value!r} = {got!r} (S = {case.upper!r}): relative error {relative:.3g} > "
                        f"{reciprocal_error(profile, value, case.upper):.3g}"
                    )
            elif _strict(case.profile) and 1.0 <= value <= 10.0 and relative > WIDE_RECIPROCAL_TARGET:
                problems.append(f"1/{value!r} = {got!r}: relative error {relative:.3g} > target")
    elif case.operation == "softmax":
        classes = case.shape[-1]
        for start in range(0, len(x), classes):
            row, row_out = x[start : start + classes], y[start : start + classes]
            evaluations += 1
            probability += softmax_failure_probability(profile, row)
            reference = softmax_reference(row)
            errors = [abs(a - b) for a, b in zip(row_out, reference, strict=True)]
            bounds = softmax_bounds(profile, row)
            if all(error <= bound for error, bound in zip(errors, bounds, strict=True)):
                result.largest_error = max(result.largest_error, *errors)
                result.largest_ratio = max(
                    result.largest_ratio, *(e / b for e, b in zip(errors, bounds, strict=True))
                )
            if any(error > bound for error, bound in zip(errors, bounds, strict=True)):
                worst = max(zip(errors, bounds, strict=True), key=lambda pair: _ratio(*pair))
                if _counted(case.profile, *worst):
                    failures += 1
                else:
                    problems.append(f"softmax({row}) = {row_out}: errors {errors} beyond {bounds}")
            elif _strict(case.profile) and max(errors) > SOFTMAX_TARGET:
                problems.append(f"softmax({row}) = {row_out}: error {max(errors):.3g} > {SOFTMAX_TARGET}")
    if not _strict(case.profile):
        allowance = _allowance(case.operation, impl_name, case.profile)
        allowance.record(failures, probability, evaluations)
        if allowance.exceeded():
            problems.append(f"truncation failures beyond the allowance: {allowance}")
    return result


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@given(data=st.data())
def test_approximations(profile: str, data: st.DataObject) -> None:
    """exp_nonpositive, reciprocal and softmax: within their bounds, costed, equal across implementations."""
    cases = data.draw(bundles("nonlinear", profile), label="cases")
    seed = data.draw(seeds(), label="seed")
    outcomes = {name: run_cases(implementation(name), cases, seed) for name in selected_names()}
    material = sum(material_count(case) for case in cases)
    problems = []
    for name, results in outcomes.items():
        for case, outcome in zip(cases, results, strict=True):
            checked = accuracy(name, case, outcome)
            if name == selected_names()[0]:
                target(checked.largest_ratio, label=f"{case.operation}: error / bound")
            found = checked.problems + cost_problems(case, outcome, alone=False, material=material)
            problems += [f"{name} {case.operation}: {problem}" for problem in found]
    if "refimpl" in outcomes:
        for name, results in outcomes.items():
            for case, reference, other in zip(cases, outcomes["refimpl"], results, strict=True):
                problems += [
                    f"{name} {case.operation}: {line}" for line in outcome_differences(reference, other)
                ]
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    "fast" not in selected_names(), reason="MPBADNET_IMPLEMENTATIONS explicitly excludes fast"
)
@settings(max_examples=max(ISSUE_EXAMPLES, settings().max_examples))
@given(data=st.data())
def test_softmax_issue_criterion(data: st.DataObject) -> None:
    """wide, fast, one row of 10 logits in [-20, 20]: every probability within 0.01 of binary64.

    At least 2,000 examples in quick and thorough mode alike (one row per example; about
    20 ms each). Each row is also checked against its pointwise bound (spec §8.3) and for
    its cost, run on its own: the online rounds are exactly 3 ceil(log2 10) + 34 = 46.
    """
    profile = get_profile("wide")
    logits = data.draw(logit_rows(profile, 10), label="logits")
    x = data.draw(shares_of(profile.ring, logits), label="shares")
    seed = data.draw(seeds(), label="seed")
    case = Case("softmax", "wide", profile.ring.name, (1, 10), x=x)
    outcome = run_case(implementation("fast"), case, seed)
    checked = accuracy("fast", case, outcome)
    target(checked.largest_error, label="softmax: largest absolute error")
    problems = checked.problems + cost_problems(case, outcome, alone=True, material=material_count(case))
    assert not problems, "\n".join(problems)


def test_only_gross_errors_are_truncation_failures() -> None:
    """A paper-profile error just beyond its bound is a violation; a failed truncation's is gross."""
    paper = get_profile("paper")
    bound = exp_bound(paper, -0.19)
    failure = 2.0 ** (paper.ring_bits - 2 * paper.fractional_bits)
    assert not _counted("paper", 1.01 * bound, bound)
    assert not _counted("paper", 4.0 * bound, bound)
    assert _counted("paper", failure, bound)
    assert _counted("paper", 0.0625, exp_bound(paper, -37.9))
    assert not _counted("wide", failure, bound)
