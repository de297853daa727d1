"""The mutant catalogue (spec §13.7): protocol mutations that the conformance suite must kill.

A :class:`Mutant` is a named, security- or correctness-relevant change to the protocol code:
a mask removed, a component reused, a counter that does not advance, a message sent to the
wrong party. Most change ``refimpl`` and ``fast`` alike (a bug shared by both twins, which
the refimpl == fast equivalence cannot see); a few change only ``fast``'s own speed paths.
Each names the tests that must kill it.

``python -m conformance.mutants`` (``nox -s mutants``) applies each mutant to a temporary
copy of the tree (the tree itself is never edited), regenerates the known-answer vectors
from the mutant inside that copy (so that a stale snapshot cannot be what kills it), runs
the mutant's tests there and prints a kill table: which test failed first, or SURVIVED. A
control run of every named test on the unmutated copy comes first: a test that fails
without a mutant kills nothing. The command exits non-zero unless the control passes and
every mutant is killed.

Future protocol work extends :data:`CATALOGUE`: every new subprotocol adds at least one
mutant of its own, and :mod:`conformance.tests.test_mutants` checks that every edit still
applies to the tree exactly as written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("refimpl", "fast", "conformance", "spec", "pyproject.toml")
"""What a mutant's temporary copy holds (the tests need the spec for its anchors)."""
TIMEOUT_SECONDS = 1200
"""A mutant whose tests run longer than this counts as not killed."""
FAILED_LINE = re.compile(r"^(FAILED|ERROR) (\S+)")

PRIVACY = "conformance/tests/test_privacy.py"
PRIVACY_COMPARE = "conformance/tests/test_privacy_compare.py"
CORRECTNESS = "conformance/tests/test_correctness.py"
COMPARISON = "conformance/tests/test_comparison.py"
ERRORS = "conformance/tests/test_errors.py"
DRAWS = "conformance/tests/test_draws.py"
EQUIVALENCE = "conformance/tests/test_equivalence.py"
TRAINING = "conformance/tests/test_training.py"
ORACLE = "conformance/tests/test_secure_oracle.py"


class CatalogueError(ValueError):
    """A mutant's edit does not apply to the tree exactly as written."""


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in ``path``; ``old`` occurs exactly ``occurrences`` times."""

    path: str
    old: str
    new: str
    occurrences: int = 1


@dataclass(frozen=True)
class Mutant:
    """One named mutation, the category of the issue it covers, and the tests that must kill it."""

    name: str
    category: str
    description: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]


def _both(module: str, refimpl_old: str, refimpl_new: str, fast_old: str, fast_new: str) -> tuple[Edit, ...]:
    """The same mutation in refimpl/<module>.py and fast/<module>.py."""
    return (
        Edit(f"refimpl/{module}.py", refimpl_old, refimpl_new),
        Edit(f"fast/{module}.py", fast_old, fast_new),
    )


def _same(module: str, old: str, new: str, occurrences: int = 1) -> tuple[Edit, ...]:
    """A mutation whose text is the same in both twins."""
    return (
        Edit(f"refimpl/{module}.py", old, new, occurrences),
        Edit(f"fast/{module}.py", old, new, occurrences),
    )


CATALOGUE: tuple[Mutant, ...] = (
    Mutant(
        "mul-zero-sharing-dropped",
        "zero-sharing mask",
        "§5.1 resharing sends t_i instead of t_i + alpha_i",
        _both(
            "arithmetic",
            "masked = [(t + a) % ring.modulus for t, a in zip(products, alpha, strict=True)]",
            "masked = [(t + 0 * a) % ring.modulus for t, a in zip(products, alpha, strict=True)]",
            "masked = ring_add(ring, products.reshape(shape), alpha)",
            "masked = ring_add(ring, products.reshape(shape), alpha * 0)",
        ),
        (PRIVACY, "-k", "mul and not truncate"),
    ),
    Mutant(
        "reveal-to-outside-zero-sharing-dropped",
        "zero-sharing mask",
        "§4.4 an outside receiver gets x_i instead of x_i + alpha_i",
        _both(
            "sharing",
            "masked = [(a + b) % x.ring.modulus for a, b in zip(x.first, alpha, strict=True)]",
            "masked = [(a + 0 * b) % x.ring.modulus for a, b in zip(x.first, alpha, strict=True)]",
            'send_elements(ctx, receiver, "reveal-to", x.ring, ring_add(x.ring, x.first, alpha))',
            'send_elements(ctx, receiver, "reveal-to", x.ring, ring_add(x.ring, x.first, alpha * 0))',
        ),
        (PRIVACY, "-k", "reveal_to_3"),
    ),
    Mutant(
        "zero-sharing-does-not-sum-to-zero",
        "correctness",
        "§3.6 alpha_i = PRG(kappa_i) without subtracting PRG(kappa_{i+1})",
        _both(
            "randomness",
            "return [(a - b) % ring.modulus for a, b in zip(this, after, strict=True)]",
            "return [(a - 0 * b) % ring.modulus for a, b in zip(this, after, strict=True)]",
            "return ring_sub(ring, this, after)",
            "return ring_sub(ring, this, after * 0)",
        ),
        (CORRECTNESS, "-k", "zero_share or exact_operation"),
    ),
    Mutant(
        "input-prss-masks-zero",
        "PRSS mask",
        "§4.1 the owner's PRSS components x_j, x_{j+1} are zero, so it sends its input in the clear",
        _both(
            "randomness",
            "    return draw_elements(streams[component], ring, label, count)",
            "    drawn = draw_elements(streams[component], ring, label, count)\n"
            '    return [0 * value for value in drawn] if label == "input" else drawn',
            "    return draw_elements(streams[component], ring, label, count)",
            '    return draw_elements(streams[component], ring, label, count) * (label != "input")',
        ),
        (PRIVACY, "-k", "share_input"),
    ),
    Mutant(
        "comparison-mask-zero",
        "PRSS mask",
        "§6.2 the comparison mask r is zero, so the masked opening c = x + 2^k shows x to P0 and P1",
        _same(
            "preprocessing",
            "mask = prss_share(ctx, ring, (count,))",
            "mask = mul_public(prss_share(ctx, ring, (count,)), 0)",
        ),
        (PRIVACY_COMPARE,),
    ),
    Mutant(
        "flip-missing",
        "missing flip",
        "§6.2 the flip beta is zero, so P2's zero test is the comparison bit itself",
        _same(
            "preprocessing",
            "flip_bit = prss_share(ctx, BINARY, (count,))",
            "flip_bit = mul_public(prss_share(ctx, BINARY, (count,)), 0)",
        ),
        (PRIVACY_COMPARE,),
    ),
    Mutant(
        "rotation-missing",
        "missing rotation",
        "§6.2 every rotation is 0, so the zero's position in P2's vector is the first differing bit",
        _both(
            "preprocessing",
            'rotations = draw_integers(stream, "cmp-rotation", count, width)',
            'rotations = [0 * value for value in draw_integers(stream, "cmp-rotation", count, width)]',
            'rotations = draw_integers(stream, "cmp-rotation", count, width).astype(np.intp)',
            'rotations = draw_integers(stream, "cmp-rotation", count, width).astype(np.intp) * 0',
        ),
        (PRIVACY_COMPARE,),
    ),
    Mutant(
        "compare-multiplier-one",
        "private-compare multiplier fixed to 1",
        "§6.2 every multiplier m is 1, so P2 sees the private-compare vector d itself",
        _both(
            "preprocessing",
            '1 + value for value in draw_below(stream, "cmp-multiplier",',
            '1 + 0 * value for value in draw_below(stream, "cmp-multiplier",',
            "field.modulus - 1).astype(np.int16) + 1",
            "field.modulus - 1).astype(np.int16) * 0 + 1",
        ),
        (PRIVACY_COMPARE,),
    ),
    Mutant(
        "truncation-mask-zero",
        "truncation mask",
        "§5.3 B = 0 in truncate, so P0's opening A is x itself",
        _both(
            "arithmetic",
            '    mask = component_elements(ctx, 2, ring, "trunc-mask", count)\n    if ctx.party == 2:',
            '    mask = [0 * b for b in component_elements(ctx, 2, ring, "trunc-mask", count)]\n'
            "    if ctx.party == 2:",
            '    mask = component_elements(ctx, 2, ring, "trunc-mask", count)\n    if ctx.party == 2:',
            '    mask = component_elements(ctx, 2, ring, "trunc-mask", count) * 0\n    if ctx.party == 2:',
        ),
        (PRIVACY, "-k", "truncate and not mul"),
    ),
    Mutant(
        "product-truncation-mask-zero",
        "truncation mask",
        "§5.4 B = 0 in mul_truncate, so P0's opening A is the product z itself",
        _both(
            "arithmetic",
            'mask = component_elements(ctx, 2, ring, "trunc-mask", count)\n    rho =',
            'mask = [0 * b for b in component_elements(ctx, 2, ring, "trunc-mask", count)]\n    rho =',
            'mask = component_elements(ctx, 2, ring, "trunc-mask", count)\n    rho =',
            'mask = component_elements(ctx, 2, ring, "trunc-mask", count) * 0\n    rho =',
        ),
        (PRIVACY, "-k", "mul_truncate"),
    ),
    Mutant(
        "truncation-rho-zero",
        "truncation mask",
        "§5.4 rho = 0 in mul_truncate, so P1 sends its product t_1 to P0",
        _both(
            "arithmetic",
            'rho = component_elements(ctx, 2, ring, "trunc-rho", count)',
            'rho = [0 * r for r in component_elements(ctx, 2, ring, "trunc-rho", count)]',
            'rho = component_elements(ctx, 2, ring, "trunc-rho", count)',
            'rho = component_elements(ctx, 2, ring, "trunc-rho", count) * 0',
        ),
        (PRIVACY, "-k", "mul_truncate"),
    ),
    Mutant(
        "truncation-gamma-zero",
        "truncation mask",
        "§5.3 gamma = 0, so P0 sends A' to P1 and P1 learns the truncated value's masked share",
        (
            Edit(
                "refimpl/arithmetic.py",
                'gamma = component_elements(ctx, 0, ring, "trunc-gamma", count)',
                'gamma = [0 * g for g in component_elements(ctx, 0, ring, "trunc-gamma", count)]',
                occurrences=2,
            ),
            Edit(
                "fast/arithmetic.py",
                'gamma = component_elements(ctx, 0, ring, "trunc-gamma", count).reshape(shape)',
                'gamma = component_elements(ctx, 0, ring, "trunc-gamma", count).reshape(shape) * 0',
                occurrences=2,
            ),
        ),
        (PRIVACY, "-k", "truncate and not mul"),
    ),
    Mutant(
        "deal-component-reused",
        "component reused instead of fresh",
        "§4.2 the data holder uses x_0 again as x_1 instead of a fresh draw",
        _both(
            "sharing",
            'component_1 = private_elements(ctx, ring, "deal", count)',
            "component_1 = list(component_0)",
            'component_1 = private_elements(ctx, ring, "deal", count)',
            "component_1 = component_0.copy()",
        ),
        (PRIVACY, "-k", "deal_input"),
    ),
    Mutant(
        "prg-counter-not-advanced",
        "PRG counter not advanced",
        "§3.1 a key stream's counter stays put after a draw, so draws repeat",
        (
            Edit(
                "refimpl/randomness.py",
                "        data = prg_bytes(self.key, self.counter, label, length)\n        self.counter += 1",
                "        data = prg_bytes(self.key, self.counter, label, length)\n        self.counter += 0",
            ),
        ),
        (PRIVACY, "-k", "deal_input"),
    ),
    Mutant(
        "label-reused",
        "label reused",
        "§3.7 rho is drawn under the label of the truncation mask",
        _same(
            "arithmetic",
            'rho = component_elements(ctx, 2, ring, "trunc-rho", count)',
            'rho = component_elements(ctx, 2, ring, "trunc-mask", count)',
        ),
        (DRAWS,),
    ),
    Mutant(
        "component-keys-repeat",
        "component reused instead of fresh",
        "§3.3 a party's private key does not depend on the party, so all component keys are equal",
        (
            Edit(
                "refimpl/randomness.py",
                'material = DOMAIN + b"/test-party-key" + party.to_bytes(1, "little") + seed',
                'material = DOMAIN + b"/test-party-key" + seed',
            ),
        ),
        (PRIVACY, "-k", "component_keys"),
    ),
    Mutant(
        "pool-not-advanced",
        "pool consumed out of order",
        "§6.4 take() does not advance, so comparisons reuse material",
        _same(
            "preprocessing",
            "start, self.used = self.used, self.used + count",
            "start, self.used = self.used, self.used",
        ),
        (COMPARISON, "-k", "pool_and_slices"),
    ),
    Mutant(
        "pool-consumed-from-the-end",
        "pool consumed out of order",
        "§6.4 take() hands out material from the end of the pool",
        _same(
            "preprocessing",
            "start, self.used = self.used, self.used + count",
            "start, self.used = self.material.count - self.used - count, self.used + count",
        ),
        (COMPARISON, "-k", "pool_and_slices"),
    ),
    Mutant(
        "drelu-sign-convention",
        "wrong sign convention",
        "§7.3 the shift 2^k - 1 instead of 2^k makes DReLU(0) = 0 ([x > 0] instead of [x >= 0])",
        _same(
            "comparison", "shifted = add_public(ctx, x, 1 << k)", "shifted = add_public(ctx, x, (1 << k) - 1)"
        ),
        (COMPARISON, "-k", "comparisons"),
    ),
    Mutant(
        "compare-blinding-sign",
        "wrong sign convention",
        "§7.2 P1 adds its blinding s instead of subtracting it",
        _both(
            "comparison",
            "sign = 1 if ctx.party == 0 else -1",
            "sign = 1",
            "1 if ctx.party == 0 else -1,",
            "1,",
        ),
        (COMPARISON, "-k", "comparisons"),
    ),
    Mutant(
        "truncation-shift-off-by-one",
        "off-by-one shift",
        "§5.3 P0 shifts A by d - 1 bits",
        _both(
            "arithmetic",
            "return [(value >> bits) % ring.modulus for value in to_signed(ring, values)]",
            "return [(value >> (bits - 1)) % ring.modulus for value in to_signed(ring, values)]",
            "return (to_signed(ring, values) >> np.int64(bits)).astype(dtype_of(ring))",
            "return (to_signed(ring, values) >> np.int64(bits - 1)).astype(dtype_of(ring))",
        ),
        (CORRECTNESS, "-k", "truncation_error_below_one_unit"),
    ),
    Mutant(
        "truncation-components-swapped",
        "component swapped between parties",
        "§5.3 P2 returns (gamma, B') instead of (B', gamma)",
        _same(
            "arithmetic",
            "return Share(ring, shape, shifted, gamma)",
            "return Share(ring, shape, gamma, shifted)",
        ),
        (CORRECTNESS, "-k", "truncation_error_below_one_unit"),
    ),
    Mutant(
        "reveal-sends-second-component",
        "component swapped between parties",
        "§4.3 P_i sends x_{i+1} instead of x_i to P_{i+1}",
        _same(
            "sharing",
            'send_elements(ctx, following(ctx.party), "reveal", x.ring, x.first)',
            'send_elements(ctx, following(ctx.party), "reveal", x.ring, x.second)',
        ),
        (CORRECTNESS, "-k", "test_reveal"),
    ),
    Mutant(
        "prss-second-component-from-own-key",
        "component swapped between parties",
        "§3.5 P_i draws both components from kappa_i",
        _both(
            "randomness",
            'second = component_elements(ctx, following, ring, "prss", count)',
            'second = component_elements(ctx, ctx.party, ring, "prss", count)',
            'second = component_elements(ctx, following, ring, "prss", count).reshape(shape)',
            'second = component_elements(ctx, ctx.party, ring, "prss", count).reshape(shape)',
        ),
        (CORRECTNESS, "-k", "prss_share"),
    ),
    Mutant(
        "reveal-to-wrong-party",
        "reveal sent to the wrong party",
        "§4.4 P_{j+1} sends the missing component to P_{j+2} instead of the receiver P_j",
        _same(
            "sharing",
            'send_elements(ctx, receiver, "reveal-to", x.ring, x.second)',
            'send_elements(ctx, preceding(receiver), "reveal-to", x.ring, x.second)',
        ),
        (PRIVACY, "-k", "reveal_to_1"),
    ),
    Mutant(
        "lift-bits-missing-factor-two",
        "wrong sign convention",
        "§6.1 b = e + g - e g instead of e + g - 2 e g",
        _same(
            "preprocessing",
            "return sub(add(either, other), mul_public(both, 2))",
            "return sub(add(either, other), mul_public(both, 1))",
        ),
        (COMPARISON, "-k", "preprocessing"),
    ),
    Mutant(
        "mask-bits-carry-dropped",
        "off-by-one shift",
        "§6.3 the ripple-carry adder forgets the propagated carry",
        _same(
            "preprocessing",
            "carries.append(add(_column(generate, bit), through))",
            "carries.append(_column(generate, bit))",
        ),
        (COMPARISON, "-k", "preprocessing"),
    ),
    Mutant(
        "matmul-cross-term-dropped",
        "correctness",
        "§5.2 T_i loses the term X_{i+1} Y_i",
        _both(
            "arithmetic",
            "total += xi * yi + xi * yn + xn * yi",
            "total += xi * yi + xi * yn",
            "right = np.concatenate([ring_add(ring, y.first, y.second), y.first], axis=0)",
            "right = np.concatenate([ring_add(ring, y.first, y.second), y.first * 0], axis=0)",
        ),
        (CORRECTNESS, "-k", "exact_operation and matmul"),
    ),
    Mutant(
        "select-swapped",
        "correctness",
        "§7.6 select returns y where the bit is 1",
        _same(
            "comparison",
            "return add(y, mul(ctx, bit, sub(x, y)))",
            "return add(x, mul(ctx, bit, sub(y, x)))",
        ),
        (COMPARISON, "-k", "comparisons"),
    ),
    Mutant(
        "training-relu-derivative-skipped",
        "correctness",
        "§9.4 the backward pass does not multiply by the ReLU derivative",
        _same(
            "training",
            "delta = mul(ctx, propagated, passed.derivatives[layer - 1])",
            "delta = propagated",
        ),
        (TRAINING, "-k", "within_the_bound"),
    ),
    Mutant(
        "oracle-mask-gradient-shift-off-by-one",
        "off-by-one shift",
        "§11.7 the mask gradient is divided by 2B instead of the batch size B",
        _same(
            "detection",
            "mask_gradient = column_inner_products(ctx, delta, difference, shift)",
            "mask_gradient = column_inner_products(ctx, delta, difference, shift + 1)",
        ),
        (ORACLE, "-k", "within_its_bound"),
    ),
    Mutant(
        "fast-zero-test-misses-p",
        "fast speed path",
        "§7.2 fast's zero test counts a row entry as zero only when the uint8 sum is 0, not p",
        (
            Edit(
                "fast/comparison.py",
                "zeros = (totals == 0) | (totals == np.uint8(field_ring.modulus))",
                "zeros = totals == 0",
            ),
        ),
        (COMPARISON, "-k", "comparisons"),
    ),
    Mutant(
        "fast-fourth-limb-dropped",
        "fast speed path",
        "§5.2 fast's ring matrix product forgets the fourth limb, used for inner sizes above 2,048 in Z_2^64",
        (
            Edit(
                "fast/arithmetic.py",
                "    for i in range(limbs):\n        block = a_limbs[i]",
                "    for i in range(min(limbs, 3)):\n        block = a_limbs[i]",
            ),
        ),
        (EQUIVALENCE, "-k", "large_cases or limb_boundaries"),
    ),
    Mutant(
        "checked-reveal-unchecked",
        "correctness",
        "§4.5 checked reveal does not compare the two copies of the missing component",
        _both(
            "sharing", "        if a != b:", "        if False:", "    if differing.size:", "    if False:"
        ),
        (ERRORS, "-k", "inconsistent_shares_rejected"),
    ),
    Mutant(
        "wire-length-unchecked",
        "correctness",
        "§12.2 a message of the wrong length is decoded instead of refused",
        (
            Edit(
                "refimpl/transport.py",
                "    if len(data) != encoded_length(ring, count):\n        raise WireFormatError(",
                "    if False:\n        raise WireFormatError(",
            ),
        ),
        (ERRORS, "-k", "wrong_length"),
    ),
)
"""Every mutant, in the order the kill table lists them."""


def _source(root: Path, edit: Edit) -> str:
    text = (root / edit.path).read_text(encoding="utf-8")
    found = text.count(edit.old)
    if found != edit.occurrences:
        raise CatalogueError(
            f"{edit.path}: expected {edit.occurrences} occurrence(s) of {edit.old!r}, found {found}"
        )
    return text


def check_catalogue(root: Path = ROOT) -> list[str]:
    """Every problem of the catalogue against the tree at ``root``: edits that do not apply, names."""
    problems = []
    names = [mutant.name for mutant in CATALOGUE]
    if len(set(names)) != len(names):
        problems.append("mutant names are not unique")
    for mutant in CATALOGUE:
        for edit in mutant.edits:
            try:
                _source(root, edit)
            except (CatalogueError, FileNotFoundError) as error:
                problems.append(f"{mutant.name}: {error}")
        if not (root / mutant.tests[0]).is_file():
            problems.append(f"{mutant.name}: no test file {mutant.tests[0]}")
    return problems


def apply(root: Path, mutant: Mutant) -> None:
    """Apply ``mutant``'s edits to the tree at ``root`` (a temporary copy)."""
    for edit in mutant.edits:
        text = _source(root, edit)
        (root / edit.path).write_text(text.replace(edit.old, edit.new), encoding="utf-8")


def copy_tree(destination: Path) -> None:
    """The parts of the tree a mutant's tests need, without caches."""
    ignored = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignored)
        else:
            shutil.copy2(source, destination / name)


@dataclass(frozen=True)
class Verdict:
    """What happened to one mutant (or the control run)."""

    name: str
    killed: bool
    killed_by: str
    seconds: float
    vectors: str


def _environment(root: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(root)
    environment.setdefault("MPBADNET_CONFORMANCE", "mutants")
    environment.setdefault("OPENBLAS_NUM_THREADS", "1")
    return environment


def _regenerate_vectors(root: Path) -> str:
    """Regenerate the copy's vectors from its (mutated) refimpl; what happened, in a few words."""
    done = subprocess.run(
        [sys.executable, "-m", "conformance.vectors", "generate", "--force"],
        cwd=root,
        env=_environment(root),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    return "regenerated" if done.returncode == 0 else "generation raised (old files kept)"


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        match = FAILED_LINE.match(line)
        if match:
            return match.group(2)
    return ""


def run_tests(root: Path, tests: Sequence[str]) -> tuple[int, str]:
    """pytest on ``tests`` in ``root``: its exit status and the first failing test's id."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE", *tests],
            cwd=root,
            env=_environment(root),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_SECONDS} s"
    return done.returncode, _first_failure(done.stdout)


def run_mutant(mutant: Mutant) -> Verdict:
    """Apply ``mutant`` to a fresh copy, regenerate its vectors, run its tests."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as directory:
        root = Path(directory)
        copy_tree(root)
        apply(root, mutant)
        vectors = _regenerate_vectors(root)
        status, failed = run_tests(root, mutant.tests)
    killed = status not in (0, -1) and bool(failed)
    return Verdict(mutant.name, killed, failed or "-", time.monotonic() - started, vectors)


def run_control(mutants: Sequence[Mutant]) -> Verdict:
    """Every test the mutants name, on an unmutated copy: all must pass."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-control-") as directory:
        root = Path(directory)
        copy_tree(root)
        failures = []
        for tests in dict.fromkeys(mutant.tests for mutant in mutants):
            status, failed = run_tests(root, tests)
            if status != 0:
                failures.append(failed or f"{' '.join(tests)} (status {status})")
    return Verdict(
        "control (no mutation)", bool(failures), ", ".join(failures) or "-", time.monotonic() - started, ""
    )


def kill_table(verdicts: Sequence[Verdict]) -> str:
    """The kill table as Markdown."""
    by_name = {mutant.name: mutant for mutant in CATALOGUE}
    lines = [
        "| mutant | covers | what it changes | killed by | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for verdict in verdicts:
        mutant = by_name.get(verdict.name)
        covers = mutant.category if mutant else "control"
        change = mutant.description if mutant else "every named test on the unmutated tree"
        outcome = f"`{verdict.killed_by}`" if verdict.killed else f"**SURVIVED** ({verdict.killed_by})"
        if mutant is None:
            outcome = "all pass" if not verdict.killed else f"**FAILED**: {verdict.killed_by}"
        lines.append(f"| `{verdict.name}` | {covers} | {change} | {outcome} | {verdict.seconds:.0f} |")
    return "\n".join(lines)


def main(arguments: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.mutants", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants run at once")
    parser.add_argument("--no-control", action="store_true", help="skip the control run")
    parser.add_argument("--markdown", type=Path, help="also write the kill table to this file")
    parser.add_argument("--json", type=Path, help="also write the verdicts as JSON")
    parser.add_argument("--check", action="store_true", help="only check that every edit applies")
    options = parser.parse_args(arguments)
    problems = check_catalogue()
    if problems or options.check:
        print("\n".join(problems) or f"{len(CATALOGUE)} mutants, every edit applies")
        return 1 if problems else 0
    unknown = set(options.only) - {mutant.name for mutant in CATALOGUE}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    chosen = [mutant for mutant in CATALOGUE if not options.only or mutant.name in options.only]
    verdicts = [] if options.no_control else [run_control(chosen)]
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for verdict in pool.map(run_mutant, chosen):
            print(
                f"{verdict.name}: {'killed by ' + verdict.killed_by if verdict.killed else 'SURVIVED'}",
                flush=True,
            )
            verdicts.append(verdict)
    table = kill_table(verdicts)
    print(table)
    if options.markdown:
        options.markdown.write_text(table + "\n", encoding="utf-8")
    if options.json:
        options.json.write_text(json.dumps([verdict.__dict__ for verdict in verdicts], indent=2) + "\n")
    control_failed = not options.no_control and verdicts[0].killed
    survivors = [
        verdict.name for verdict in verdicts[(0 if options.no_control else 1) :] if not verdict.killed
    ]
    print(
        f"{len(verdicts) - (0 if options.no_control else 1) - len(survivors)} of {len(chosen)} mutants killed"
    )
    return 1 if control_failed or survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
