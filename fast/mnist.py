"""§10.1 The MNIST data set, as numpy arrays: IDX parsing and loading.

Locating, downloading, decompressing and verifying the files are :mod:`refimpl.mnist`'s own
functions (they handle bytes, not arrays), so both implementations accept and reject
exactly the same files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from refimpl.mnist import (
    CLASSES,
    DOWNLOAD_TIMEOUT_SECONDS,
    ENV_DIRECTORY,
    ENV_NO_DOWNLOAD,
    IMAGE_SIDE,
    MAX_FILE_BYTES,
    MIRRORS,
    MNIST_FILES,
    PIXELS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    MnistError,
    MnistFile,
    cache_directory,
    checked_directory,
    decompress,
    download_file,
    downloads_forbidden,
    fetch_url,
    find_file,
    idx_shape,
    missing_files,
    mnist_directory,
    mnist_file,
    read_file,
    read_split,
    verify_digests,
    write_atomically,
)

__all__ = [
    "CLASSES",
    "DOWNLOAD_TIMEOUT_SECONDS",
    "ENV_DIRECTORY",
    "ENV_NO_DOWNLOAD",
    "IMAGE_SIDE",
    "MAX_FILE_BYTES",
    "MIRRORS",
    "MNIST_FILES",
    "PIXELS",
    "TEST_IMAGES",
    "TEST_LABELS",
    "TRAIN_IMAGES",
    "TRAIN_LABELS",
    "MnistData",
    "MnistError",
    "MnistFile",
    "cache_directory",
    "checked_directory",
    "decompress",
    "download_file",
    "downloads_forbidden",
    "fetch_url",
    "find_file",
    "idx_shape",
    "image_rows",
    "load_mnist",
    "missing_files",
    "mnist_directory",
    "mnist_file",
    "parse_idx",
    "read_file",
    "read_split",
    "verify_digests",
    "write_atomically",
]


def parse_idx(data: bytes, name: str, ndim: int | None = None) -> NDArray[np.uint8]:
    """§10.1.1 IDX files: the values of an unsigned-byte IDX file as a ``uint8`` array of its shape.

    ``name`` is used in error messages only; ``ndim``, when given, is the required number
    of dimensions.
    """
    shape = idx_shape(data, name, ndim)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(shape)).reshape(shape).copy()


@dataclass(frozen=True)
class MnistData:
    """§10.1.5 Loading: the training and test sets as ``uint8`` arrays.

    Images have shape (n, 784), each row an image in row-major order; labels have shape (n,).
    """

    train_images: NDArray[np.uint8]
    train_labels: NDArray[np.uint8]
    test_images: NDArray[np.uint8]
    test_labels: NDArray[np.uint8]


def image_rows(pixels: bytes, count: int) -> NDArray[np.uint8]:
    """§10.1.5 Loading: ``count`` images of 784 pixels from the row-major pixel bytes, as (count, 784)."""
    return np.frombuffer(pixels, dtype=np.uint8, count=count * PIXELS).reshape(count, PIXELS).copy()


def load_mnist(directory: str | None = None) -> MnistData:
    """§10.1.5 Loading: read and verify MNIST from :func:`mnist_directory` of ``directory``."""
    found = mnist_directory(directory)
    train_count, train_pixels, train_labels = read_split(found, TRAIN_IMAGES, TRAIN_LABELS)
    test_count, test_pixels, test_labels = read_split(found, TEST_IMAGES, TEST_LABELS)
    return MnistData(
        image_rows(train_pixels, train_count),
        np.frombuffer(train_labels, dtype=np.uint8).copy(),
        image_rows(test_pixels, test_count),
        np.frombuffer(test_labels, dtype=np.uint8).copy(),
    )
