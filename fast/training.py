"""§9 Secure training, vectorised: the same steps as :mod:`refimpl.training` over numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fast.arithmetic import matmul_truncate, mul
from fast.comparison import max_and_argmax, relu_and_derivative
from fast.nonlinear import softmax
from fast.preprocessing import ComparisonPool
from fast.randomness import prg_bytes
from fast.ring import Array, Share, dtype_of
from fast.sharing import public_share, reveal, sub
from refimpl.ring import Profile, ShapeError
from refimpl.training import (
    MAX_MODEL_HEADER_BYTES,
    MAX_MODEL_PAYLOAD_BYTES,
    MODEL_FORMAT_VERSION,
    MODEL_MAGIC,
    PUBLIC_SEED_BYTES,
    RUN_ID_BYTES,
    Architecture,
    ModelFileError,
    TrainingConfig,
    TrainingConfigError,
    check_model_consistency,
    check_model_header,
    check_payload_length,
    check_run_id,
    comparisons_for_evaluation,
    comparisons_for_forward,
    comparisons_for_training_step,
    component_length,
    declared_payload_bytes,
    encode_model_file,
    header_fields,
    model_payload_bytes,
    public_key,
    read_model_file,
    read_model_header,
    weight_bound,
    write_atomically,
)
from refimpl.transport import PartyContext

__all__ = [
    "MAX_MODEL_HEADER_BYTES",
    "MAX_MODEL_PAYLOAD_BYTES",
    "MODEL_FORMAT_VERSION",
    "MODEL_MAGIC",
    "PUBLIC_SEED_BYTES",
    "RUN_ID_BYTES",
    "Architecture",
    "ForwardPass",
    "ModelFileError",
    "TrainingConfig",
    "TrainingConfigError",
    "backward",
    "check_batch",
    "check_model_consistency",
    "check_model_header",
    "check_payload_length",
    "check_run_id",
    "comparisons_for_evaluation",
    "comparisons_for_forward",
    "comparisons_for_training_step",
    "component_bytes",
    "component_length",
    "correct_count",
    "declared_payload_bytes",
    "encode_model_file",
    "epoch_order",
    "forward",
    "header_fields",
    "initial_weights",
    "load_model_shares",
    "loss_gradient",
    "model_payload_bytes",
    "public_key",
    "public_words",
    "read_model_file",
    "read_model_header",
    "save_model_shares",
    "share_model",
    "split_component",
    "sum_all",
    "train_step",
    "transposed",
    "weight_bound",
    "with_ones",
    "without_bias_row",
    "write_atomically",
]


@dataclass(frozen=True)
class ForwardPass:
    """§9.3 Forward pass: the augmented inputs of every layer, the ReLU derivatives and the logits."""

    inputs: list[Share]
    derivatives: list[Share]
    logits: Share


def public_words(seed: bytes, purpose: str, counter: int, count: int) -> Array:
    """§9.2 Public randomness: ``count`` little-endian 64-bit words of the public stream."""
    data = prg_bytes(public_key(seed, purpose), counter, purpose, 8 * count)
    return np.frombuffer(data, dtype="<u8", count=count).astype(np.uint64)


def initial_weights(profile: Profile, architecture: Architecture, seed: bytes) -> list[Array]:
    """§9.2 Public randomness: the public initial model, in ring units, one flat array per layer."""
    layers = []
    for layer, (rows, columns) in enumerate(architecture.weight_shapes):
        bound = weight_bound(profile, rows - 1)
        words = public_words(seed, "init", layer, (rows - 1) * columns)
        high, low = words >> np.uint64(32), words & np.uint64(0xFFFFFFFF)
        span = 2 * bound + 1
        # floor(u * span / 2^64) from the 32-bit halves of u, exactly (span < 2^31).
        scaled = (high * np.uint64(span) + ((low * np.uint64(span)) >> np.uint64(32))) >> np.uint64(32)
        weights = scaled.astype(np.int64) - bound
        bias = np.zeros(columns, dtype=np.int64)
        layers.append(np.concatenate([weights, bias]).astype(dtype_of(profile.ring)))
    return layers


def epoch_order(config: TrainingConfig, epoch: int, count: int) -> list[list[int]]:
    """§9.2 Public randomness: the public batches of one epoch (floor(count / B) of them)."""
    tags = public_words(config.public_seed, "shuffle", epoch, count)
    order = np.lexsort((np.arange(count), tags))
    size = config.batch_size
    return [order[start : start + size].tolist() for start in range(0, count - size + 1, size)]


def share_model(ctx: PartyContext, weights: list[Array], architecture: Architecture) -> list[Share]:
    """§9.2 Public randomness: the public initial model as sharings (c, 0, 0), without communication."""
    return [
        public_share(ctx, ctx.ring, values, shape)
        for values, shape in zip(weights, architecture.weight_shapes, strict=True)
    ]


def with_ones(ctx: PartyContext, x: Share) -> Share:
    """§9.3 Forward pass: [x | 1], the public column 2^f appended to every row."""
    rows, columns = x.shape
    one = public_share(ctx, x.ring, 1 << ctx.profile.fractional_bits, (rows, 1))
    first = np.concatenate([x.first.reshape(rows, columns), one.first], axis=1)
    second = np.concatenate([x.second.reshape(rows, columns), one.second], axis=1)
    return Share(x.ring, (rows, columns + 1), first, second)


def transposed(x: Share) -> Share:
    """§9.4 Backward pass and update: the transpose of a matrix sharing, locally."""
    rows, columns = x.shape
    return Share(x.ring, (columns, rows), x.first.reshape(rows, columns).T, x.second.reshape(rows, columns).T)


def without_bias_row(weights: Share) -> Share:
    """§9.4 Backward pass and update: the weight rows of an augmented matrix (the bias row dropped)."""
    rows, columns = weights.shape
    first = weights.first.reshape(rows, columns)[:-1]
    second = weights.second.reshape(rows, columns)[:-1]
    return Share(weights.ring, (rows - 1, columns), first, second)


def forward(ctx: PartyContext, model: list[Share], x: Share, pool: ComparisonPool) -> ForwardPass:
    """§9.3 Forward pass: Z_i = [A_i | 1] W_i / 2^f; A_{i+1} = ReLU(Z_i) except after the last layer."""
    fractional = ctx.profile.fractional_bits
    inputs: list[Share] = []
    derivatives: list[Share] = []
    activation = x
    for layer, weights in enumerate(model):
        augmented = with_ones(ctx, activation)
        inputs.append(augmented)
        product = matmul_truncate(ctx, augmented, weights, fractional)
        if layer == len(model) - 1:
            return ForwardPass(inputs, derivatives, product)
        activation, derivative = relu_and_derivative(ctx, product, pool)
        derivatives.append(derivative)
    raise ShapeError("a model needs at least one layer")


def loss_gradient(ctx: PartyContext, logits: Share, labels: Share, pool: ComparisonPool) -> Share:
    """§9.4 Backward pass and update: Delta = softmax(Z) - Y, the cross-entropy gradient times B."""
    return sub(softmax(ctx, logits, pool), labels)


def backward(
    ctx: PartyContext, model: list[Share], passed: ForwardPass, delta: Share, shift: int
) -> list[Share]:
    """§9.4 Backward pass and update: G_i = [A_i | 1]^T Delta_i / 2^d, last layer first."""
    fractional = ctx.profile.fractional_bits
    gradients: list[Share] = []
    for layer in range(len(model) - 1, -1, -1):
        gradients.insert(0, matmul_truncate(ctx, transposed(passed.inputs[layer]), delta, shift))
        if layer > 0:
            back = transposed(without_bias_row(model[layer]))
            propagated = matmul_truncate(ctx, delta, back, fractional)
            delta = mul(ctx, propagated, passed.derivatives[layer - 1])
    return gradients


def train_step(
    ctx: PartyContext,
    model: list[Share],
    x: Share,
    labels: Share,
    pool: ComparisonPool,
    config: TrainingConfig,
) -> list[Share]:
    """§9.5 Training step: forward, loss gradient, backward, then W_i - G_i for every layer."""
    check_batch(model, x, labels)
    passed = forward(ctx, model, x, pool)
    delta = loss_gradient(ctx, passed.logits, labels, pool)
    gradients = backward(ctx, model, passed, delta, config.gradient_shift(ctx.profile))
    return [sub(weights, gradient) for weights, gradient in zip(model, gradients, strict=True)]


def correct_count(
    ctx: PartyContext, model: list[Share], x: Share, labels: Share, pool: ComparisonPool
) -> int:
    """§9.6 Secure evaluation: how many records the model classifies as their one-hot label."""
    check_batch(model, x, labels)
    logits = forward(ctx, model, x, pool).logits
    onehot = max_and_argmax(ctx, logits, pool)[1]
    assert onehot is not None
    total = sum_all(mul(ctx, onehot, labels))
    opened = int(reveal(ctx, total)[0])
    return opened >> ctx.profile.fractional_bits


def sum_all(x: Share) -> Share:
    """§9.6 Secure evaluation: the sum of every element, a sharing of shape (1,)."""
    dtype = dtype_of(x.ring)
    return Share(x.ring, (1,), x.first.sum(dtype=dtype).reshape(1), x.second.sum(dtype=dtype).reshape(1))


def check_batch(model: list[Share], x: Share, labels: Share) -> None:
    """§9.5 Training step: records have n_0 features and one-hot labels of n_L classes."""
    if not model:
        raise ShapeError("a model needs at least one layer")
    features, classes = model[0].shape[0] - 1, model[-1].shape[1]
    rows = x.shape[0] if x.shape else 0
    if rows == 0 or x.shape != (rows, features) or labels.shape != (rows, classes):
        raise ShapeError(
            f"records {x.shape} and labels {labels.shape} do not fit a model of {features} inputs "
            f"and {classes} classes"
        )


def component_bytes(ring_bits: int, values: Array) -> bytes:
    """§9.7 Model share files: one component of one layer, little-endian, l/8 bytes per element."""
    return np.ascontiguousarray(values, dtype=np.dtype(f"<u{ring_bits // 8}")).tobytes()


def save_model_shares(
    path: str, ctx: PartyContext, model: list[Share], architecture: Architecture, run_id: bytes
) -> str:
    """§9.7 Model share files: write P_i's two components of every layer, atomically; returns the path."""
    check_run_id(run_id)
    bits = ctx.profile.ring_bits
    first = b"".join(component_bytes(bits, layer.first) for layer in model)
    second = b"".join(component_bytes(bits, layer.second) for layer in model)
    header = header_fields(ctx, architecture, run_id, first, second)
    return write_atomically(path, encode_model_file(header, first, second))


def split_component(ring_bits: int, data: bytes, architecture: Architecture) -> list[Array]:
    """§9.7 Model share files: one component's bytes back into one array per layer.

    Raises ModelFileError unless ``data`` is exactly one component of ``architecture``.
    """
    check_payload_length("a model component", ring_bits, 2 * len(data), architecture)
    values = np.frombuffer(data, dtype=np.dtype(f"<u{ring_bits // 8}")).astype(np.dtype(f"u{ring_bits // 8}"))
    layers, offset = [], 0
    for rows, columns in architecture.weight_shapes:
        layers.append(values[offset : offset + rows * columns].reshape(rows, columns))
        offset += rows * columns
    return layers


def load_model_shares(
    path: str, ctx: PartyContext, architecture: Architecture, run_id: bytes | None = None
) -> tuple[list[Share], str]:
    """§9.7 Model share files: P_i's model from its file, every field checked; returns it and the run id."""
    header, first, second = read_model_file(path)
    check_model_header(path, header, ctx, architecture, run_id)
    check_payload_length(path, ctx.profile.ring_bits, len(first) + len(second), architecture)
    check_model_consistency(ctx, path, header)
    bits = ctx.profile.ring_bits
    firsts, seconds = split_component(bits, first, architecture), split_component(bits, second, architecture)
    model = [
        Share(ctx.ring, shape, a, b)
        for shape, a, b in zip(architecture.weight_shapes, firsts, seconds, strict=True)
    ]
    return model, str(header["run_id"])
