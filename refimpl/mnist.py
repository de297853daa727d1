"""§10.1 The MNIST data set: IDX files, checksums, locating, downloading and loading.

MNIST is never part of the project: it is read from a directory given explicitly, from the
directory named by ``MPBADNET_MNIST_DIR``, or from a user cache that a checksum-verified
download fills. Every file is verified against the published SHA-256 and MD5 digests of
its decompressed content.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE
CLASSES = 10

ENV_DIRECTORY = "MPBADNET_MNIST_DIR"
"""§10.1.3 Locating the files: the variable naming a directory that holds the four files."""

ENV_NO_DOWNLOAD = "MPBADNET_NO_DOWNLOAD"
"""§10.1.3 Locating the files: set to a value other than empty or ``0``, it forbids downloading."""

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""§10.1.4 Download: the mirrors, tried in this order; a file's URL is mirror + name + ``.gz``."""

DOWNLOAD_TIMEOUT_SECONDS = 60.0
"""§10.1.4 Download: the timeout of each blocking network operation (connect, read)."""

MAX_FILE_BYTES = 64 * 2**20
"""§10.1.2 Compression and checksums: the most bytes read from a file or a gzip stream (MNIST: 47,040,016)."""

IDX_UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


class MnistError(ValueError):
    """§10.1 The MNIST data set: a file is missing, malformed, or not the published MNIST file."""


@dataclass(frozen=True)
class MnistFile:
    """§10.1 The MNIST data set: one canonical file, its shape and the digests of its decompressed bytes."""

    name: str
    ndim: int
    count: int
    size: int
    sha256: str
    md5: str


TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

MNIST_FILES = (
    MnistFile(
        TRAIN_IMAGES,
        3,
        60000,
        47040016,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    MnistFile(
        TRAIN_LABELS,
        1,
        60000,
        60008,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "a25bea736e30d166cdddb491f175f624",
    ),
    MnistFile(
        TEST_IMAGES,
        3,
        10000,
        7840016,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "2646ac647ad5339dbf082846283269ea",
    ),
    MnistFile(
        TEST_LABELS,
        1,
        10000,
        10008,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "27ae3e4e09519cfbb04c329615203637",
    ),
)
"""§10.1 The MNIST data set: the four canonical files with their published digests."""


def mnist_file(name: str) -> MnistFile:
    """§10.1 The MNIST data set: the canonical file of ``name`` (a path; a ``.gz`` suffix is ignored)."""
    base = os.path.basename(name)
    base = base.removesuffix(".gz")
    for candidate in MNIST_FILES:
        if candidate.name == base:
            return candidate
    known = ", ".join(file.name for file in MNIST_FILES)
    raise MnistError(f"{name}: not an MNIST file name (known: {known}, each optionally with .gz)")


def idx_shape(data: bytes, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """§10.1.1 IDX files: check the header and the length of ``data``, and return the shape.

    The payload of ``prod(shape)`` unsigned bytes starts at offset ``4 + 4 * len(shape)``.
    ``ndim``, when given, is the required number of dimensions. Raises ``MnistError``
    naming ``name``.
    """
    if len(data) < 4:
        raise MnistError(
            f"{name}: truncated header: {len(data)} bytes, an IDX file starts with 4 magic bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise MnistError(f"{name}: bad magic {data[:4].hex()}: an IDX file starts with two zero bytes")
    if data[2] != IDX_UNSIGNED_BYTE:
        raise MnistError(f"{name}: unsupported type code 0x{data[2]:02x}, only 0x08 (unsigned byte) is read")
    dimensions = data[3]
    if dimensions == 0 or (ndim is not None and dimensions != ndim):
        wanted = "at least 1" if ndim is None else str(ndim)
        raise MnistError(f"{name}: wrong number of dimensions {dimensions}, expected {wanted}")
    offset = 4 + 4 * dimensions
    if len(data) < offset:
        raise MnistError(
            f"{name}: truncated header: {len(data)} bytes, {dimensions} dimensions need {offset}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(dimensions))
    expected = 1
    for extent in shape:
        expected *= extent
    actual = len(data) - offset
    if actual < expected:
        raise MnistError(f"{name}: truncated payload: shape {shape} needs {expected} bytes, got {actual}")
    if actual > expected:
        raise MnistError(f"{name}: {actual - expected} trailing bytes after the payload of shape {shape}")
    return shape


def parse_idx(data: bytes, name: str, ndim: int | None = None) -> tuple[tuple[int, ...], list[int]]:
    """§10.1.1 IDX files: the shape and the flat row-major values of an unsigned-byte IDX file.

    ``name`` is used in error messages only; ``ndim``, when given, is the required number
    of dimensions.
    """
    shape = idx_shape(data, name, ndim)
    return shape, list(data[4 + 4 * len(shape) :])


def decompress(data: bytes, name: str) -> bytes:
    """§10.1.2 Compression and checksums: gunzip ``data`` if it starts with the gzip magic, else return it.

    Raises ``MnistError`` naming ``name`` for a corrupt gzip stream or an output larger than
    ``MAX_FILE_BYTES``.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise MnistError(f"{name}: corrupt gzip data: {error}") from error
    if len(content) > MAX_FILE_BYTES:
        raise MnistError(f"{name}: decompresses to more than {MAX_FILE_BYTES} bytes")
    return content


def verify_digests(data: bytes, name: str) -> None:
    """§10.1.2 Compression and checksums: check the SHA-256 and MD5 of decompressed ``data``.

    Both must equal the published digests of the file ``name`` (a path or a canonical name,
    :func:`mnist_file`). Raises ``MnistError`` naming the file, the expected and the actual
    digests.
    """
    expected = mnist_file(name)
    actual_sha256 = hashlib.sha256(data).hexdigest()
    actual_md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    mismatches = [
        f"{algorithm} {actual}, expected {wanted}"
        for algorithm, actual, wanted in (
            ("SHA-256", actual_sha256, expected.sha256),
            ("MD5", actual_md5, expected.md5),
        )
        if actual != wanted
    ]
    if mismatches:
        raise MnistError(
            f"{name}: checksum mismatch of the decompressed content: {'; '.join(mismatches)}. "
            "The file is corrupt or not the published MNIST file: delete it and fetch it again"
        )


def find_file(directory: str, name: str) -> str | None:
    """§10.1.3 Locating the files: the path of ``name.gz``, else of ``name``, in ``directory``; or None."""
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def missing_files(directory: str) -> list[str]:
    """§10.1.3 Locating the files: the canonical names that ``directory`` holds in neither form."""
    return [file.name for file in MNIST_FILES if find_file(directory, file.name) is None]


def cache_directory() -> str:
    """§10.1.3 Locating the files: ``$XDG_CACHE_HOME/mp-badnet/mnist``, else ``~/.cache/mp-badnet/mnist``.

    ``XDG_CACHE_HOME`` counts only when it is an absolute path (XDG Base Directory rules).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mp-badnet", "mnist")


def downloads_forbidden() -> bool:
    """§10.1.3 Locating the files: ``MPBADNET_NO_DOWNLOAD`` is set to a value other than empty or ``0``."""
    return os.environ.get(ENV_NO_DOWNLOAD, "") not in ("", "0")


def checked_directory(directory: str, origin: str) -> str:
    """§10.1.3 Locating the files: ``directory`` if it holds the four files, else ``MnistError``.

    ``origin`` says where the directory came from, for the message.
    """
    if not os.path.isdir(directory):
        raise MnistError(f"{origin}: {directory} is not a directory")
    missing = missing_files(directory)
    if missing:
        names = ", ".join(name + "[.gz]" for name in missing)
        raise MnistError(f"{origin}: {directory} lacks {names}")
    return directory


def mnist_directory(explicit: str | None = None, mirrors: tuple[str, ...] = MIRRORS) -> str:
    """§10.1.3 Locating the files: the directory that holds the four MNIST files.

    In order: ``explicit``; the directory named by ``MPBADNET_MNIST_DIR``; the user cache
    (:func:`cache_directory`), where each missing file is downloaded from ``mirrors``
    (:func:`download_file`) unless ``MPBADNET_NO_DOWNLOAD`` forbids it. Presence only: the
    content is verified when it is loaded.
    """
    if explicit is not None:
        return checked_directory(explicit, "the MNIST directory given")
    named = os.environ.get(ENV_DIRECTORY, "")
    if named:
        return checked_directory(named, ENV_DIRECTORY)
    cache = cache_directory()
    missing = missing_files(cache) if os.path.isdir(cache) else [file.name for file in MNIST_FILES]
    if missing and downloads_forbidden():
        raise MnistError(
            f"MNIST is not in the cache {cache} (missing: {', '.join(missing)}) and {ENV_NO_DOWNLOAD} "
            f"forbids downloading it. Set {ENV_DIRECTORY} to a directory holding the four files "
            "(gzip or raw, canonical names), pass that directory explicitly, or put the files in the cache"
        )
    for name in missing:
        download_file(cache, name, mirrors)
    return cache


def fetch_url(url: str, timeout: float) -> bytes:
    """§10.1.4 Download: the body of ``url``, at most ``MAX_FILE_BYTES``, ``timeout`` per blocking step."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read(MAX_FILE_BYTES + 1)
    if len(body) > MAX_FILE_BYTES:
        raise MnistError(f"{url}: more than {MAX_FILE_BYTES} bytes")
    return body


def write_atomically(path: str, data: bytes) -> None:
    """§10.1.4 Download: write ``data`` to a temporary file beside ``path``, then rename it to ``path``."""
    directory, base = os.path.split(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def download_file(
    directory: str, name: str, mirrors: tuple[str, ...] = MIRRORS, timeout: float = DOWNLOAD_TIMEOUT_SECONDS
) -> str:
    """§10.1.4 Download: fetch ``name.gz`` from the first mirror that serves the published content.

    The decompressed bytes are verified (:func:`verify_digests`) before they are written,
    atomically, to ``directory/name.gz``; returns that path. Raises ``MnistError`` listing
    every mirror's failure.
    """
    os.makedirs(directory, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            body = fetch_url(url, timeout)
            verify_digests(decompress(body, url), name)
        except (OSError, http.client.HTTPException, MnistError) as error:
            failures.append(f"{url}: {error}")
            continue
        path = os.path.join(directory, name + ".gz")
        write_atomically(path, body)
        return path
    raise MnistError(
        f"could not download {name}: " + "; ".join(failures) + f". Without network, set {ENV_DIRECTORY} "
        "to a directory holding the MNIST files"
    )


def read_file(path: str) -> bytes:
    """§10.1.5 Loading: the decompressed content of the file at ``path`` (at most ``MAX_FILE_BYTES``)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise MnistError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return decompress(data, path)


def read_split(directory: str, images_name: str, labels_name: str) -> tuple[int, bytes, bytes]:
    """§10.1.5 Loading: the verified pixels and labels of one split: (count, pixel bytes, label bytes).

    Checks, in this order: the IDX format of each file, images of 28 x 28, labels in
    0..9, as many images as labels, the published count, and the digests of both files.
    Pixels are row-major, 784 bytes per image.
    """
    paths = []
    for name in (images_name, labels_name):
        path = find_file(directory, name)
        if path is None:
            raise MnistError(f"{directory} lacks {name}[.gz]")
        paths.append(path)
    images_path, labels_path = paths
    images = read_file(images_path)
    labels = read_file(labels_path)
    shape = idx_shape(images, images_path, 3)
    if shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise MnistError(f"{images_path}: images of {shape[1]} x {shape[2]}, expected 28 x 28")
    (count,) = idx_shape(labels, labels_path, 1)
    pixels = images[16:]
    values = labels[8:]
    if values and max(values) >= CLASSES:
        position = next(index for index, label in enumerate(values) if label >= CLASSES)
        raise MnistError(f"{labels_path}: label {values[position]} at index {position} is outside 0..9")
    if shape[0] != count:
        raise MnistError(f"{images_path} holds {shape[0]} images but {labels_path} holds {count} labels")
    published = mnist_file(images_name).count
    if count != published:
        raise MnistError(f"{images_path}: {count} images, the published file has {published}")
    verify_digests(images, images_path)
    verify_digests(labels, labels_path)
    return count, pixels, values


@dataclass(frozen=True)
class MnistData:
    """§10.1.5 Loading: the training and test sets; images are lists of 784 pixels in 0..255, row-major."""

    train_images: list[list[int]]
    train_labels: list[int]
    test_images: list[list[int]]
    test_labels: list[int]


def image_rows(pixels: bytes, count: int) -> list[list[int]]:
    """§10.1.5 Loading: ``count`` images of 784 pixels from the row-major pixel bytes."""
    return [list(pixels[index * PIXELS : (index + 1) * PIXELS]) for index in range(count)]


def load_mnist(directory: str | None = None) -> MnistData:
    """§10.1.5 Loading: read and verify MNIST from :func:`mnist_directory` of ``directory``."""
    found = mnist_directory(directory)
    train_count, train_pixels, train_labels = read_split(found, TRAIN_IMAGES, TRAIN_LABELS)
    test_count, test_pixels, test_labels = read_split(found, TEST_IMAGES, TEST_LABELS)
    return MnistData(
        image_rows(train_pixels, train_count),
        list(train_labels),
        image_rows(test_pixels, test_count),
        list(test_labels),
    )
