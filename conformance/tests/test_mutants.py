"""The mutant catalogue (spec §13.7) stays applicable and covers what the spec requires.

Running the catalogue (``nox -s mutants``) takes minutes and is not part of ``nox -s tests``;
this file checks, on every run of the suite, that each mutant's edits still apply to the tree
exactly as written (a protocol change that moves the code must move its mutants too), that
every named test file exists, and that the catalogue covers every category spec §13.7 names.
"""

from __future__ import annotations

from pathlib import Path

from conformance.expect import raises_exactly
from conformance.mutants import CATALOGUE, CatalogueError, Edit, Mutant, apply, check_catalogue, copy_tree

REQUIRED_CATEGORIES = {
    "zero-sharing mask",
    "PRSS mask",
    "truncation mask",
    "component reused instead of fresh",
    "PRG counter not advanced",
    "label reused",
    "private-compare multiplier fixed to 1",
    "missing rotation",
    "missing flip",
    "pool consumed out of order",
    "wrong sign convention",
    "off-by-one shift",
    "component swapped between parties",
    "reveal sent to the wrong party",
}
"""The categories of spec §13.7, each covered by at least one mutant."""


def test_every_edit_applies_to_the_tree() -> None:
    assert check_catalogue() == []


def test_catalogue_size_and_coverage() -> None:
    assert len(CATALOGUE) >= 25
    covered = {mutant.category for mutant in CATALOGUE}
    assert covered >= REQUIRED_CATEGORIES, f"not covered: {sorted(REQUIRED_CATEGORIES - covered)}"
    for mutant in CATALOGUE:
        assert mutant.description.startswith("§"), f"{mutant.name}: the description names no spec section"


def test_apply_changes_only_a_copy(tmp_path: Path) -> None:
    """A mutant is applied to a temporary copy; the tree itself is untouched."""
    mutant = CATALOGUE[0]
    before = {edit.path: (Path(__file__).parents[2] / edit.path).read_text() for edit in mutant.edits}
    copy_tree(tmp_path)
    apply(tmp_path, mutant)
    for edit in mutant.edits:
        assert edit.new in (tmp_path / edit.path).read_text()
        assert (Path(__file__).parents[2] / edit.path).read_text() == before[edit.path]


def test_a_stale_edit_is_reported(tmp_path: Path) -> None:
    stale = Mutant("stale", "test", "§0 nothing", (Edit("refimpl/ring.py", "no such text", "x"),), ("x",))
    copy_tree(tmp_path)
    with raises_exactly(CatalogueError, match="expected 1 occurrence") as raised:
        apply(tmp_path, stale)
    assert type(raised.value) is CatalogueError


MASK_CATEGORIES = {
    "zero-sharing mask",
    "PRSS mask",
    "truncation mask",
    "missing flip",
    "missing rotation",
    "private-compare multiplier fixed to 1",
}
PRIVACY_FILES = {"conformance/tests/test_privacy.py", "conformance/tests/test_privacy_compare.py"}


def test_mask_mutants_are_left_to_the_privacy_tests_alone() -> None:
    """§13.7: a mutant that removes a mask names only the privacy properties as its killers."""
    for mutant in CATALOGUE:
        if mutant.category in MASK_CATEGORIES:
            files = {argument for argument in mutant.tests if argument.endswith(".py")}
            assert files and files <= PRIVACY_FILES, f"{mutant.name}: {mutant.tests}"
