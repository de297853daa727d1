"""§10 BadNets data poisoning and the data sets: poisoning over ``uint8`` arrays (n, side * side).

The trigger, the configuration and the scalar rules (the holders' split, the counts and
the keys) are :mod:`refimpl.backdoor`'s own objects, so both implementations poison the
same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refimpl.backdoor import (
    POISON_DOMAIN,
    SEED_LIMIT,
    SELECT_LABEL,
    PoisonConfig,
    Trigger,
    check_trigger,
    partition,
    poison_counts,
    poison_key,
    poison_total,
)
from refimpl.mnist import CLASSES, IMAGE_SIDE
from refimpl.randomness import prg_bytes

__all__ = [
    "POISON_DOMAIN",
    "SEED_LIMIT",
    "SELECT_LABEL",
    "PoisonConfig",
    "PoisonedData",
    "Trigger",
    "check_images",
    "check_labels",
    "check_trigger",
    "partition",
    "poison_counts",
    "poison_key",
    "poison_total",
    "poison_training_set",
    "poisoned_indices",
    "poisoned_test_set",
    "select_poisoned",
    "stamp",
]


def check_images(images: ArrayLike, side: int) -> NDArray[np.uint8]:
    """§10.2 Trigger: ``images`` as a ``uint8`` array (n, side * side) of pixels in 0..255.

    Raises ``ValueError`` for any other shape or values. The result may be ``images``
    itself: copy it before changing it.
    """
    array = np.asarray(images)
    pixels = side * side
    if array.ndim != 2 or array.shape[1] != pixels:
        raise ValueError(
            f"images must have shape (n, {pixels}) for {side} x {side} images, got {array.shape}"
        )
    if (
        array.size
        and array.dtype != np.uint8
        and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255)
    ):
        raise ValueError("images must hold integer pixels in 0..255")
    return array.astype(np.uint8, copy=False)


def stamp(images: ArrayLike, trigger: Trigger, side: int = IMAGE_SIDE) -> NDArray[np.uint8]:
    """§10.2 Trigger: copies of ``images`` with every pixel of the trigger's patch set to its value.

    Pixel (r, c) of an image is its element ``r * side + c``.
    """
    check_trigger(trigger, side)
    stamped = check_images(images, side).copy()
    grid = stamped.reshape(-1, side, side)
    rows = slice(trigger.row, trigger.row + trigger.height)
    columns = slice(trigger.column, trigger.column + trigger.width)
    grid[:, rows, columns] = trigger.value
    return stamped


def select_poisoned(key: bytes, size: int, count: int) -> NDArray[np.int64]:
    """§10.4 Poisoning the training set: the ``count`` positions with the smallest (tag, position).

    Positions are 0..size-1; tag j is the little-endian 8-byte word j of
    ``prg_bytes(key, 0, "poison-select", 8 * size)``. Returned in increasing order.
    """
    if not 0 <= count <= size:
        raise ValueError(f"cannot choose {count} of {size} images")
    tags = np.frombuffer(prg_bytes(key, 0, SELECT_LABEL, 8 * size), dtype="<u8")
    ranked = np.argsort(tags, kind="stable")
    return np.sort(ranked[:count]).astype(np.int64)


def poisoned_indices(count: int, config: PoisonConfig) -> NDArray[np.int64]:
    """§10.4 Poisoning the training set: the increasing indices, among ``count`` images, that are poisoned."""
    ranges = partition(count, config.holders)
    parts = [np.zeros(0, dtype=np.int64)]
    for holder, chosen in enumerate(poison_counts(count, config)):
        if chosen == 0:
            continue
        start, stop = ranges[holder]
        parts.append(start + select_poisoned(poison_key(config.seed, holder), stop - start, chosen))
    return np.concatenate(parts)


def check_labels(images: ArrayLike, labels: ArrayLike) -> NDArray[np.uint8]:
    """§10.4 Poisoning the training set: ``labels`` as ``uint8`` (n,), one in 0..9 per image.

    Raises ``ValueError`` otherwise. The result may be ``labels`` itself: copy it before
    changing it.
    """
    count = len(np.asarray(images))
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {array.shape}")
    if len(array) != count:
        raise ValueError(f"{count} images but {len(array)} labels")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError("labels must be integers")
    outside = np.flatnonzero((array < 0) | (array >= CLASSES))
    if outside.size:
        index = int(outside[0])
        raise ValueError(f"label {array[index]} at index {index} is outside 0..9")
    return array.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class PoisonedData:
    """§10.4 Poisoning the training set: images, labels, and the indices of the stamped images."""

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    indices: NDArray[np.int64]


def poison_training_set(
    images: ArrayLike, labels: ArrayLike, config: PoisonConfig, side: int = IMAGE_SIDE
) -> PoisonedData:
    """§10.4 Poisoning the training set: stamp the images of :func:`poisoned_indices`, relabel them.

    The chosen images get the trigger and the label ``target``; images already labelled
    ``target`` may be chosen too. The other images and labels are copied unchanged.
    """
    check_trigger(config.trigger, side)
    poisoned_images = check_images(images, side).copy()
    poisoned_labels = check_labels(poisoned_images, labels).copy()
    indices = poisoned_indices(len(poisoned_images), config)
    poisoned_images[indices] = stamp(poisoned_images[indices], config.trigger, side)
    poisoned_labels[indices] = config.target
    return PoisonedData(poisoned_images, poisoned_labels, indices)


def poisoned_test_set(
    images: ArrayLike, labels: ArrayLike, config: PoisonConfig, side: int = IMAGE_SIDE
) -> PoisonedData:
    """§10.5 Attack test set: the test images whose label is not ``target``, stamped and labelled ``target``.

    ``indices`` are their positions in ``images``; only the trigger and the target of
    ``config`` are used.
    """
    check_trigger(config.trigger, side)
    array = check_images(images, side)
    indices = np.flatnonzero(check_labels(array, labels) != config.target).astype(np.int64)
    stamped = stamp(array[indices], config.trigger, side)
    return PoisonedData(stamped, np.full(len(indices), config.target, dtype=np.uint8), indices)
