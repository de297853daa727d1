"""Known-answer vectors (spec §13.5): schema, structure, freshness and replay on every implementation.

* every committed file validates against ``conformance/vectors/schema.json``
  (``additionalProperties: false`` throughout) and is in canonical form (sorted keys);
* structure beyond the schema: ``number_of_tests`` is right, ids are unique, every flag is
  explained in ``notes``, valid tests carry ``expected`` and invalid ones ``error``;
* the required operations (chapters 2 to 8), both profiles and the required negative vectors
  are present (§6-§8: an exhausted pool, material of the wrong count, inconsistent shares
  fed to drelu and then to checked reveal, a private-compare message of the wrong length);
* regenerating with refimpl gives the committed bytes (``python -m conformance.vectors check``);
* every test replays on every implementation: same shares, outputs, transcript hashes,
  bytes, messages and rounds, or the named error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import implementation, selected_names
from conformance.operations import OPERATIONS
from conformance.strategies import BUNDLES
from conformance.vectors import (
    SCHEMA_ID,
    SCHEMA_PATH,
    check,
    dumps,
    load_vectors,
    loaded_tests,
    replay,
    validate,
    vector_paths,
)

REQUIRED_OPERATIONS = {
    "share_input",
    "deal_input",
    "reveal",
    "reveal_to",
    "reveal_checked",
    "add_public",
    "mul_public",
    "mul",
    "matmul",
    "truncate",
    "mul_truncate",
    "matmul_truncate",
    "prss_share",
    "zero_share",
    "encode_fixed",
    *(name for names in BUNDLES.values() for name in names),
}
REQUIRED_ERRORS = {
    "reveal_checked": {"ShareConsistencyError"},
    "encode_fixed": {"FixedPointRangeError"},
    "recv_elements": {"WireFormatError"},
    "drelu": {"RuntimeError", "ShareConsistencyError", "WireFormatError"},
    "sign_bits": {"ShapeError"},
    "lift_bits": {"ValueError"},
    "reciprocal": {"ValueError"},
    "maximum": {"ShapeError"},
}
"""The negative vectors required per file: exhausted pool (RuntimeError), inconsistent shares fed to
drelu then checked reveal, a tampered private-compare message, material of the wrong count."""
PATHS = vector_paths()


def _schema() -> Any:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_every_required_operation_has_a_file() -> None:
    """One file per required operation (and only for known operations)."""
    names = {path.stem for path in PATHS}
    assert names >= REQUIRED_OPERATIONS, f"missing vector files: {sorted(REQUIRED_OPERATIONS - names)}"
    assert names <= set(OPERATIONS), f"files for unknown operations: {sorted(names - set(OPERATIONS))}"


def test_validator_rejects_broken_documents() -> None:
    """The schema validator notices extra properties, missing fields, wrong types and patterns."""
    schema = _schema()
    document = load_vectors(PATHS[0])
    assert validate(document, schema) == []
    broken: list[Any] = []
    extra = copy.deepcopy(document)
    extra["unexpected"] = 1
    broken.append(extra)
    missing = copy.deepcopy(document)
    del missing["test_groups"][0]["tests"][0]["seed"]
    broken.append(missing)
    wrong_type = copy.deepcopy(document)
    wrong_type["number_of_tests"] = "3"
    broken.append(wrong_type)
    bad_element = copy.deepcopy(document)
    first_test = bad_element["test_groups"][0]["tests"][0]
    first_test["inputs"]["shape"] = [-1]
    broken.append(bad_element)
    bad_result = copy.deepcopy(document)
    bad_result["test_groups"][0]["tests"][0]["result"] = "acceptable"
    broken.append(bad_result)
    for document_copy in broken:
        assert validate(document_copy, schema), "the validator accepted a broken document"


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_file_structure(path: Path) -> None:
    """Schema, canonical form and the structure that the schema cannot express."""
    document = load_vectors(path)
    errors = validate(document, _schema())
    assert not errors, "\n".join(errors)
    assert path.read_text(encoding="utf-8") == dumps(document), "not in canonical form: regenerate"
    assert document["schema"] == SCHEMA_ID
    assert document["operation"] == path.stem
    assert document["spec_anchor"] == OPERATIONS[path.stem].anchor
    tests = loaded_tests(document)
    assert document["number_of_tests"] == len(tests)
    ids = [loaded.test["id"] for loaded in tests]
    assert len(set(ids)) == len(ids), "test ids are not unique"
    used = {flag for loaded in tests for flag in loaded.test["flags"]}
    assert used == set(document["notes"]), (
        f"flags used {sorted(used)} vs explained {sorted(document['notes'])}"
    )
    assert {loaded.profile for loaded in tests} == {"paper", "wide"}, "both profiles must be covered"
    for loaded in tests:
        test = loaded.test
        if test["result"] == "valid":
            assert "expected" in test and "error" not in test, f"test {test['id']}"
        else:
            assert "error" in test and "expected" not in test, f"test {test['id']}"
    if path.stem in REQUIRED_ERRORS:
        errors_named = {loaded.test.get("error") for loaded in tests}
        assert REQUIRED_ERRORS[path.stem] <= errors_named


def test_vectors_are_up_to_date() -> None:
    """Regenerating with refimpl reproduces the committed files byte for byte."""
    assert check() == [], "run `python -m conformance.vectors generate` and commit the result"


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
@pytest.mark.parametrize("impl_name", selected_names())
def test_replay(impl_name: str, path: Path) -> None:
    """Every vector replays on the implementation: same bytes, or the named error."""
    impl = implementation(impl_name)
    failures = []
    for loaded in loaded_tests(load_vectors(path)):
        differences = replay(impl, loaded)
        if differences:
            failures.append(
                f"{path.stem} #{loaded.test['id']} ({loaded.profile}, {loaded.ring}): "
                + "; ".join(differences)
            )
    assert not failures, "\n".join(failures)
