"""Hypothesis settings profiles, the example counts and how to replay a run.

``MPBADNET_CONFORMANCE`` picks the settings profile: ``quick`` (the default; 200 examples
per property and per parametrisation) or ``thorough`` (2,000 examples). Properties are
parametrised over the implementations (:func:`conformance.harness.selected_names`) and the
parameter profiles, so every (implementation, profile) pair gets its own examples.

Examples are drawn at random in every run (hypothesis's default seeding), and failing
examples are kept in hypothesis's example database (``.hypothesis/``) and replayed first in
the next run. A failure prints ``@reproduce_failure(...)``; ``pytest --hypothesis-seed=N``
pins every property's examples (the session header says so, and which seed is pinned).

Every property notes its examples (:mod:`conformance.examples`): one with fewer than 90 %
non-empty examples fails, and the terminal summary prints, per property, the examples run
and how many were non-empty.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, Phase, settings

from conformance.examples import recording, shortfalls, summary_lines

QUICK_EXAMPLES = 200
THOROUGH_EXAMPLES = 2000

COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("quick", max_examples=QUICK_EXAMPLES, print_blob=True, parent=COMMON)
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, print_blob=True, parent=COMMON)
# The mutant catalogue's runs (spec 13.7): quick's counts, pinned, no shrinking (one example kills).
settings.register_profile(
    "mutants",
    max_examples=QUICK_EXAMPLES,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    parent=COMMON,
)

MODE = os.environ.get("MPBADNET_CONFORMANCE", "quick")
if MODE not in ("quick", "thorough", "mutants"):
    raise ValueError(f"MPBADNET_CONFORMANCE must be 'quick', 'thorough' or 'mutants', not {MODE!r}")
settings.load_profile(MODE)


def replay_advice(seed: object) -> str:
    """How this session's examples were drawn and how to pin them."""
    if seed is not None:
        return f"hypothesis examples pinned by --hypothesis-seed={seed} (example database off)"
    return (
        "hypothesis examples are random in every run; a failure prints @reproduce_failure(...) and "
        "is replayed from .hypothesis/ next time; to pin every example: pytest --hypothesis-seed=N"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return replay_advice(config.getoption("hypothesis_seed", None))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Note the property's examples under its node id; fail it when too few were non-empty."""
    with recording(item.nodeid):
        result = yield
    problems = shortfalls(item.nodeid)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = summary_lines()
    if lines:
        terminalreporter.section("examples per property (non-empty: every operand has an element)")
        for line in lines:
            terminalreporter.write_line(line)
    terminalreporter.write_line(replay_advice(config.getoption("hypothesis_seed", None)))
