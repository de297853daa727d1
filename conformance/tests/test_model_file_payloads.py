"""§9.7 Model share files: the payload is exactly what the architecture needs, the file size is bounded.

A short payload, a long payload (extra bytes, declared or not) and a too-large file raise the
same :class:`ModelFileError` with the same message in the reference and in ``fast``.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import fast.training
import refimpl.training
from conformance.expect import raises_exactly
from refimpl.ring import get_profile
from refimpl.training import (
    MAX_MODEL_PAYLOAD_BYTES,
    Architecture,
    ModelFileError,
    encode_model_file,
    model_payload_bytes,
)
from refimpl.transport import Network, PartyContext

ARCHITECTURE = Architecture((6, 4, 3))
RUN_ID = bytes(range(16))
IMPLEMENTATIONS = [refimpl.training, fast.training]
NAMES = ["refimpl", "fast"]


def _context() -> PartyContext:
    """P0's context on a network nobody else joins: every refusal here comes before any message."""
    return PartyContext(0, Network(3), get_profile("wide"))


def _write(path: Path, first: bytes, second: bytes, extra: bytes = b"") -> str:
    """A model file for P0 of ARCHITECTURE whose header is consistent with the given halves."""
    header = refimpl.training.header_fields(_context(), ARCHITECTURE, RUN_ID, first, second)
    path.write_bytes(encode_model_file(header, first, second) + extra)
    return str(path)


def _halves(difference: int) -> tuple[bytes, bytes]:
    """Two components of the architecture's length plus ``difference`` bytes each."""
    length = model_payload_bytes(64, ARCHITECTURE) // 2 + difference
    return bytes([1]) * length, bytes([2]) * length


def _refusal(module: ModuleType, path: str) -> str:
    with raises_exactly(ModelFileError) as raised:
        module.load_model_shares(path, _context(), ARCHITECTURE, RUN_ID)
    assert type(raised.value) is ModelFileError
    return str(raised.value)


@pytest.mark.parametrize("difference", [-8, 8], ids=["short", "long"])
def test_payload_must_fit_the_architecture(tmp_path: Path, difference: int) -> None:
    """A consistent file whose payload is one element short or long per half: the same refusal in both."""
    path = _write(tmp_path / "model-P0.mpshares", *_halves(difference))
    messages = [_refusal(module, path) for module in IMPLEMENTATIONS]
    assert messages[0] == messages[1]
    needed = model_payload_bytes(64, ARCHITECTURE)
    assert messages[0] == (
        f"{path}: payload is {needed + 2 * difference} bytes, the 6-4-3 model needs {needed} "
        "at 64 bits per element"
    )


def test_undeclared_extra_bytes_are_refused(tmp_path: Path) -> None:
    """Bytes after the declared payload: refused from the file size, the same message in both."""
    path = _write(tmp_path / "model-P0.mpshares", *_halves(0), extra=b"\x00" * 3)
    messages = [_refusal(module, path) for module in IMPLEMENTATIONS]
    assert messages[0] == messages[1]
    expected = rf"{re.escape(path)}: the file is \d+ bytes, its header line and payload_bytes say \d+"
    assert re.fullmatch(expected, messages[0])


def test_too_large_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    """A 2 GiB sparse file behind a valid header: refused at once from its size, in both."""
    path = _write(tmp_path / "model-P0.mpshares", *_halves(0))
    with open(path, "r+b") as handle:
        handle.truncate(2 * MAX_MODEL_PAYLOAD_BYTES)
    started = time.monotonic()
    messages = [_refusal(module, path) for module in IMPLEMENTATIONS]
    assert time.monotonic() - started < 5.0
    assert messages[0] == messages[1]
    assert f"the file is {2 * MAX_MODEL_PAYLOAD_BYTES} bytes" in messages[0]


def test_declared_payload_beyond_the_limit(tmp_path: Path) -> None:
    """A header that declares more than MAX_MODEL_PAYLOAD_BYTES is refused before the size check."""
    first, second = _halves(0)
    header: dict[str, Any] = refimpl.training.header_fields(_context(), ARCHITECTURE, RUN_ID, first, second)
    header["payload_bytes"] = MAX_MODEL_PAYLOAD_BYTES + 2
    path = tmp_path / "model-P0.mpshares"
    path.write_bytes(encode_model_file(header, first, second))
    messages = [_refusal(module, str(path)) for module in IMPLEMENTATIONS]
    assert messages[0] == messages[1]
    assert "payload_bytes" in messages[0] and "of at most" in messages[0]


@pytest.mark.parametrize("difference", [-8, -1, 8], ids=["short", "ragged", "long"])
@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=NAMES)
def test_split_component_checks_the_length(module: ModuleType, difference: int) -> None:
    """split_component neither zero-fills nor ignores bytes: ModelFileError naming both lengths."""
    data = _halves(difference)[0]
    with raises_exactly(ModelFileError, match="the 6-4-3 model needs") as raised:
        module.split_component(64, data, ARCHITECTURE)
    assert type(raised.value) is ModelFileError
    other = fast.training if module is refimpl.training else refimpl.training
    with raises_exactly(ModelFileError) as again:
        other.split_component(64, data, ARCHITECTURE)
    assert str(again.value) == str(raised.value)


def test_exact_payload_still_loads(tmp_path: Path) -> None:
    """The digests of a consistent file of the right length pass every check up to the peer exchange."""
    first, second = _halves(0)
    path = _write(tmp_path / "model-P0.mpshares", first, second)
    header, read_first, read_second = refimpl.training.read_model_file(path)
    assert (read_first, read_second) == (first, second)
    assert header["digests"] == [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()]
