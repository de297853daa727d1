"""§10.2-§10.5 BadNets poisoning: trigger, data holders, poisoned training set, attack test set.

Properties run on small synthetic images (the functions take the image side as a
parameter) against the definitions of the spec, and refimpl against fast on the same
inputs; one test poisons the real MNIST training set when ``MPBADNET_MNIST_DIR`` is set.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import re
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl.backdoor
from conformance.examples import note_example
from conformance.expect import raises_exactly
from conformance.harness import selected_names
from conformance.requirements import mnist_mark
from refimpl.backdoor import (
    PoisonConfig,
    Trigger,
    partition,
    poison_counts,
    poison_key,
    poison_total,
)
from refimpl.randomness import prg_bytes

SPEC = Path(__file__).resolve().parents[2] / "spec"
IMPLEMENTATIONS = pytest.mark.parametrize("impl_name", selected_names())
BOTH = pytest.mark.skipif(
    set(selected_names()) != {"refimpl", "fast"},
    reason="MPBADNET_IMPLEMENTATIONS explicitly narrowed the implementations under test",
)


def backdoor_module(impl_name: str) -> ModuleType:
    return importlib.import_module(f"{impl_name}.backdoor")


def as_input(impl_name: str, images: list[list[int]], side: int) -> Any:
    """refimpl: the lists themselves; fast: a uint8 array (n, side * side)."""
    if impl_name == "fast":
        return np.array(images, dtype=np.uint8).reshape(len(images), side * side)
    return images


def as_lists(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


# -- strategies -----------------------------------------------------------------------------------


@st.composite
def triggers(draw: st.DrawFn, side: int) -> Trigger:
    height = draw(st.integers(1, side))
    width = draw(st.integers(1, side))
    return Trigger(
        height=height,
        width=width,
        row=draw(st.integers(0, side - height)),
        column=draw(st.integers(0, side - width)),
        value=draw(st.integers(0, 255)),
    )


@st.composite
def labelled_images(
    draw: st.DrawFn, side: int, max_count: int = 40, min_count: int = 1
) -> tuple[list[list[int]], list[int]]:
    """``min_count`` to ``max_count`` images of ``side`` x ``side`` pixels and their labels."""
    count = draw(st.integers(min_count, max_count))
    pixels = st.lists(st.integers(0, 255), min_size=side * side, max_size=side * side)
    images = draw(st.lists(pixels, min_size=count, max_size=count))
    labels = draw(st.lists(st.integers(0, 9), min_size=count, max_size=count))
    return images, labels


@st.composite
def configs(draw: st.DrawFn, side: int) -> PoisonConfig:
    holders = draw(st.integers(1, 6))
    malicious = draw(st.lists(st.integers(0, holders - 1), unique=True, max_size=holders).map(tuple))
    return PoisonConfig(
        seed=draw(st.integers(0, 2**64 - 1)),
        trigger=draw(triggers(side)),
        target=draw(st.integers(0, 9)),
        rate=draw(st.floats(0, 1) | st.sampled_from([0, 1, 0.1, 0.5])),
        holders=holders,
        malicious=malicious,
    )


sides = st.integers(1, 6)
IMAGE_LISTS = pytest.mark.parametrize("no_images", [False, True], ids=["images", "no-images"])
"""Lists of 1 or more images (whose examples are noted), and the empty list as its own case."""


def draw_images(
    data: st.DataObject, side: int, no_images: bool, max_count: int = 40
) -> tuple[list[list[int]], list[int]]:
    """Images and labels: none, or 1 to ``max_count`` (noted as a non-empty example)."""
    if no_images:
        return data.draw(labelled_images(side, 0, 0))
    images, labels = data.draw(labelled_images(side, max_count))
    note_example(len(images) > 0)
    return images, labels


def feasible(config: PoisonConfig, count: int, fraction: float) -> PoisonConfig:
    """``config`` with a rate that its malicious holders can reach: ``fraction`` of what they hold."""
    sizes = [stop - start for start, stop in partition(count, config.holders)]
    held = sum(sizes[holder] for holder in config.malicious)
    return replace(config, rate=fraction * held / count if count else config.rate)


# -- API ------------------------------------------------------------------------------------------


def public_functions(module: ModuleType) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__
    }


@pytest.mark.skipif("fast" not in selected_names(), reason="MPBADNET_IMPLEMENTATIONS excludes fast")
def test_fast_has_every_public_function() -> None:
    """fast.backdoor has every public function of refimpl.backdoor with the same parameters and defaults."""
    fast = importlib.import_module("fast.backdoor")
    for name, function in public_functions(refimpl.backdoor).items():
        twin = getattr(fast, name)
        reference = [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
        assert reference == [(p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()]


def test_docstrings_open_with_spec_anchor() -> None:
    """Every public refimpl.backdoor function and class opens with '§N Title' of an existing heading."""
    text = (SPEC / "10-backdoor.md").read_text(encoding="utf-8")
    objects = {
        **public_functions(refimpl.backdoor),
        "Trigger": Trigger,
        "PoisonConfig": PoisonConfig,
        "PoisonedData": refimpl.backdoor.PoisonedData,
    }
    for name, value in objects.items():
        anchor = re.match(r"^§(\d+(?:\.\d+)*) ([^:,]+)", inspect.getdoc(value) or "")
        assert anchor, f"{name}: no § anchor"
        target = "sec-" + anchor[1].replace(".", "-")
        assert f"({target})=\n## {anchor[1]} {anchor[2].strip()}\n" in text, name


# -- §10.2 Trigger --------------------------------------------------------------------------------


def test_default_trigger_is_the_bottom_right_square() -> None:
    assert Trigger() == Trigger(height=4, width=4, row=23, column=23, value=255)
    assert PoisonConfig(seed=0).trigger == Trigger()


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"height": 0}, "at least 1 x 1"),
        ({"width": -1}, "at least 1 x 1"),
        ({"row": -1}, "non-negative"),
        ({"row": 25}, "outside a 28 x 28 image"),
        ({"column": 24, "width": 5}, "outside a 28 x 28 image"),
        ({"value": 256}, "0..255"),
        ({"value": -1}, "0..255"),
        ({"height": 2.0}, "height must be an integer"),
        ({"value": True}, "value must be an integer"),
    ],
)
def test_invalid_trigger(fields: dict[str, Any], pattern: str) -> None:
    with raises_exactly(ValueError, match=pattern):
        Trigger(**fields)


@IMPLEMENTATIONS
@IMAGE_LISTS
@given(data=st.data(), side=sides)
def test_stamp(impl_name: str, no_images: bool, data: st.DataObject, side: int) -> None:
    """Exactly the patch's pixels take the trigger's value; the input is not changed."""
    trigger = data.draw(triggers(side))
    images, _ = draw_images(data, side, no_images, max_count=5)
    original = [list(image) for image in images]
    given_images = as_input(impl_name, images, side)
    stamped = as_lists(backdoor_module(impl_name).stamp(given_images, trigger, side))
    assert as_lists(given_images) == original
    assert len(stamped) == len(images)
    for before, after in zip(original, stamped, strict=True):
        for row in range(side):
            for column in range(side):
                inside = trigger.row <= row < trigger.row + trigger.height and (
                    trigger.column <= column < trigger.column + trigger.width
                )
                pixel = row * side + column
                assert after[pixel] == (trigger.value if inside else before[pixel])


@IMPLEMENTATIONS
def test_stamp_errors(impl_name: str) -> None:
    module = backdoor_module(impl_name)
    with raises_exactly(ValueError, match="outside a 4 x 4 image"):
        module.stamp(as_input(impl_name, [[0] * 16], 4), Trigger(), 4)
    with raises_exactly(ValueError, match="side must be a positive integer"):
        module.stamp(as_input(impl_name, [], 1), Trigger(height=1, width=1, row=0, column=0), 0)
    with raises_exactly(ValueError):
        module.stamp([[0] * 15], Trigger(height=1, width=1, row=0, column=0), 4)
    with raises_exactly(ValueError):
        module.stamp([[0] * 15 + [256]], Trigger(height=1, width=1, row=0, column=0), 4)


# -- §10.3 Data holders ---------------------------------------------------------------------------


@given(count=st.integers(0, 10**6), holders=st.integers(1, 50))
def test_partition(count: int, holders: int) -> None:
    ranges = partition(count, holders)
    assert len(ranges) == holders and ranges[0][0] == 0 and ranges[-1][1] == count
    sizes = [stop - start for start, stop in ranges]
    assert all(ranges[j][1] == ranges[j + 1][0] for j in range(holders - 1))
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1


def test_partition_errors_and_mnist() -> None:
    assert partition(60000, 5) == [(12000 * j, 12000 * (j + 1)) for j in range(5)]
    assert partition(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert partition(1, 3) == [(0, 1), (1, 1), (1, 1)]
    with raises_exactly(ValueError, match="at least one data holder"):
        partition(10, 0)
    with raises_exactly(ValueError, match="non-negative"):
        partition(-1, 2)


# -- §10.4 Poisoning the training set -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"target": 10}, "target label must be in 0..9"),
        ({"target": -1}, "target label"),
        ({"rate": -0.01}, "rate"),
        ({"rate": 1.5}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"rate": True}, "rate"),
        ({"holders": 0}, "at least one data holder"),
        ({"malicious": (5,)}, r"malicious holder 5 is not in 0\.\.4"),
        ({"malicious": (1, 1)}, "repeat"),
        ({"malicious": [0]}, "tuple"),
        ({"trigger": (4, 4)}, "Trigger"),
    ],
)
def test_invalid_config(fields: dict[str, Any], pattern: str) -> None:
    with raises_exactly(ValueError, match=pattern):
        PoisonConfig(**{"seed": 1, **fields})


def test_config_needs_a_seed() -> None:
    with raises_exactly(TypeError):
        PoisonConfig()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("rate", "count", "total"),
    [
        (0.10, 60000, 6000),
        (0.5, 3, 2),  # 1.5 rounds up
        (0.25, 2, 1),  # 0.5 rounds up
        (0.1, 5, 1),  # 0.1 is slightly above 1/10 in binary64
        (0.15, 10, 1),  # 0.15 is slightly below: 1.4999..., although 0.15 * 10 == 1.5 in floating point
        (0, 100, 0),
        (1, 7, 7),
    ],
)
def test_poison_total_rounds_half_up_exactly(rate: float, count: int, total: int) -> None:
    assert poison_total(count, rate) == total


@given(count=st.integers(0, 5000), data=st.data())
def test_poison_counts(count: int, data: st.DataObject) -> None:
    """Counts sum to the total, stay within each holder, are zero for honest holders, and are proportional."""
    config = data.draw(configs(1))
    sizes = [stop - start for start, stop in partition(count, config.holders)]
    held = sum(sizes[j] for j in config.malicious)
    total = poison_total(count, config.rate)
    if total > held:
        with raises_exactly(ValueError, match=f"asks for {total} poisoned images.*hold only {held}"):
            poison_counts(count, config)
        return
    counts = poison_counts(count, config)
    assert sum(counts) == total
    for holder, chosen in enumerate(counts):
        assert chosen <= sizes[holder]
        assert holder in config.malicious or chosen == 0
        if held:
            assert abs(chosen - total * sizes[holder] / held) < 1 or holder not in config.malicious


def test_poison_counts_largest_remainder() -> None:
    """61 images, 5 holders (13, 12, 12, 12, 12), holders 0-2 poison round(30.5) = 31: 10.89, 10.05, 10.05."""
    config = PoisonConfig(seed=1, rate=0.5, malicious=(2, 1, 0))
    assert poison_counts(61, config) == [11, 10, 10, 0, 0]
    assert poison_counts(60000, PoisonConfig(seed=1)) == [6000, 0, 0, 0, 0]
    with raises_exactly(ValueError, match=r"lower the rate or add malicious holders"):
        poison_counts(60000, PoisonConfig(seed=1, rate=0.25))


def test_poison_key() -> None:
    expected = hashlib.sha256(b"MP-BADNET/v1 poison" + (5).to_bytes(8, "little") + (2).to_bytes(8, "little"))
    assert poison_key(5, 2) == expected.digest()
    assert len({poison_key(seed, holder) for seed in range(3) for holder in range(3)}) == 9


@IMPLEMENTATIONS
@given(key=st.binary(min_size=32, max_size=32), size=st.integers(0, 300), data=st.data())
def test_select_poisoned_takes_the_smallest_tags(
    impl_name: str, key: bytes, size: int, data: st.DataObject
) -> None:
    count = data.draw(st.integers(0, size))
    stream = prg_bytes(key, 0, "poison-select", 8 * size)
    tags = [int.from_bytes(stream[8 * i : 8 * i + 8], "little") for i in range(size)]
    expected = sorted(sorted(range(size), key=lambda i: (tags[i], i))[:count])
    assert as_lists(backdoor_module(impl_name).select_poisoned(key, size, count)) == expected


@IMPLEMENTATIONS
def test_select_poisoned_count_too_large(impl_name: str) -> None:
    with raises_exactly(ValueError, match="cannot choose 4 of 3"):
        backdoor_module(impl_name).select_poisoned(bytes(32), 3, 4)


@IMPLEMENTATIONS
@IMAGE_LISTS
@given(side=sides, data=st.data())
def test_poison_training_set(impl_name: str, no_images: bool, side: int, data: st.DataObject) -> None:
    """Chosen images carry the trigger and the target; all others are unchanged; inputs untouched."""
    images, labels = draw_images(data, side, no_images)
    config = feasible(data.draw(configs(side)), len(images), data.draw(st.floats(0, 1)))
    counts = poison_counts(len(images), config)
    module = backdoor_module(impl_name)
    given_images = as_input(impl_name, images, side)
    given_labels = np.array(labels, dtype=np.uint8) if impl_name == "fast" else list(labels)
    result = module.poison_training_set(given_images, given_labels, config, side)
    assert as_lists(given_images) == images and as_lists(given_labels) == labels
    indices = as_lists(result.indices)
    assert indices == sorted(set(indices)) and len(indices) == poison_total(len(images), config.rate)
    for holder, (start, stop) in enumerate(partition(len(images), config.holders)):
        assert sum(start <= index < stop for index in indices) == counts[holder]
    stamped = as_lists(module.stamp(given_images, config.trigger, side))
    chosen = set(indices)
    for index in range(len(images)):
        poisoned = index in chosen
        assert as_lists(result.images[index]) == (stamped[index] if poisoned else images[index])
        assert int(result.labels[index]) == (config.target if poisoned else labels[index])


@IMPLEMENTATIONS
def test_images_already_labelled_target_are_eligible(impl_name: str) -> None:
    images = [[index % 256] * 4 for index in range(50)]
    config = PoisonConfig(
        seed=3, trigger=Trigger(height=1, width=1, row=0, column=0), target=6, rate=0.4, holders=1
    )
    result = backdoor_module(impl_name).poison_training_set(
        as_input(impl_name, images, 2), [6] * 50, config, 2
    )
    assert len(as_lists(result.indices)) == 20 and as_lists(result.labels) == [6] * 50


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    ("labels", "pattern"),
    [([1, 2], "3 images but"), ([1, 10, 2], "label 10 at index 1 is outside 0..9"), ([1, -1, 2], "label -1")],
)
def test_poison_label_errors(impl_name: str, labels: list[int], pattern: str) -> None:
    images = as_input(impl_name, [[0] * 4] * 3, 2)
    config = PoisonConfig(seed=1, trigger=Trigger(height=1, width=1, row=1, column=1), holders=1)
    given_labels = np.array(labels) if impl_name == "fast" else labels
    with raises_exactly(ValueError, match=pattern):
        backdoor_module(impl_name).poison_training_set(images, given_labels, config, 2)


@IMPLEMENTATIONS
def test_poisoning_depends_on_the_seed(impl_name: str) -> None:
    module = backdoor_module(impl_name)
    first = as_lists(module.poisoned_indices(10000, PoisonConfig(seed=1)))
    assert first == as_lists(module.poisoned_indices(10000, PoisonConfig(seed=1)))
    assert first != as_lists(module.poisoned_indices(10000, PoisonConfig(seed=2)))
    assert len(first) == 1000 and all(index < 2000 for index in first)


# -- §10.5 Attack test set ------------------------------------------------------------------------


@IMPLEMENTATIONS
@IMAGE_LISTS
@given(side=sides, data=st.data())
def test_poisoned_test_set(impl_name: str, no_images: bool, side: int, data: st.DataObject) -> None:
    images, labels = draw_images(data, side, no_images)
    config = data.draw(configs(side))
    module = backdoor_module(impl_name)
    given_images = as_input(impl_name, images, side)
    given_labels = np.array(labels, dtype=np.int64) if impl_name == "fast" else labels
    result = module.poisoned_test_set(given_images, given_labels, config, side)
    indices = [index for index, label in enumerate(labels) if label != config.target]
    assert as_lists(result.indices) == indices
    assert as_lists(result.labels) == [config.target] * len(indices)
    stamped = as_lists(module.stamp(given_images, config.trigger, side))
    assert as_lists(result.images) == [stamped[index] for index in indices]
    assert as_lists(given_images) == images


# -- refimpl == fast ------------------------------------------------------------------------------


def _outcome(function: Any, *arguments: Any) -> tuple[str, Any]:
    try:
        result = function(*arguments)
    except ValueError as error:
        return "error", (type(error), str(error))
    return "ok", (as_lists(result.images), as_lists(result.labels), as_lists(result.indices))


@BOTH
@IMAGE_LISTS
@given(side=sides, data=st.data())
def test_refimpl_and_fast_poison_the_same_images(no_images: bool, side: int, data: st.DataObject) -> None:
    """Same inputs and seed: the same poisoned images, labels and indices, or the same error."""
    images, labels = draw_images(data, side, no_images)
    config = data.draw(configs(side))
    fast = importlib.import_module("fast.backdoor")
    for name in ("poison_training_set", "poisoned_test_set"):
        reference = _outcome(getattr(refimpl.backdoor, name), images, labels, config, side)
        vectorised = _outcome(
            getattr(fast, name), as_input("fast", images, side), np.array(labels), config, side
        )
        assert reference == vectorised, name


@mnist_mark()
@pytest.mark.skipif("fast" not in selected_names(), reason="MPBADNET_IMPLEMENTATIONS excludes fast")
def test_real_mnist_defaults() -> None:
    """The paper's setting on the real training set: 6,000 images of holder 0, the 4 x 4 square, label 6."""
    data = importlib.import_module("fast.mnist").load_mnist()
    fast = importlib.import_module("fast.backdoor")
    config = PoisonConfig(seed=2021)
    result = fast.poison_training_set(data.train_images, data.train_labels, config)
    assert len(result.indices) == 6000 and result.indices.max() < 12000
    assert result.indices.tolist() == refimpl.backdoor.poisoned_indices(60000, config)
    squares = result.images[result.indices].reshape(-1, 28, 28)[:, 23:27, 23:27]
    assert (squares == 255).all() and (result.labels[result.indices] == 6).all()
    attack = fast.poisoned_test_set(data.test_images, data.test_labels, config)
    assert attack.images.shape == (9042, 784)
