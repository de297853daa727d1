"""§10 BadNets data poisoning and the data sets: the trigger, the holders' split, the poisoned sets.

Images are lists of ``side * side`` pixels in 0..255, row-major (MNIST: ``side`` = 28);
labels are integers in 0..9. Every function returns new lists and leaves its inputs as
they were.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from refimpl.mnist import CLASSES, IMAGE_SIDE
from refimpl.randomness import prg_bytes

POISON_DOMAIN = b"MP-BADNET/v1 poison"
"""§10.4 Poisoning the training set: the prefix of the hash that derives a holder's selection key."""

SELECT_LABEL = "poison-select"
"""§10.4 Poisoning the training set: the PRG label of the selection tags."""

SEED_LIMIT = 2**64
"""§10.4 Poisoning the training set: seeds are integers in [0, SEED_LIMIT)."""


def _is_integer(value: object) -> bool:
    """Whether ``value`` is a Python ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_trigger(trigger: Trigger, side: int) -> None:
    """§10.2 Trigger: the trigger lies inside a ``side`` x ``side`` image (``ValueError`` if not)."""
    if not (_is_integer(side) and side >= 1):
        raise ValueError(f"the image side must be a positive integer, got {side!r}")
    if trigger.row + trigger.height > side or trigger.column + trigger.width > side:
        raise ValueError(
            f"the trigger covers rows {trigger.row}..{trigger.row + trigger.height - 1} and columns "
            f"{trigger.column}..{trigger.column + trigger.width - 1}, outside a {side} x {side} image"
        )


@dataclass(frozen=True)
class Trigger:
    """§10.2 Trigger: a ``height`` x ``width`` patch of pixel ``value``, top-left at (``row``, ``column``).

    The default is the 4 x 4 white square one pixel from the bottom-right corner of a
    28 x 28 image (rows and columns 23..26). Raises ``ValueError`` unless every field is an
    integer, the patch is non-empty and inside 28 x 28, and ``value`` is in 0..255.
    """

    height: int = 4
    width: int = 4
    row: int = 23
    column: int = 23
    value: int = 255

    def __post_init__(self) -> None:
        fields = {
            "height": self.height,
            "width": self.width,
            "row": self.row,
            "column": self.column,
            "value": self.value,
        }
        for field, number in fields.items():
            if not _is_integer(number):
                raise ValueError(f"trigger {field} must be an integer, got {number!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"the trigger must be at least 1 x 1, got {self.height} x {self.width}")
        if self.row < 0 or self.column < 0:
            raise ValueError(f"the trigger position must be non-negative, got ({self.row}, {self.column})")
        if not 0 <= self.value <= 255:
            raise ValueError(f"the trigger value must be a pixel value in 0..255, got {self.value}")
        check_trigger(self, IMAGE_SIDE)


def check_images(images: Sequence[Sequence[int]], side: int) -> None:
    """§10.2 Trigger: every image has ``side * side`` pixels in 0..255 (``ValueError`` if not)."""
    pixels = side * side
    for index, image in enumerate(images):
        if len(image) != pixels:
            raise ValueError(f"image {index} has {len(image)} pixels, expected {side} x {side} = {pixels}")
        if image and (min(image) < 0 or max(image) > 255):
            raise ValueError(f"image {index} has a pixel outside 0..255")


def stamp(images: Sequence[Sequence[int]], trigger: Trigger, side: int = IMAGE_SIDE) -> list[list[int]]:
    """§10.2 Trigger: copies of ``images`` with every pixel of the trigger's patch set to its value.

    Pixel (r, c) of an image is its element ``r * side + c``.
    """
    check_trigger(trigger, side)
    check_images(images, side)
    stamped = []
    for image in images:
        copy = list(image)
        for row in range(trigger.row, trigger.row + trigger.height):
            for column in range(trigger.column, trigger.column + trigger.width):
                copy[row * side + column] = trigger.value
        stamped.append(copy)
    return stamped


def partition(count: int, holders: int) -> list[tuple[int, int]]:
    """§10.3 Data holders: the contiguous ranges (start, stop) of ``count`` images among ``holders``.

    Sizes differ by at most one and the first holders get the larger ones.
    """
    if not (_is_integer(holders) and holders >= 1):
        raise ValueError(f"there must be at least one data holder, got {holders!r}")
    if not (_is_integer(count) and count >= 0):
        raise ValueError(f"the image count must be a non-negative integer, got {count!r}")
    quotient, remainder = divmod(count, holders)
    ranges = []
    start = 0
    for holder in range(holders):
        size = quotient + (1 if holder < remainder else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


@dataclass(frozen=True, kw_only=True)
class PoisonConfig:
    """§10.4 Poisoning the training set: the attack's parameters; every field is public.

    ``seed`` (0 <= seed < 2^64) keys the choice of images; ``rate`` is the fraction of the
    whole training set that is poisoned, by the ``malicious`` holders among ``holders``.
    Raises ``ValueError`` for a target outside 0..9, a rate outside [0, 1], or malicious
    indices that repeat or are not in 0..holders-1.
    """

    seed: int
    trigger: Trigger = Trigger()
    target: int = 6
    rate: float = 0.10
    holders: int = 5
    malicious: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not (_is_integer(self.seed) and 0 <= self.seed < SEED_LIMIT):
            raise ValueError(f"the poisoning seed must be an integer in [0, 2^64), got {self.seed!r}")
        if not isinstance(self.trigger, Trigger):
            raise ValueError(f"trigger must be a Trigger, got {self.trigger!r}")
        if not (_is_integer(self.target) and 0 <= self.target < CLASSES):
            raise ValueError(f"the target label must be in 0..9, got {self.target!r}")
        valid_rate = isinstance(self.rate, (int, float)) and not isinstance(self.rate, bool)
        if not (valid_rate and math.isfinite(self.rate) and 0 <= self.rate <= 1):
            raise ValueError(f"the poisoning rate must be a number in [0, 1], got {self.rate!r}")
        if not (_is_integer(self.holders) and self.holders >= 1):
            raise ValueError(f"there must be at least one data holder, got {self.holders!r}")
        if not isinstance(self.malicious, tuple):
            raise ValueError(f"malicious must be a tuple of holder indices, got {self.malicious!r}")
        for holder in self.malicious:
            if not (_is_integer(holder) and 0 <= holder < self.holders):
                raise ValueError(f"malicious holder {holder!r} is not in 0..{self.holders - 1}")
        if len(set(self.malicious)) != len(self.malicious):
            raise ValueError(f"malicious holders repeat: {self.malicious}")


def poison_total(count: int, rate: float) -> int:
    """§10.4 Poisoning the training set: round(rate x count), half up, on the exact value of ``rate``."""
    return math.floor(Fraction(rate) * count + Fraction(1, 2))


def poison_counts(count: int, config: PoisonConfig) -> list[int]:
    """§10.4 Poisoning the training set: the number of images each holder poisons, by largest remainders.

    Raises ``ValueError`` when the malicious holders hold fewer images than
    :func:`poison_total` asks for.
    """
    ranges = partition(count, config.holders)
    sizes = [stop - start for start, stop in ranges]
    total = poison_total(count, config.rate)
    held = sum(sizes[holder] for holder in config.malicious)
    if total > held:
        raise ValueError(
            f"rate {config.rate} of {count} images asks for {total} poisoned images, but the malicious "
            f"holders {tuple(sorted(config.malicious))} hold only {held}: lower the rate or add "
            "malicious holders"
        )
    counts = [0] * config.holders
    if total == 0:
        return counts
    remainders = []
    for holder in sorted(config.malicious):
        counts[holder], remainder = divmod(total * sizes[holder], held)
        remainders.append((-remainder, holder))
    for _, holder in sorted(remainders)[: total - sum(counts)]:
        counts[holder] += 1
    return counts


def poison_key(seed: int, holder: int) -> bytes:
    """§10.4 Poisoning the training set: SHA-256(POISON_DOMAIN || LE64(seed) || LE64(holder))."""
    return hashlib.sha256(POISON_DOMAIN + seed.to_bytes(8, "little") + holder.to_bytes(8, "little")).digest()


def select_poisoned(key: bytes, size: int, count: int) -> list[int]:
    """§10.4 Poisoning the training set: the ``count`` positions with the smallest (tag, position).

    Positions are 0..size-1; tag j is the little-endian 8-byte word j of
    ``prg_bytes(key, 0, "poison-select", 8 * size)``. Returned in increasing order.
    """
    if not 0 <= count <= size:
        raise ValueError(f"cannot choose {count} of {size} images")
    data = prg_bytes(key, 0, SELECT_LABEL, 8 * size)
    tags = [int.from_bytes(data[8 * position : 8 * position + 8], "little") for position in range(size)]
    ranked = sorted(range(size), key=lambda position: (tags[position], position))
    return sorted(ranked[:count])


def poisoned_indices(count: int, config: PoisonConfig) -> list[int]:
    """§10.4 Poisoning the training set: the increasing indices, among ``count`` images, that are poisoned."""
    indices: list[int] = []
    ranges = partition(count, config.holders)
    for holder, chosen in enumerate(poison_counts(count, config)):
        if chosen == 0:
            continue
        start, stop = ranges[holder]
        positions = select_poisoned(poison_key(config.seed, holder), stop - start, chosen)
        indices.extend(start + position for position in positions)
    return indices


def check_labels(images: Sequence[Sequence[int]], labels: Sequence[int]) -> None:
    """§10.4 Poisoning the training set: one label in 0..9 per image (``ValueError`` if not)."""
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    for index, label in enumerate(labels):
        if not (_is_integer(label) and 0 <= label < CLASSES):
            raise ValueError(f"label {label} at index {index} is outside 0..9")


@dataclass(frozen=True)
class PoisonedData:
    """§10.4 Poisoning the training set: images, labels, and the indices of the stamped images."""

    images: list[list[int]]
    labels: list[int]
    indices: list[int]


def poison_training_set(
    images: Sequence[Sequence[int]], labels: Sequence[int], config: PoisonConfig, side: int = IMAGE_SIDE
) -> PoisonedData:
    """§10.4 Poisoning the training set: stamp the images of :func:`poisoned_indices`, relabel them.

    The chosen images get the trigger and the label ``target``; images already labelled
    ``target`` may be chosen too. The other images and labels are copied unchanged.
    """
    check_trigger(config.trigger, side)
    check_images(images, side)
    check_labels(images, labels)
    indices = poisoned_indices(len(images), config)
    poisoned_images = [list(image) for image in images]
    poisoned_labels = list(labels)
    stamped = stamp([images[index] for index in indices], config.trigger, side)
    for index, image in zip(indices, stamped, strict=True):
        poisoned_images[index] = image
        poisoned_labels[index] = config.target
    return PoisonedData(poisoned_images, poisoned_labels, indices)


def poisoned_test_set(
    images: Sequence[Sequence[int]], labels: Sequence[int], config: PoisonConfig, side: int = IMAGE_SIDE
) -> PoisonedData:
    """§10.5 Attack test set: the test images whose label is not ``target``, stamped and labelled ``target``.

    ``indices`` are their positions in ``images``; only the trigger and the target of
    ``config`` are used.
    """
    check_trigger(config.trigger, side)
    check_images(images, side)
    check_labels(images, labels)
    indices = [index for index, label in enumerate(labels) if label != config.target]
    stamped = stamp([images[index] for index in indices], config.trigger, side)
    return PoisonedData(stamped, [config.target] * len(indices), indices)
