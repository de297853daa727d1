"""The MNIST requirement (conformance.requirements): skip on a developer machine, fail under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.requirements import MNIST_VARIABLE, REQUIRE_VARIABLE, is_mnist_required, mnist_mark

pytest_plugins = ["pytester"]


def skip_condition(mark: pytest.MarkDecorator) -> bool:
    return bool(mark.args[0])


@pytest.mark.parametrize(
    ("environment", "required"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "TRUE"}, True),
        ({"CI": "false"}, False),
        ({REQUIRE_VARIABLE: "1"}, True),
        ({REQUIRE_VARIABLE: "0"}, False),
    ],
)
def test_requirement_follows_ci_and_the_setting(environment: dict[str, str], required: bool) -> None:
    assert is_mnist_required(environment) is required


def test_missing_data_skips_on_a_developer_machine() -> None:
    mark = mnist_mark({})
    assert skip_condition(mark)
    assert MNIST_VARIABLE in mark.kwargs["reason"]


def test_present_data_runs(tmp_path: Path) -> None:
    assert not skip_condition(mnist_mark({MNIST_VARIABLE: str(tmp_path), "CI": "true"}))


@pytest.mark.parametrize("environment", [{"CI": "true"}, {REQUIRE_VARIABLE: "1"}])
def test_missing_data_fails_when_required(environment: dict[str, str]) -> None:
    with pytest.raises(pytest.fail.Exception, match=f"MNIST is required .* {MNIST_VARIABLE} is not set"):
        mnist_mark(environment)


def test_a_variable_naming_no_folder_always_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="is not a directory"):
        mnist_mark({MNIST_VARIABLE: str(tmp_path / "absent")})


def test_collection_fails_when_required_and_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        "from conformance.requirements import mnist_mark\n"
        "pytestmark = mnist_mark()\n"
        "def test_uses_mnist():\n    pass\n"
    )
    monkeypatch.delenv(MNIST_VARIABLE, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*MNIST is required*{MNIST_VARIABLE} is not set*"])
    monkeypatch.setenv(REQUIRE_VARIABLE, "0")
    monkeypatch.delenv("CI", raising=False)
    skipped = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    skipped.assert_outcomes(skipped=1)
