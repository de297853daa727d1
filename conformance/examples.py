"""How many examples each property ran, and how many of them were non-empty (issue 11).

A property notes every example (:func:`note_example`); the strategies :func:`cases` and
:func:`bundles` of :mod:`conformance.strategies` note the cases they draw themselves, and a
property that draws raw shapes notes them. ``conformance/tests/conftest.py`` records under
the running test's node id (:func:`recording`), fails a property whose non-empty share is
below :data:`NON_EMPTY_FLOOR`, and prints the table of :data:`TALLIES` after the run.
Notes outside a recording (vector generation, benchmarks) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from conformance.operations import Case
from refimpl.ring import element_count

NON_EMPTY_FLOOR = 0.9
"""A property must run at least 90 % non-empty examples."""
FLOOR_MINIMUM_EXAMPLES = 20
"""The floor applies to properties (or bundle members) that ran at least this many examples."""
COUNT_OPERATIONS = ("zero_share", "generate_comparison_material")
"""Operations whose size is ``Case.count`` rather than ``Case.shape``."""


@dataclass
class Tally:
    """Examples run and the non-empty ones among them."""

    examples: int = 0
    non_empty: int = 0


TALLIES: dict[str, Tally] = {}
"""Tallies by test node id, followed by the bundle member's operation when there is one."""
_running: list[str] = []


@contextmanager
def recording(test_id: str) -> Iterator[None]:
    """Note examples under ``test_id`` while the block runs."""
    _running.append(test_id)
    try:
        yield
    finally:
        _running.pop()


def note_example(non_empty: bool, member: str = "") -> None:
    """Count one example of the running property (of its bundle ``member``, if given)."""
    if not _running:
        return
    key = f"{_running[-1]} {member}".rstrip()
    tally = TALLIES.setdefault(key, Tally())
    tally.examples += 1
    tally.non_empty += int(non_empty)


def is_non_empty(case: Case) -> bool:
    """Every operand of ``case`` has at least one element (a matrix product: m, k, n >= 1)."""
    if case.operation in COUNT_OPERATIONS:
        return case.count > 0
    sizes = [element_count(case.shape)]
    if case.y_shape is not None:
        sizes.append(element_count(case.y_shape))
    return min(sizes) > 0


def note_case(case: Case, member: str = "") -> None:
    """Count one example whose input is ``case``."""
    note_example(is_non_empty(case), member)


def is_short(tally: Tally) -> bool:
    """Enough examples to judge, and fewer than 90 % of them non-empty."""
    return tally.examples >= FLOOR_MINIMUM_EXAMPLES and tally.non_empty < NON_EMPTY_FLOOR * tally.examples


def shortfalls(test_id: str) -> list[str]:
    """The tallies of ``test_id`` with fewer than 90 % non-empty examples."""
    return [
        f"{key}: {tally.non_empty} of {tally.examples} examples non-empty, below {NON_EMPTY_FLOOR:.0%}"
        for key, tally in TALLIES.items()
        if (key == test_id or key.startswith(test_id + " ")) and is_short(tally)
    ]


def summary_lines() -> list[str]:
    """The table of every tally: property, examples drawn (hypothesis may discard a few), non-empty."""
    if not TALLIES:
        return []
    width = max(len(key) for key in TALLIES)
    lines = [f"{'property':<{width}}  examples  non-empty"]
    for key, tally in TALLIES.items():
        flag = f"  below {NON_EMPTY_FLOOR:.0%}" if is_short(tally) else ""
        lines.append(f"{key:<{width}}  {tally.examples:>8}  {tally.non_empty:>9}{flag}")
    return lines
