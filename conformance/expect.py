"""Exact expectations of errors: the class itself, not a subclass, and the cause in the message.

``pytest.raises(ValueError)`` also passes on every subclass (``ShareConsistencyError``,
``MnistError``, ``FixedPointRangeError``, ``WireFormatError`` ...) and
``pytest.raises(RuntimeError)`` on a ``ProtocolAbort`` (a timeout), so a test written that
way cannot tell the error it means from an unrelated failure. :func:`raises_exactly` can:
``run_parties`` re-raises the party's own error (not a wrapper), so the class seen here is
the class the party raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

Expected = TypeVar("Expected", bound=BaseException)


@contextmanager
def raises_exactly(
    expected: type[Expected], match: str | re.Pattern[str] | None = None
) -> Iterator[pytest.ExceptionInfo[Expected]]:
    """Like ``pytest.raises(expected, match=match)``, but a subclass of ``expected`` fails the test."""
    with pytest.raises(expected) as raised:
        yield raised
    if raised.type is not expected:
        pytest.fail(
            f"expected exactly {expected.__qualname__}, got {raised.type.__qualname__}: {raised.value}",
            pytrace=False,
        )
    if match is not None:
        raised.match(match)
