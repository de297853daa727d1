"""Every developer and CI action of MP-BADNet is a nox session."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
PACKAGES = ["refimpl", "fast", "conformance"]

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


def environment() -> dict[str, str]:
    """The data variable points at ../shared/data/mnist when that folder exists, and then the data is
    required: a test that needs MNIST fails instead of skipping (CI=true requires it anyway)."""
    env = {}
    if SHARED_MNIST.is_dir() and "MPBADNET_MNIST_DIR" not in os.environ:
        env["MPBADNET_MNIST_DIR"] = str(SHARED_MNIST)
        env["MPBADNET_REQUIRE_MNIST"] = "1"
    return env


def install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: unit tests and the conformance properties in quick mode."""
    install(session)
    session.run(
        "pytest", "-q", "-rs", *session.posargs, env={**environment(), "MPBADNET_CONFORMANCE": "quick"}
    )


@nox.session
def conformance(session: nox.Session) -> None:
    """Conformance properties; `nox -s conformance -- thorough` runs 2,000 examples each."""
    install(session)
    mode = "thorough" if "thorough" in session.posargs else "quick"
    rest = [arg for arg in session.posargs if arg != "thorough"]
    session.run(
        "pytest", "-q", "conformance/tests", *rest, env={**environment(), "MPBADNET_CONFORMANCE": mode}
    )


@nox.session
def vectors(session: nox.Session) -> None:
    """Regenerate the known-answer vectors under conformance/vectors/ with refimpl."""
    install(session)
    session.run("python", "-m", "conformance.vectors", "generate", *session.posargs)


@nox.session
def mutants(session: nox.Session) -> None:
    """The mutant catalogue: each mutant in a temporary copy, its tests must fail (spec 13.7)."""
    install(session)
    session.run("python", "-m", "conformance.mutants", *session.posargs, env=environment())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting of every package, the noxfile and the docs config."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over refimpl, fast and conformance."""
    install(session)
    session.run("mypy", "--strict", *PACKAGES)


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx: the spec and the API, warnings as errors."""
    install(session)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Micro-benchmarks: a readable table, and JSON with `-- --json PATH`."""
    install(session)
    session.run(
        "python",
        "-m",
        "conformance.bench",
        *session.posargs,
        env={**environment(), "OPENBLAS_NUM_THREADS": "1"},
    )
    # train_iteration in one process next to three processes over loopback TLS (spec 12.6)
    quick = [argument for argument in session.posargs if argument == "--quick"]
    session.run(
        "python",
        "-m",
        "conformance.bench_deployment",
        *quick,
        env={**environment(), "OPENBLAS_NUM_THREADS": "1"},
    )
