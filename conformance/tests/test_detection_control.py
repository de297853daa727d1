"""§11.8: the servers accept from P3 only the control messages the public schedule allows.

P3 chooses nothing the servers cannot check: the candidate labels are the job's, in order,
each once; within a label the positions are those of its public mini-batch order
(:func:`fast.detection.label_start`), in whole steps, at most ``max_steps`` of them. The
reviewer's attack (positions ``[i] * 32`` with a mask of ones, which makes one oracle call
return test image i) and every other deviation is refused, and a run with a deviating P3
aborts every party with an error that names P3 and the step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.expect import raises_exactly
from fast.detection import DetectionSettings, label_start
from fast.detection_job import CONTROL_STEP, STOP, ControlCheck, DetectJob, detection_program, encode_control
from fast.training import initial_weights, save_model_shares, share_model
from refimpl.detection import ORACLE_HOLDER
from refimpl.training import Architecture
from refimpl.transport import COMPUTING_PARTIES, PartyContext, WireFormatError, run_parties

SETTINGS = DetectionSettings(batch_size=4, batches_per_step=2, max_steps=3)
IMAGES = 20
LABELS = [6, 0]


def _order(label: int, count: int) -> list[np.ndarray]:
    order = label_start(SETTINGS, label, IMAGES)[2]
    return [order.next_batch() for _ in range(count)]


def _honest(check: ControlCheck, label: int, count: int) -> None:
    for batch in _order(label, count):
        check.accept(label, batch)


def _refused(check: ControlCheck, target: int, batch: np.ndarray, match: str) -> None:
    with raises_exactly(WireFormatError, match=match) as raised:
        check.accept(target, batch)
    assert type(raised.value) is WireFormatError
    assert "P3's control message" in str(raised.value) and CONTROL_STEP in str(raised.value)


def test_the_honest_schedule_is_accepted() -> None:
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _honest(check, 6, 6)
    _honest(check, 0, 2)
    check.accept(STOP, np.zeros(SETTINGS.batch_size, dtype=np.int64))


def test_repeated_positions_are_refused() -> None:
    """The reviewer's attack: one image repeated over the whole mini-batch."""
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _refused(check, 6, np.full(SETTINGS.batch_size, 3, dtype=np.int64), "positions differ")


def test_positions_out_of_order_are_refused() -> None:
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    first, second = _order(6, 2)
    _refused(check, 6, second, "positions differ")
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    check.accept(6, first)
    _refused(check, 6, first, "positions differ")
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _refused(check, 6, first[::-1].copy(), "positions differ")


def test_labels_out_of_order_or_repeated_are_refused() -> None:
    _refused(ControlCheck(SETTINGS, LABELS, IMAGES), 0, _order(0, 1)[0], "label 0 where 6")
    _refused(ControlCheck(SETTINGS, LABELS, IMAGES), 3, _order(3, 1)[0], "label 3 where 6")
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _honest(check, 6, 2)
    _honest(check, 0, 2)
    _refused(check, 6, _order(6, 1)[0], "label 6 where stop")


def test_too_many_mini_batches_are_refused() -> None:
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    limit = SETTINGS.max_steps * SETTINGS.batches_per_step
    batches = _order(6, limit + 1)
    for batch in batches[:limit]:
        check.accept(6, batch)
    _refused(check, 6, batches[limit], f"more than {limit} mini-batches")


def test_partial_steps_and_early_stops_are_refused() -> None:
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _honest(check, 6, 3)
    _refused(check, 0, _order(0, 1)[0], "not whole steps")
    check = ControlCheck(SETTINGS, LABELS, IMAGES)
    _honest(check, 6, 2)
    _refused(check, STOP, np.zeros(SETTINGS.batch_size, dtype=np.int64), r"stop before the labels \[0\]")


def _tiny_model(directory: Path, architecture: Architecture) -> None:
    """Model-share files of the public initial model of ``architecture`` (§9.2), written by P0..P2."""
    run_id = bytes(range(16))

    def program(ctx: PartyContext) -> None:
        weights = initial_weights(ctx.profile, architecture, b"tiny")
        model = share_model(ctx, weights, architecture)
        save_model_shares(str(directory / f"model-P{ctx.party}.mpshares"), ctx, model, architecture, run_id)

    run_parties(program, profile="wide", seed=b"tiny-model")


def test_a_deviating_p3_aborts_every_party(tmp_path: Path) -> None:
    """P3 sends the repeated-image mini-batch: every party stops with the servers' refusal."""
    architecture = Architecture((784, 4, 10))
    _tiny_model(tmp_path, architecture)
    job = DetectJob(str(tmp_path), settings=SETTINGS, labels=tuple(LABELS), quiet=True, figures=False)
    images = np.random.default_rng(0).integers(0, 256, (IMAGES, 784), dtype=np.uint8)
    honest = detection_program(job, architecture, images.shape, LABELS, lambda: images)

    def program(ctx: PartyContext) -> object:
        if ctx.party != ORACLE_HOLDER:
            return honest(ctx)
        attack = encode_control(6, np.full(SETTINGS.batch_size, 3, dtype=np.int64))
        for server in range(COMPUTING_PARTIES):
            ctx.send(server, CONTROL_STEP, attack)
        ctx.recv(0, "never-sent", 1)
        return None

    with raises_exactly(
        WireFormatError, match="P3's control message at step 'detect-control' refused"
    ) as raised:
        run_parties(program, parties=ORACLE_HOLDER + 2, profile="wide", seed=b"attack", timeout_seconds=60)
    assert type(raised.value) is WireFormatError
