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
  bytes, messages and rounds, or the named error;
* independently of any implementation, every valid vector agrees with the plaintext model
  (:mod:`conformance.vector_checks`), and a vector with one output element changed by hand
  is caught;
* every file records the protocol version that spec §13.5 states, and the generator refuses
  to change a file without a new version.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.expect import raises_exactly
from conformance.harness import implementation, selected_names
from conformance.operations import OPERATIONS
from conformance.strategies import BUNDLES
from conformance.vector_checks import vector_problems
from conformance.vectors import (
    SCHEMA_ID,
    SCHEMA_PATH,
    LoadedTest,
    VersionError,
    check,
    dumps,
    generate,
    load_vectors,
    loaded_tests,
    replay,
    spec_protocol_version,
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


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_valid_vectors_agree_with_the_plaintext_model(path: Path) -> None:
    """Every valid vector's outcome is what the plaintext model says, without running refimpl."""
    failures = []
    for loaded in loaded_tests(load_vectors(path)):
        problems = vector_problems(loaded)
        if problems:
            failures.append(f"{path.stem} #{loaded.test['id']} ({loaded.profile}): " + "; ".join(problems))
    assert not failures, "\n".join(failures)


def _changed_output(loaded: LoadedTest, delta: int) -> LoadedTest:
    """The vector with output element 0 changed by ``delta``, its shares changed to match (consistent)."""
    test = copy.deepcopy(loaded.test)
    expected = test["expected"]
    expected["shares"][0][0][0] = str(int(expected["shares"][0][0][0]) + delta)
    expected["shares"][2][1][0] = str(int(expected["shares"][2][1][0]) + delta)
    expected["output"][0] = str(int(expected["output"][0]) + delta)
    return LoadedTest(loaded.operation, loaded.profile, loaded.ring, test)


@pytest.mark.parametrize("operation", ["mul", "matmul", "truncate", "relu", "share_input", "softmax"])
def test_a_vector_changed_by_hand_is_caught(operation: str) -> None:
    """One output element changed (shares and output kept consistent) fails the independent check."""
    document = load_vectors(next(path for path in PATHS if path.stem == operation))
    valid = [
        loaded
        for loaded in loaded_tests(document)
        if loaded.test["result"] == "valid" and loaded.test["expected"].get("output")
    ]
    assert valid, f"{operation} has no valid vector with an output"
    for loaded in valid:
        assert vector_problems(loaded) == []
        assert vector_problems(_changed_output(loaded, 3)), f"{operation} #{loaded.test['id']} not caught"


def test_files_record_the_spec_protocol_version() -> None:
    """Every file was generated under the protocol version that spec §13.5 states."""
    version = spec_protocol_version()
    recorded = {path.stem: load_vectors(path)["protocol_version"] for path in PATHS}
    assert set(recorded.values()) == {version}, f"spec §13.5 states {version}; files record {recorded}"


def test_generate_refuses_a_change_without_a_new_version(tmp_path: Path) -> None:
    """A file that would change under the same protocol version is not rewritten."""
    path = tmp_path / "mul.json"
    document = load_vectors(next(path for path in PATHS if path.stem == "mul"))
    document["test_groups"][0]["tests"][0]["comment"] = "an older text under the same version"
    path.write_text(dumps(document), encoding="utf-8")
    with raises_exactly(VersionError, match="mul: the vectors change"):
        generate(tmp_path)
    assert load_vectors(path) == document, "the file was rewritten"
