"""§11.7 Secure gradient oracle: one mini-batch of Algorithm 1 among P0..P2, opened to P3.

refimpl == fast bit for bit (P3's outputs, every transcript, rounds) on tiny networks; the
fast secure gradients against the exact ones on the same decoded model, mask and pattern,
entrywise within the bound of spec §11.7 (:func:`conformance.bounds.oracle_bound`), the
mean loss too; and P3's view: P3 sends only its two deals and
receives only the three ``reveal-to`` messages, whose sum is exactly what it outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fast.detection
import fast.preprocessing
import fast.sharing
import fast.training
import refimpl.detection
import refimpl.preprocessing
import refimpl.sharing
import refimpl.training
from conformance.bounds import oracle_bound
from conformance.expect import raises_exactly
from fast.plaintext_detection import plaintext_oracle
from fast.ring import encode_fixed
from refimpl.detection import LOSS_SCALE
from refimpl.ring import ShapeError, get_profile
from refimpl.training import Architecture
from refimpl.transport import RunResult, run_parties

Modules = tuple[Any, Any, Any, Any]
REFERENCE: Modules = (refimpl.detection, refimpl.training, refimpl.sharing, refimpl.preprocessing)
FAST: Modules = (fast.detection, fast.training, fast.sharing, fast.preprocessing)

SIDE = 4
TINY = Architecture((SIDE * SIDE, 8, 3))
DEEPER = Architecture((SIDE * SIDE, 6, 5, 4))


def problem(seed: int, architecture: Architecture, batch: int) -> dict[str, Any]:
    """Float weights (uniform +-1/sqrt(n_in), biases +-0.1), pixels 0..255, mask and pattern."""
    rng = np.random.default_rng(seed)
    weights = []
    for rows, columns in architecture.weight_shapes:
        matrix = rng.uniform(-1.0, 1.0, (rows, columns)) / np.sqrt(rows - 1)
        matrix[-1] = rng.uniform(-0.1, 0.1, columns)
        weights.append(matrix)
    features = architecture.layers[0]
    return {
        "weights": weights,
        "images": rng.integers(0, 256, (batch, features)).astype(np.uint8),
        "mask": rng.uniform(0.0, 1.0, features),
        "pattern": rng.uniform(0.0, 255.0, features),
    }


def as_input(modules: Modules, values: np.ndarray) -> Any:
    if modules is FAST:
        return values
    return [int(value) for value in np.asarray(values).reshape(-1)]


def oracle_program(
    modules: Modules, profile_name: str, architecture: Architecture, data: dict[str, Any], target: int
) -> Callable[[Any], Any]:
    detection, training, sharing, preprocessing = modules
    profile = get_profile(profile_name)
    batch, features = data["images"].shape
    encoded_weights = [encode_fixed(profile, matrix).reshape(-1) for matrix in data["weights"]]
    x_values = encode_fixed(profile, data["images"] / 255.0)
    m_values = encode_fixed(profile, data["mask"])
    q_values = encode_fixed(profile, data["pattern"] / 255.0)

    def program(ctx: Any) -> Any:
        if ctx.party == 3:
            out = detection.secure_oracle_step(
                ctx, None, None, as_input(modules, m_values), as_input(modules, q_values), target, None
            )
            return (
                [int(v) for v in out.mask_gradient],
                [int(v) for v in out.pattern_gradient],
                out.successes,
                int(out.weighted_sum),
            )
        model = training.share_model(ctx, [as_input(modules, w) for w in encoded_weights], architecture)
        pool = preprocessing.generate_comparison_pool(
            ctx, profile, detection.comparisons_for_oracle_step(architecture, batch)
        )
        x = sharing.share_input(
            ctx, profile.ring, 0, as_input(modules, x_values) if ctx.party == 0 else None, (batch, features)
        )
        assert detection.secure_oracle_step(ctx, model, x, None, None, target, pool) is None
        assert pool.used == pool.material.count
        return None

    return program


def run(
    modules: Modules, profile: str, architecture: Architecture, data: dict[str, Any], target: int
) -> RunResult[Any]:
    return run_parties(
        oracle_program(modules, profile, architecture, data, target),
        parties=4,
        profile=profile,
        seed=b"oracle",
        keep_transcript=True,
    )


@pytest.mark.parametrize("profile", ["paper", "wide"])
@pytest.mark.parametrize("architecture", [TINY, DEEPER], ids=lambda a: a.describe())
def test_oracle_refimpl_equals_fast(profile: str, architecture: Architecture) -> None:
    data = problem(5, architecture, 2)
    reference = run(REFERENCE, profile, architecture, data, 1)
    vectorised = run(FAST, profile, architecture, data, 1)
    assert reference.outputs[3] == vectorised.outputs[3]
    assert [s.transcript_hash for s in reference.stats] == [s.transcript_hash for s in vectorised.stats]
    assert reference.rounds == vectorised.rounds


def decode(profile_name: str, values: list[int]) -> np.ndarray:
    profile = get_profile(profile_name)
    half, modulus = 1 << (profile.ring_bits - 1), 1 << profile.ring_bits
    signed = [value - modulus if value >= half else value for value in values]
    return np.array(signed, dtype=np.float64) / 2.0**profile.fractional_bits


def float_reference(profile_name: str, data: dict[str, Any], target: int) -> Any:
    """The float oracle on the decoded model, mask and pattern (what the servers hold)."""
    profile = get_profile(profile_name)
    scale = 2.0**profile.fractional_bits
    weights = [np.round(w * scale) / scale for w in data["weights"]]
    mask = np.round(data["mask"] * scale) / scale
    pattern = np.round(data["pattern"] / 255.0 * scale) / scale * 255.0
    batch = data["images"].shape[0]
    oracle = plaintext_oracle(weights, data["images"])
    return oracle(mask.reshape(SIDE, SIDE), pattern.reshape(SIDE, SIDE), np.arange(batch), target)


def decoded_problem(
    profile_name: str, data: dict[str, Any]
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """What the servers and P3 hold, decoded: weights, images X in [0, 1], mask m and q = pattern / 255."""
    scale = 2.0 ** get_profile(profile_name).fractional_bits
    weights = [np.round(w * scale) / scale for w in data["weights"]]
    images = np.round(data["images"] / 255.0 * scale) / scale
    mask = np.round(data["mask"] * scale) / scale
    q = np.round(data["pattern"] / 255.0 * scale) / scale
    return weights, images, mask, q


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("batch", [2, 8, 32])
def test_oracle_within_its_bound(seed: int, batch: int) -> None:
    """wide, fast: g_m, g_q and the mean loss within §11.7's bounds; successes exact."""
    architecture = TINY if seed % 2 else DEEPER
    data = problem(100 + seed, architecture, batch)
    target = seed % architecture.classes
    mask_gradient, pattern_gradient, successes, weighted_sum = run(
        FAST, "wide", architecture, data, target
    ).outputs[3]
    weights, images, mask, q = decoded_problem("wide", data)
    exact_m, bound_m, exact_q, bound_q, loss, loss_bound = oracle_bound(
        get_profile("wide"), weights, images, mask, q, target
    )
    assert np.all(np.abs(decode("wide", mask_gradient) - exact_m) <= bound_m)
    assert np.all(np.abs(decode("wide", pattern_gradient) - exact_q) <= bound_q)
    assert successes == float_reference("wide", data, target).successes
    assert abs(LOSS_SCALE - decode("wide", [weighted_sum])[0] / batch - loss) <= loss_bound


def test_p3_decodes_an_oracle_result() -> None:
    """fast.detection.oracle_result: P3's floats (raw-pixel pattern gradient, mean loss) as §11.4's."""
    data = problem(11, TINY, 8)
    result = run(FAST, "wide", TINY, data, 0)
    mask_gradient, pattern_gradient, successes, weighted_sum = result.outputs[3]
    output = fast.detection.SecureOracleOutput(
        np.array(mask_gradient, dtype=np.uint64),
        np.array(pattern_gradient, dtype=np.uint64),
        successes,
        weighted_sum,
    )
    decoded = fast.detection.oracle_result(get_profile("wide"), output, SIDE, 8)
    weights, images, mask, q = decoded_problem("wide", data)
    exact_m, bound_m, exact_q, bound_q, loss, loss_bound = oracle_bound(
        get_profile("wide"), weights, images, mask, q, 0
    )
    expected = float_reference("wide", data, 0)
    assert decoded.mask_gradient.shape == (SIDE, SIDE)
    assert np.all(np.abs(decoded.mask_gradient.reshape(-1) - exact_m) <= bound_m)
    assert np.all(np.abs(decoded.pattern_gradient.reshape(-1) * 255.0 - exact_q) <= bound_q)
    assert decoded.successes == expected.successes
    assert abs(decoded.mean_loss - loss) <= loss_bound


def test_p3_view_is_exactly_the_revealed_values() -> None:
    """P3 sends its two deals only and receives only reveal-to messages that sum to its outputs."""
    data = problem(7, TINY, 2)
    result = run(FAST, "wide", TINY, data, 2)
    ring = get_profile("wide").ring
    features = TINY.layers[0]
    sent_by_p3 = [step for _, step, _ in result.stats[3].transcript]
    assert sent_by_p3 and set(sent_by_p3) == {"deal"}
    to_p3 = [
        (step, payload)
        for sender in range(3)
        for to, step, payload in result.stats[sender].transcript
        if to == 3
    ]
    assert [step for step, _ in to_p3] == ["reveal-to"] * 3
    width = get_profile("wide").ring_bits // 8
    parts = [np.frombuffer(payload, dtype=f"<u{width}") for _, payload in to_p3]
    assert all(part.size == 2 * features + 2 for part in parts)
    total = (parts[0].astype(object) + parts[1] + parts[2]) % ring.modulus
    mask_gradient, pattern_gradient, successes, weighted_sum = result.outputs[3]
    assert [int(v) for v in total] == mask_gradient + pattern_gradient + [successes, weighted_sum]


def test_oracle_batch_must_be_a_power_of_two() -> None:
    """§11.7: the batch mean is a truncation by f + log2 B, so B = 3 is refused."""
    profile = get_profile("wide")
    assert refimpl.detection.oracle_batch_shift(profile, 32) == profile.fractional_bits + 5
    with raises_exactly(ShapeError):
        refimpl.detection.oracle_batch_shift(profile, 3)
    with raises_exactly(ShapeError):
        run(FAST, "wide", TINY, problem(1, TINY, 3), 0)


def test_material_count() -> None:
    """§11.7: hidden ReLUs + softmax rows x (2C - 1) + argmax rows x (C - 1)."""
    architecture = Architecture((784, 128, 128, 10))
    assert refimpl.detection.comparisons_for_oracle_step(architecture, 32) == 32 * 256 + 32 * 19 + 32 * 9
    assert fast.detection.comparisons_for_oracle_step is refimpl.detection.comparisons_for_oracle_step
