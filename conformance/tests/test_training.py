"""§9 Secure training: one whole step (forward, loss gradient, backward, update) on small networks.

refimpl == fast bit for bit (shares and transcripts), the secure step within the §9.4 error
bound of the exact step from the same public initial model, evaluation counts, the public
randomness, and the model share files with every way of mixing them up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

import fast.preprocessing
import fast.sharing
import fast.training
import refimpl.preprocessing
import refimpl.sharing
import refimpl.training
from conformance.bounds import training_step_bound
from conformance.expect import raises_exactly
from fast.ring import encode_fixed
from refimpl.ring import ShapeError, get_profile
from refimpl.training import Architecture, ModelFileError, TrainingConfig, TrainingConfigError
from refimpl.transport import run_parties

Modules = tuple[Any, Any, Any]
REFERENCE: Modules = (refimpl.training, refimpl.sharing, refimpl.preprocessing)
FAST: Modules = (fast.training, fast.sharing, fast.preprocessing)


def small_problem(seed: int, architecture: Architecture, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels in 0..255 and one-hot labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, architecture.layers[0]))
    labels = np.eye(architecture.classes)[rng.integers(0, architecture.classes, batch)]
    return images, labels


def as_input(modules: Modules, values: np.ndarray) -> Any:
    if modules is FAST:
        return values
    return [int(value) for value in values.reshape(-1)]


def step_program(
    modules: Modules, profile_name: str, architecture: Architecture, config: TrainingConfig, seed: int
) -> Callable[[Any], list[list[int]]]:
    training, sharing, preprocessing = modules
    profile = get_profile(profile_name)
    images, labels = small_problem(seed, architecture, config.batch_size)
    x_values = encode_fixed(profile, images / 255.0)
    y_values = encode_fixed(profile, labels)

    def program(ctx: Any) -> list[list[int]]:
        weights = training.initial_weights(profile, architecture, config.public_seed)
        model = training.share_model(ctx, weights, architecture)
        pool = preprocessing.generate_comparison_pool(
            ctx, profile, training.comparisons_for_training_step(architecture, config.batch_size)
        )
        shape_x = (config.batch_size, architecture.layers[0])
        shape_y = (config.batch_size, architecture.classes)
        x = sharing.share_input(
            ctx, profile.ring, 0, as_input(modules, x_values) if ctx.party == 0 else None, shape_x
        )
        y = sharing.share_input(
            ctx, profile.ring, 0, as_input(modules, y_values) if ctx.party == 0 else None, shape_y
        )
        updated = training.train_step(ctx, model, x, y, pool, config)
        return [
            [int(value) for value in np.asarray(sharing.reveal(ctx, layer), dtype=object).reshape(-1)]
            for layer in updated
        ]

    return program


ARCHITECTURES = [Architecture((6, 4, 3)), Architecture((5, 3, 3, 2))]


@pytest.mark.parametrize("profile", ["paper", "wide"])
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: a.describe())
def test_training_step_refimpl_equals_fast(profile: str, architecture: Architecture) -> None:
    config = TrainingConfig(batch_size=4, learning_rate_log2=2)
    reference = run_parties(
        step_program(REFERENCE, profile, architecture, config, 3),
        profile=profile,
        seed=b"t",
        keep_transcript=True,
    )
    vectorised = run_parties(
        step_program(FAST, profile, architecture, config, 3), profile=profile, seed=b"t", keep_transcript=True
    )
    assert reference.outputs[0] == vectorised.outputs[0]
    assert [s.transcript_hash for s in reference.stats] == [s.transcript_hash for s in vectorised.stats]
    assert reference.rounds == vectorised.rounds


def decode(profile_name: str, values: list[int], shape: tuple[int, ...]) -> np.ndarray:
    profile = get_profile(profile_name)
    half, modulus = 1 << (profile.ring_bits - 1), 1 << profile.ring_bits
    signed = [value - modulus if value >= half else value for value in values]
    return (np.array(signed, dtype=np.float64) / 2.0**profile.fractional_bits).reshape(shape)


BOUND_ARCHITECTURES = [Architecture((6, 5, 3)), Architecture((7, 4, 4, 3))]


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**16),
    batch_log2=st.integers(1, 3),
    rate_log2=st.integers(0, 4),
    architecture=st.sampled_from(BOUND_ARCHITECTURES),
)
def test_training_step_matches_float_within_the_bound(
    seed: int, batch_log2: int, rate_log2: int, architecture: Architecture
) -> None:
    """§9.4: every updated weight of a secure step within E^G of the exact step (wide, fast).

    Batches of 2 to 8 random records, eta = 2^0 to 2^-4, two small networks (one and two
    hidden layers). The exact step starts from the same decoded model and decoded inputs
    (E^A_0 = 0) and the bound is :func:`conformance.bounds.training_step_bound`, with
    sigma = 0.01 (spec §9.4). Only ``wide``: under ``paper`` (l = 32) a probabilistic
    truncation of a value z fails with probability |z| / 2^32 (about 2^-10 per product of
    magnitude 1, spec §5.3 and §8), so a step of a few hundred truncations breaks far too
    often for an entrywise bound to be a useful property; §9 requires ``wide`` for training.
    """
    config = TrainingConfig(batch_size=1 << batch_log2, learning_rate_log2=rate_log2)
    profile = get_profile("wide")
    result = run_parties(
        step_program(FAST, "wide", architecture, config, seed),
        profile="wide",
        seed=seed.to_bytes(4, "little"),
    )
    initial = fast.training.initial_weights(profile, architecture, config.public_seed)
    start = [
        decode("wide", [int(v) for v in w], shape)
        for w, shape in zip(initial, architecture.weight_shapes, strict=True)
    ]
    images, labels = small_problem(seed, architecture, config.batch_size)
    inputs = decode("wide", [int(v) for v in encode_fixed(profile, images / 255.0).reshape(-1)], images.shape)
    expected, bounds = training_step_bound(
        profile, start, inputs, labels, config.learning_rate, config.batch_size
    )
    ratio = 0.0
    for layer, (values, shape) in enumerate(zip(result.outputs[0], architecture.weight_shapes, strict=True)):
        deviation = np.abs(decode("wide", values, shape) - expected[layer])
        assert (deviation <= bounds[layer]).all(), (layer, float((deviation - bounds[layer]).max()))
        ratio = max(ratio, float((deviation / bounds[layer]).max()))
    target(ratio, label="largest deviation / E^G")


def test_correct_count_opens_the_plain_count() -> None:
    architecture = Architecture((6, 4, 3))
    config = TrainingConfig(batch_size=8)
    profile = get_profile("wide")
    images, labels = small_problem(11, architecture, 8)
    weights = fast.training.initial_weights(profile, architecture, config.public_seed)
    plain = [
        decode("wide", [int(v) for v in w], s)
        for w, s in zip(weights, architecture.weight_shapes, strict=True)
    ]
    activation = images / 255.0
    for layer, matrix in enumerate(plain):
        activation = np.c_[activation, np.ones(8)] @ matrix
        if layer < len(plain) - 1:
            activation = np.maximum(activation, 0)
    expected = int((activation.argmax(axis=1) == labels.argmax(axis=1)).sum())

    def program(ctx: Any) -> int:
        model = fast.training.share_model(ctx, weights, architecture)
        pool = fast.preprocessing.generate_comparison_pool(
            ctx, profile, fast.training.comparisons_for_evaluation(architecture, 8)
        )
        x = fast.sharing.share_input(
            ctx, profile.ring, 0, encode_fixed(profile, images / 255.0) if ctx.party == 0 else None, (8, 6)
        )
        y = fast.sharing.share_input(
            ctx, profile.ring, 0, encode_fixed(profile, labels) if ctx.party == 0 else None, (8, 3)
        )
        return fast.training.correct_count(ctx, model, x, y, pool)

    assert run_parties(program, profile=profile, seed=b"c").outputs == [expected] * 3


def test_public_randomness_agrees_and_is_well_formed() -> None:
    profile = get_profile("wide")
    architecture = Architecture((20, 7, 3))
    config = TrainingConfig(batch_size=4, public_seed=bytes(range(32)))
    reference = refimpl.training.initial_weights(profile, architecture, config.public_seed)
    vectorised = fast.training.initial_weights(profile, architecture, config.public_seed)
    assert [list(map(int, layer)) for layer in vectorised] == reference
    for layer, (rows, columns) in zip(reference, architecture.weight_shapes, strict=True):
        bound = refimpl.training.weight_bound(profile, rows - 1)
        signed = [value - (1 << 64) if value >= 1 << 63 else value for value in layer]
        assert all(-bound <= value <= bound for value in signed)
        assert signed[-columns:] == [0] * columns
    order = refimpl.training.epoch_order(config, 2, 18)
    assert order == fast.training.epoch_order(config, 2, 18)
    assert len(order) == 4 and all(len(batch) == 4 for batch in order)
    assert len({record for batch in order for record in batch}) == 16
    assert order != refimpl.training.epoch_order(config, 3, 18)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"batch_size": 100}, "power of two"),
        ({"learning_rate_log2": -1}, "learning_rate_log2"),
        ({"epochs": 0}, "epoch"),
        ({"public_seed": b"short"}, "public seed"),
    ],
)
def test_bad_training_configs_are_refused(arguments: dict[str, Any], message: str) -> None:
    with raises_exactly(TrainingConfigError, match=message):
        TrainingConfig(**arguments)


def test_bad_architectures_and_batches_are_refused() -> None:
    with raises_exactly(TrainingConfigError):
        Architecture((784,))
    architecture = Architecture((6, 4, 3))
    config = TrainingConfig(batch_size=4)

    def program(ctx: Any) -> None:
        profile = ctx.profile
        model = fast.training.share_model(
            ctx, fast.training.initial_weights(profile, architecture, config.public_seed), architecture
        )
        x = fast.sharing.public_share(ctx, profile.ring, 0, (4, 5))
        y = fast.sharing.public_share(ctx, profile.ring, 0, (4, 3))
        fast.training.train_step(
            ctx, model, x, y, fast.preprocessing.generate_comparison_pool(ctx, profile, 0), config
        )

    with raises_exactly(ShapeError, match="do not fit"):
        run_parties(program, seed=b"s")


def saved_files(
    tmp_path: Path,
    modules: Modules,
    run_id: bytes,
    architecture: Architecture,
    public_seed: bytes = bytes(32),
) -> list[str]:
    training = modules[0]
    profile = get_profile("wide")
    tmp_path.mkdir(parents=True, exist_ok=True)

    def program(ctx: Any) -> str:
        model = training.share_model(
            ctx, training.initial_weights(profile, architecture, public_seed), architecture
        )
        path = tmp_path / f"model-P{ctx.party}.mpshares"
        return str(training.save_model_shares(str(path), ctx, model, architecture, run_id))

    return run_parties(program, seed=b"f").outputs


@pytest.mark.parametrize("modules", [REFERENCE, FAST], ids=["refimpl", "fast"])
def test_model_files_round_trip(tmp_path: Path, modules: Modules) -> None:
    architecture = Architecture((6, 4, 3))
    run_id = bytes(range(16))
    paths = saved_files(tmp_path, modules, run_id, architecture)
    contents = [Path(path).read_bytes() for path in paths]
    other = saved_files(tmp_path / "..", REFERENCE if modules is FAST else FAST, run_id, architecture)
    assert contents == [Path(path).read_bytes() for path in other]

    def program(ctx: Any) -> list[list[int]]:
        model, found = modules[0].load_model_shares(paths[ctx.party], ctx, architecture, run_id)
        assert found == run_id.hex()
        return [
            [int(v) for v in np.asarray(modules[1].reveal(ctx, layer), dtype=object).reshape(-1)]
            for layer in model
        ]

    revealed = run_parties(program, seed=b"g").outputs[0]
    expected = refimpl.training.initial_weights(get_profile("wide"), architecture, bytes(32))
    assert revealed == expected


def test_model_files_refuse_every_mix_up(tmp_path: Path) -> None:
    architecture = Architecture((6, 4, 3))
    run_id = bytes(16)
    paths = saved_files(tmp_path, FAST, run_id, architecture)
    corrupt = tmp_path / "corrupt.mpshares"
    content = bytearray(Path(paths[0]).read_bytes())
    content[-1] ^= 1
    corrupt.write_bytes(bytes(content))
    truncated = tmp_path / "truncated.mpshares"
    truncated.write_bytes(bytes(content[:-5]))
    foreign = tmp_path / "foreign.mpshares"
    foreign.write_bytes(b"not a model\n")

    def attempt(
        path: str,
        architecture_used: Architecture,
        run: bytes | None,
        profile: str = "wide",
        others: list[str] = paths,
    ) -> str:
        def program(ctx: Any) -> None:
            chosen = path if ctx.party == 0 else others[ctx.party]
            fast.training.load_model_shares(chosen, ctx, architecture_used, run)

        try:
            run_parties(program, profile=profile, seed=b"h", timeout_seconds=20)
        except ModelFileError as error:
            return str(error)
        return "accepted"

    other_model = saved_files(
        tmp_path / "other", FAST, run_id, Architecture((6, 4, 3)), public_seed=bytes([7] * 32)
    )
    other_run = saved_files(tmp_path / "run", FAST, bytes([9] * 16), architecture)
    assert "digest" in attempt(str(corrupt), architecture, run_id)
    assert "payload" in attempt(str(truncated), architecture, run_id)
    assert "magic" in attempt(str(foreign), architecture, run_id)
    assert "party" in attempt(paths[1], architecture, run_id)
    assert "run_id" in attempt(paths[0], architecture, bytes([1] * 16))
    assert "architecture" in attempt(paths[0], Architecture((6, 5, 3)), run_id)
    assert "profile" in attempt(paths[0], architecture, run_id, profile="paper")
    assert "different models" in attempt(other_model[0], architecture, None)
    assert "run" in attempt(other_run[0], architecture, None)
    assert attempt(paths[0], architecture, run_id) == "accepted"
