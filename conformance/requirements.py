"""What the conformance run needs from the machine, and what happens when it is missing.

The tests on the real MNIST files (training and detection jobs, the deployed commands, the
loaders) skip on a developer machine without the data. When the data is required, that is
when ``CI`` is ``true`` or ``MPBADNET_REQUIRE_MNIST`` is ``1``, missing data fails the run at
collection with one message naming the variable and the folder expected, so that a CI run
can never pass by skipping them. A variable set to something that is not a folder always
fails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

MNIST_VARIABLE = "MPBADNET_MNIST_DIR"
REQUIRE_VARIABLE = "MPBADNET_REQUIRE_MNIST"


def is_mnist_required(environment: Mapping[str, str]) -> bool:
    """True under CI (``CI=true``) or when ``MPBADNET_REQUIRE_MNIST=1``."""
    return environment.get("CI", "").lower() == "true" or environment.get(REQUIRE_VARIABLE) == "1"


def missing_mnist(environment: Mapping[str, str]) -> str | None:
    """Why the real MNIST folder is unavailable, or None when ``MPBADNET_MNIST_DIR`` names a folder."""
    folder = environment.get(MNIST_VARIABLE, "")
    if not folder:
        return f"{MNIST_VARIABLE} is not set (the noxfile sets it to the folder of the MNIST IDX files)"
    if not os.path.isdir(folder):
        return f"{MNIST_VARIABLE}={folder} is not a directory (expected the folder of the MNIST IDX files)"
    return None


def mnist_mark(environment: Mapping[str, str] = os.environ) -> pytest.MarkDecorator:
    """A mark for tests on the real MNIST files: skip without them, fail collection if they are required.

    A variable that is set but names no folder is a mistake, not a choice: it fails too.
    """
    reason = missing_mnist(environment)
    if reason is not None and is_mnist_required(environment):
        pytest.fail(f"MNIST is required ({REQUIRE_VARIABLE}=1 or CI=true) but {reason}", pytrace=False)
    if reason is not None and environment.get(MNIST_VARIABLE):
        pytest.fail(reason, pytrace=False)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
