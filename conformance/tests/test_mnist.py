"""§10.1 The MNIST data set: IDX parsing, decompression, checksums, locating, download, loading.

Every error case is built from synthetic IDX bytes in a temporary directory; the download
is exercised through local ``file://`` mirrors and a replaced URL opener, never the
network. The tests that need the real files read them from ``MPBADNET_MNIST_DIR`` (the
noxfile points it at ``../shared/data/mnist``) and are skipped when it is unset.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.mnist
from conformance.examples import note_example
from conformance.expect import raises_exactly
from conformance.harness import selected_names
from conformance.requirements import mnist_mark
from refimpl.mnist import (
    ENV_DIRECTORY,
    ENV_NO_DOWNLOAD,
    MNIST_FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    MnistError,
)

SPEC = Path(__file__).resolve().parents[2] / "spec"
REAL_DIRECTORY = os.environ.get(ENV_DIRECTORY, "")
NEEDS_REAL_MNIST = mnist_mark()
IMPLEMENTATIONS = pytest.mark.parametrize("impl_name", selected_names())
BOTH = pytest.mark.skipif(
    set(selected_names()) != {"refimpl", "fast"},
    reason="MPBADNET_IMPLEMENTATIONS explicitly narrowed the implementations under test",
)
ALL_NAMES = [file.name for file in MNIST_FILES]


def mnist_module(impl_name: str) -> ModuleType:
    return importlib.import_module(f"{impl_name}.mnist")


def idx_bytes(shape: tuple[int, ...], values: bytes, type_code: int = 0x08) -> bytes:
    """An IDX file: the magic, the extents (big-endian 32-bit) and the payload."""
    header = bytes([0, 0, type_code, len(shape)]) + b"".join(extent.to_bytes(4, "big") for extent in shape)
    return header + values


def images_idx(count: int, side: tuple[int, int] = (28, 28), fill: int = 0) -> bytes:
    return idx_bytes((count, *side), bytes([fill]) * (count * side[0] * side[1]))


def labels_idx(labels: list[int]) -> bytes:
    return idx_bytes((len(labels),), bytes(labels))


def write_split(
    directory: Path, images: bytes, labels: bytes, names: tuple[str, str], compress: bool
) -> None:
    for name, data in zip(names, (images, labels), strict=True):
        if compress:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (directory / name).write_bytes(data)


def synthetic_directory(directory: Path, images: bytes, labels: bytes, compress: bool = True) -> Path:
    """Four files: the training split from ``images`` and ``labels``, a small valid test split."""
    write_split(directory, images, labels, (TRAIN_IMAGES, TRAIN_LABELS), compress)
    write_split(directory, images_idx(2), labels_idx([1, 2]), (TEST_IMAGES, TEST_LABELS), compress)
    return directory


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No MNIST variables, and a cache under ``tmp_path``; yields the cache directory."""
    monkeypatch.delenv(ENV_DIRECTORY, raising=False)
    monkeypatch.delenv(ENV_NO_DOWNLOAD, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    yield tmp_path / "cache-home" / "mp-badnet" / "mnist"


# -- API ----------------------------------------------------------------------------------------


def public_functions(module: ModuleType) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__
    }


def spec_headings() -> dict[str, str]:
    """MyST target -> the heading text on the next line, over spec/*.md."""
    headings = {}
    for path in sorted(SPEC.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines[:-1]):
            target = re.fullmatch(r"\((sec-[0-9-]+)\)=", line.strip())
            heading = re.match(r"^#+ (.+?)\s*$", lines[index + 1])
            if target and heading:
                headings[target[1]] = heading[1]
    return headings


@pytest.mark.skipif("fast" not in selected_names(), reason="MPBADNET_IMPLEMENTATIONS excludes fast")
def test_fast_has_every_public_function() -> None:
    """fast.mnist has every public function of refimpl.mnist with the same parameters and defaults."""
    fast = importlib.import_module("fast.mnist")
    for name, function in public_functions(refimpl.mnist).items():
        twin = getattr(fast, name)
        reference = [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
        assert reference == [(p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()]


def test_docstrings_open_with_spec_anchor() -> None:
    """Every public refimpl.mnist function and class opens with '§N Title' of an existing heading."""
    headings = spec_headings()
    objects = {
        **public_functions(refimpl.mnist),
        "MnistError": MnistError,
        "MnistData": refimpl.mnist.MnistData,
    }
    for name, value in objects.items():
        anchor = re.match(r"^§(\d+(?:\.\d+)*) ([^:,]+)", inspect.getdoc(value) or "")
        assert anchor, f"{name}: no § anchor"
        target = "sec-" + anchor[1].replace(".", "-")
        assert headings.get(target) == f"{anchor[1]} {anchor[2].strip()}", name


def test_fast_shares_the_error_class() -> None:
    assert importlib.import_module("fast.mnist").MnistError is MnistError
    assert issubclass(MnistError, ValueError)


# -- §10.1.1 IDX files --------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
EMPTY_SHAPES = [(0,), (3, 0), (0, 2, 2)]
"""IDX files that hold no values, each a case of its own."""


@IMPLEMENTATIONS
@given(shape=shapes, data=st.data())
def test_parse_idx_reads_shape_and_values(
    impl_name: str, shape: tuple[int, ...], data: st.DataObject
) -> None:
    note_example(int(np.prod(shape)) > 0)
    size = int(np.prod(shape))
    values = data.draw(st.binary(min_size=size, max_size=size))
    parsed = mnist_module(impl_name).parse_idx(idx_bytes(shape, values), "x.idx", len(shape))
    if impl_name == "fast":
        assert parsed.dtype == np.uint8 and parsed.shape == shape
        assert parsed.reshape(-1).tolist() == list(values)
    else:
        assert parsed == (shape, list(values))


@IMPLEMENTATIONS
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_parse_idx_of_no_values(impl_name: str, shape: tuple[int, ...]) -> None:
    """An IDX file with a dimension 0 parses to its shape and no values."""
    parsed = mnist_module(impl_name).parse_idx(idx_bytes(shape, b""), "x.idx", len(shape))
    if impl_name == "fast":
        assert parsed.dtype == np.uint8 and parsed.shape == shape
    else:
        assert parsed == (shape, [])


@BOTH
@given(
    data=st.binary(max_size=40)
    | (shapes | st.sampled_from(EMPTY_SHAPES)).flatmap(lambda shape: st.just(idx_bytes(shape, bytes(30))))
)
def test_parse_idx_same_result_or_error(data: bytes) -> None:
    """Any bytes: refimpl and fast return the same values or raise the same MnistError."""
    outcomes: list[tuple[str, Any]] = []
    for impl_name in ("refimpl", "fast"):
        try:
            parsed = mnist_module(impl_name).parse_idx(data, "f")
        except MnistError as error:
            outcomes.append(("error", str(error)))
            continue
        outcomes.append(
            ("ok", parsed if impl_name == "refimpl" else (parsed.shape, parsed.reshape(-1).tolist()))
        )
    assert outcomes[0] == outcomes[1]


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    ("data", "ndim", "pattern"),
    [
        (b"\x00\x00\x08", None, "truncated header: 3 bytes"),
        (b"\x00\x01\x08\x01" + bytes(5), None, "bad magic 00010801"),
        (idx_bytes((2,), b"\x00" * 8, type_code=0x0D), None, "unsupported type code 0x0d"),
        (idx_bytes((), b"\x05"), None, "wrong number of dimensions 0, expected at least 1"),
        (idx_bytes((2, 2), bytes(4)), 3, "wrong number of dimensions 2, expected 3"),
        (b"\x00\x00\x08\x02" + bytes(5), None, "truncated header: 9 bytes, 2 dimensions"),
        (idx_bytes((3, 4), bytes(10)), None, "truncated payload: shape (3, 4) needs 12 bytes, got 10"),
        (idx_bytes((3,), bytes(5)), None, "2 trailing bytes after the payload"),
    ],
)
def test_parse_idx_errors(impl_name: str, data: bytes, ndim: int | None, pattern: str) -> None:
    with raises_exactly(MnistError, match=re.escape(pattern)) as raised:
        mnist_module(impl_name).parse_idx(data, "some/file-idx", ndim)
    assert str(raised.value).startswith("some/file-idx: ")


# -- §10.1.2 Compression and checksums ----------------------------------------------------------


def test_decompress_detects_gzip_by_content() -> None:
    raw = labels_idx([1, 2, 3])
    assert refimpl.mnist.decompress(raw, "plain") == raw
    assert refimpl.mnist.decompress(gzip.compress(raw), "no-suffix") == raw
    assert refimpl.mnist.decompress(gzip.compress(raw[:5]) + gzip.compress(raw[5:]), "two-members") == raw


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[: len(data) - 6], lambda data: data[:10] + bytes(len(data) - 10)],
    ids=["truncated", "zeroed"],
)
def test_corrupt_gzip_names_the_file(damage: Any) -> None:
    data = gzip.compress(images_idx(3, fill=7))
    with raises_exactly(MnistError, match=r"^dir/train-images-idx3-ubyte\.gz: corrupt gzip data"):
        refimpl.mnist.decompress(damage(data), "dir/train-images-idx3-ubyte.gz")


def test_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refimpl.mnist, "MAX_FILE_BYTES", 1000)
    with raises_exactly(MnistError, match="decompresses to more than 1000 bytes"):
        refimpl.mnist.decompress(gzip.compress(bytes(1001)), "bomb.gz")
    assert len(refimpl.mnist.decompress(gzip.compress(bytes(1000)), "fits.gz")) == 1000


def test_wrong_checksum_reports_both_digests() -> None:
    data = labels_idx([1, 2, 3])
    name = "/somewhere/t10k-labels-idx1-ubyte.gz"
    with raises_exactly(MnistError) as raised:
        refimpl.mnist.verify_digests(data, name)
    message = str(raised.value)
    expected = refimpl.mnist.mnist_file(TEST_LABELS)
    assert message.startswith(name + ": checksum mismatch")
    assert hashlib.sha256(data).hexdigest() in message and expected.sha256 in message
    assert hashlib.md5(data).hexdigest() in message and expected.md5 in message


def test_unknown_file_name() -> None:
    with raises_exactly(MnistError, match="not an MNIST file name"):
        refimpl.mnist.verify_digests(b"", "cifar-10.bin")
    assert refimpl.mnist.mnist_file("/a/b/train-labels-idx1-ubyte.gz").count == 60000


# -- §10.1.3 Locating the files -----------------------------------------------------------------


def test_explicit_directory_must_hold_every_file(tmp_path: Path, clean_environment: Path) -> None:
    for name in ALL_NAMES[:3]:
        (tmp_path / (name + ".gz")).write_bytes(b"")
    with raises_exactly(MnistError, match=re.escape(f"lacks {TEST_LABELS}[.gz]")):
        refimpl.mnist.mnist_directory(str(tmp_path))
    (tmp_path / TEST_LABELS).write_bytes(b"")
    assert refimpl.mnist.mnist_directory(str(tmp_path)) == str(tmp_path)
    with raises_exactly(MnistError, match="is not a directory"):
        refimpl.mnist.mnist_directory(str(tmp_path / "absent"))


def test_find_file_prefers_gzip(tmp_path: Path) -> None:
    assert refimpl.mnist.find_file(str(tmp_path), TRAIN_LABELS) is None
    (tmp_path / TRAIN_LABELS).write_bytes(b"")
    assert refimpl.mnist.find_file(str(tmp_path), TRAIN_LABELS) == str(tmp_path / TRAIN_LABELS)
    (tmp_path / (TRAIN_LABELS + ".gz")).write_bytes(b"")
    assert refimpl.mnist.find_file(str(tmp_path), TRAIN_LABELS) == str(tmp_path / (TRAIN_LABELS + ".gz"))


def test_order_explicit_then_variable_then_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    explicit, named = tmp_path / "explicit", tmp_path / "named"
    for directory in (explicit, named, clean_environment):
        directory.mkdir(parents=True)
        for name in ALL_NAMES:
            (directory / name).write_bytes(b"")
    assert refimpl.mnist.mnist_directory() == str(clean_environment)
    monkeypatch.setenv(ENV_DIRECTORY, "")
    assert refimpl.mnist.mnist_directory() == str(clean_environment)
    monkeypatch.setenv(ENV_DIRECTORY, str(named))
    assert refimpl.mnist.mnist_directory() == str(named)
    assert refimpl.mnist.mnist_directory(str(explicit)) == str(explicit)
    (named / TRAIN_IMAGES).unlink()
    with raises_exactly(MnistError, match=f"^{ENV_DIRECTORY}: .* lacks {TRAIN_IMAGES}"):
        refimpl.mnist.mnist_directory()


def test_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert refimpl.mnist.cache_directory() == str(tmp_path / "mp-badnet" / "mnist")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for ignored in ("relative/cache", ""):
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert refimpl.mnist.cache_directory() == str(tmp_path / "home" / ".cache" / "mp-badnet" / "mnist")


def test_no_download_gives_advice(monkeypatch: pytest.MonkeyPatch, clean_environment: Path) -> None:
    monkeypatch.setenv(ENV_NO_DOWNLOAD, "1")
    with raises_exactly(MnistError) as raised:
        refimpl.mnist.mnist_directory()
    message = str(raised.value)
    assert str(clean_environment) in message and ENV_NO_DOWNLOAD in message and ENV_DIRECTORY in message
    assert all(name in message for name in ALL_NAMES)
    assert not clean_environment.exists()


# -- §10.1.4 Download ---------------------------------------------------------------------------


def test_download_rejects_wrong_content(tmp_path: Path, clean_environment: Path) -> None:
    """A mirror serving other content fails; nothing, not even a temporary file, is left behind."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / (TEST_LABELS + ".gz")).write_bytes(gzip.compress(labels_idx([1] * 10000)))
    mirrors = ((tmp_path / "empty").as_uri() + "/", mirror.as_uri() + "/")
    with raises_exactly(MnistError) as raised:
        refimpl.mnist.download_file(str(clean_environment), TEST_LABELS, mirrors)
    message = str(raised.value)
    assert message.startswith(f"could not download {TEST_LABELS}: ")
    assert mirrors[0] + TEST_LABELS + ".gz" in message and "checksum mismatch" in message
    assert ENV_DIRECTORY in message
    assert list(clean_environment.iterdir()) == []


def test_download_uses_timeout_and_tries_every_mirror(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    requested = []

    def unreachable(url: str, timeout: float) -> Any:
        requested.append((url, timeout))
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with raises_exactly(MnistError, match="timed out"):
        refimpl.mnist.mnist_directory()
    assert requested == [(mirror + TRAIN_IMAGES + ".gz", 60.0) for mirror in refimpl.mnist.MIRRORS]


def test_failed_write_leaves_no_temporary_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with raises_exactly(OSError, match="disk full"):
        refimpl.mnist.write_atomically(str(tmp_path / "file.gz"), b"data")
    assert list(tmp_path.iterdir()) == []


@NEEDS_REAL_MNIST
def test_download_fills_the_cache(tmp_path: Path, clean_environment: Path) -> None:
    """Missing files are fetched from the first mirror that has them; present files are kept."""
    clean_environment.mkdir(parents=True)
    shutil.copy(Path(REAL_DIRECTORY) / (TEST_LABELS + ".gz"), clean_environment / (TEST_LABELS + ".gz"))
    mirrors = ((tmp_path / "empty").as_uri() + "/", Path(REAL_DIRECTORY).resolve().as_uri() + "/")
    assert refimpl.mnist.mnist_directory(mirrors=mirrors) == str(clean_environment)
    assert sorted(path.name for path in clean_environment.iterdir()) == sorted(
        name + ".gz" for name in ALL_NAMES
    )
    fast = importlib.import_module("fast.mnist") if "fast" in selected_names() else None
    if fast is not None:
        assert fast.load_mnist().test_labels.shape == (10000,)


# -- §10.1.5 Loading ----------------------------------------------------------------------------


@IMPLEMENTATIONS
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize(
    ("images", "labels", "pattern"),
    [
        (images_idx(3), labels_idx([1, 12, 3]), "label 12 at index 1 is outside 0..9"),
        (images_idx(3), labels_idx([1, 2]), "holds 3 images but .* holds 2 labels"),
        (images_idx(3, side=(27, 28)), labels_idx([1, 2, 3]), "images of 27 x 28, expected 28 x 28"),
        (images_idx(3), labels_idx([1, 2, 3]), "3 images, the published file has 60000"),
        (images_idx(3)[:-1], labels_idx([1, 2, 3]), "truncated payload"),
        (images_idx(3), idx_bytes((3, 1), bytes(3)), "wrong number of dimensions 2, expected 1"),
        (b"\x08\x00\x00\x03" + images_idx(3)[4:], labels_idx([1, 2, 3]), "bad magic"),
    ],
    ids=["label", "counts", "image-size", "published-count", "truncated", "ndim", "magic"],
)
def test_load_errors(
    impl_name: str,
    compress: bool,
    images: bytes,
    labels: bytes,
    pattern: str,
    tmp_path: Path,
    clean_environment: Path,
) -> None:
    synthetic_directory(tmp_path, images, labels, compress)
    with raises_exactly(MnistError, match=pattern) as raised:
        mnist_module(impl_name).load_mnist(str(tmp_path))
    assert str(tmp_path / "train-") in str(raised.value)


@IMPLEMENTATIONS
def test_load_corrupt_gzip(impl_name: str, tmp_path: Path, clean_environment: Path) -> None:
    synthetic_directory(tmp_path, images_idx(3), labels_idx([1, 2, 3]))
    path = tmp_path / (TRAIN_LABELS + ".gz")
    path.write_bytes(path.read_bytes()[:-4])
    with raises_exactly(MnistError, match=re.escape(f"{path}: corrupt gzip data")):
        mnist_module(impl_name).load_mnist(str(tmp_path))


@IMPLEMENTATIONS
def test_load_missing_file(impl_name: str, tmp_path: Path, clean_environment: Path) -> None:
    synthetic_directory(tmp_path, images_idx(3), labels_idx([1, 2, 3]))
    (tmp_path / (TEST_IMAGES + ".gz")).unlink()
    with raises_exactly(MnistError, match=re.escape(f"lacks {TEST_IMAGES}[.gz]")):
        mnist_module(impl_name).load_mnist(str(tmp_path))


def test_published_shape_with_wrong_content(tmp_path: Path) -> None:
    """Right format and counts but other content: only the digests catch it, naming the file."""
    synthetic_directory(tmp_path, images_idx(3), labels_idx([1, 2, 3]))
    write_split(tmp_path, images_idx(10000), labels_idx([4] * 10000), (TEST_IMAGES, TEST_LABELS), True)
    with raises_exactly(MnistError, match=re.escape(f"{tmp_path / TEST_IMAGES}.gz: checksum mismatch")):
        refimpl.mnist.read_split(str(tmp_path), TEST_IMAGES, TEST_LABELS)


TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@NEEDS_REAL_MNIST
@IMPLEMENTATIONS
def test_load_real_mnist(impl_name: str, clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real files, found through MPBADNET_MNIST_DIR: shapes, types and label counts."""
    monkeypatch.setenv(ENV_DIRECTORY, REAL_DIRECTORY)
    data = mnist_module(impl_name).load_mnist()
    if impl_name == "fast":
        assert data.train_images.shape == (60000, 784) and data.train_images.dtype == np.uint8
        assert data.test_images.shape == (10000, 784) and data.test_labels.dtype == np.uint8
        train_labels, test_labels = data.train_labels.tolist(), data.test_labels.tolist()
    else:
        assert len(data.train_images) == 60000 and {len(image) for image in data.train_images} == {784}
        assert len(data.test_images) == 10000 and type(data.test_images[0][0]) is int
        train_labels, test_labels = data.train_labels, data.test_labels
    assert [train_labels.count(label) for label in range(10)] == TRAIN_LABEL_COUNTS
    assert [test_labels.count(label) for label in range(10)] == TEST_LABEL_COUNTS
    assert train_labels[:5] == [5, 0, 4, 1, 9] and test_labels[:5] == [7, 2, 1, 0, 4]


@NEEDS_REAL_MNIST
@BOTH
def test_real_mnist_same_in_both_and_raw_files(tmp_path: Path, clean_environment: Path) -> None:
    """refimpl and fast load the same data, and raw (uncompressed) files load like the .gz ones."""
    for name in ALL_NAMES:
        (tmp_path / name).write_bytes(gzip.decompress((Path(REAL_DIRECTORY) / (name + ".gz")).read_bytes()))
    fast = importlib.import_module("fast.mnist").load_mnist(str(tmp_path))
    reference = refimpl.mnist.load_mnist(REAL_DIRECTORY)
    assert np.array_equal(np.array(reference.test_images, dtype=np.uint8), fast.test_images)
    assert np.array_equal(np.array(reference.train_images[::97], dtype=np.uint8), fast.train_images[::97])
    assert reference.train_labels == fast.train_labels.tolist()
