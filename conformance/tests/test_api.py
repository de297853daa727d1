"""API parity between refimpl and fast, and spec anchors of every public refimpl function.

* For each module in :data:`conformance.harness.MODULE_NAMES`, every public function of
  ``refimpl.<module>`` (``inspect.isfunction``, not starting with ``_``, defined in that
  module) has a function of the same name in ``fast.<module>`` with the same parameter
  names, kinds and defaults (annotations differ: lists against arrays, and are ignored).
* Every public refimpl function's docstring opens with ``§<number> <title>``, and spec/
  contains the MyST target ``(sec-<number with dashes>)=`` immediately followed by the
  heading ``#... <number> <title>``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conformance.harness import MODULE_NAMES, selected_names

SPEC = Path(__file__).resolve().parents[2] / "spec"
ANCHOR = re.compile(r"^§(?P<number>\d+(?:\.\d+)*) (?P<title>[^:,]+)")
HEADING = re.compile(r"^#+ (?P<text>.+?)\s*$")


def public_functions(module: ModuleType) -> dict[str, Any]:
    """Public functions defined in ``module`` itself (not imported into it)."""
    return {
        name: function
        for name, function in vars(module).items()
        if inspect.isfunction(function)
        and not name.startswith("_")
        and function.__module__ == module.__name__
    }


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [
        (parameter.name, parameter.kind, parameter.default)
        for parameter in inspect.signature(function).parameters.values()
    ]


@pytest.mark.skipif(
    "fast" not in selected_names(), reason="MPBADNET_IMPLEMENTATIONS explicitly excludes fast"
)
@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_fast_has_every_public_function(module_name: str) -> None:
    """fast.<m> has every public function of refimpl.<m>, with the same parameters and defaults."""
    reference = importlib.import_module(f"refimpl.{module_name}")
    fast = importlib.import_module(f"fast.{module_name}")
    problems = []
    for name, function in sorted(public_functions(reference).items()):
        twin = getattr(fast, name, None)
        if twin is None or not inspect.isfunction(twin):
            problems.append(f"fast.{module_name}.{name} is missing")
            continue
        if _parameters(function) != _parameters(twin):
            problems.append(
                f"fast.{module_name}.{name}{inspect.signature(twin)} differs from "
                f"refimpl.{module_name}.{name}{inspect.signature(function)}"
            )
    assert not problems, "\n".join(problems)


def spec_targets() -> dict[str, str]:
    """MyST target name -> the heading text on the line right after it, over spec/*.md."""
    targets: dict[str, str] = {}
    for path in sorted(SPEC.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            match = re.fullmatch(r"\((?P<name>sec-[0-9-]+)\)=", line.strip())
            if match is None:
                continue
            following = lines[index + 1] if index + 1 < len(lines) else ""
            heading = HEADING.match(following)
            targets[match["name"]] = heading["text"].strip() if heading else f"<not a heading: {following!r}>"
    return targets


def _anchored_functions() -> list[tuple[str, Any]]:
    functions = []
    for module_name in MODULE_NAMES:
        module = importlib.import_module(f"refimpl.{module_name}")
        functions += [
            (f"refimpl.{module_name}.{name}", function) for name, function in public_functions(module).items()
        ]
    return sorted(functions, key=lambda item: item[0])


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_docstrings_open_with_existing_spec_anchor(module_name: str) -> None:
    """Every public refimpl function's docstring starts with a § anchor whose heading is in spec/."""
    assert SPEC.is_dir(), f"{SPEC} does not exist"
    targets = spec_targets()
    problems = []
    for qualified, function in _anchored_functions():
        if not qualified.startswith(f"refimpl.{module_name}."):
            continue
        first_line = (inspect.getdoc(function) or "").splitlines()[0] if inspect.getdoc(function) else ""
        match = ANCHOR.match(first_line)
        if match is None:
            problems.append(f"{qualified}: docstring does not open with '§<number> <title>': {first_line!r}")
            continue
        number, title = match["number"], match["title"].strip()
        target = "sec-" + number.replace(".", "-")
        if target not in targets:
            problems.append(f"{qualified}: spec/ has no target ({target})=")
        elif targets[target] != f"{number} {title}":
            problems.append(
                f"{qualified}: ({target})= heads {targets[target]!r}, expected {number} {title!r}"
            )
    assert not problems, "\n".join(problems)
