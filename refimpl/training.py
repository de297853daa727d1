"""§9 Secure training: the fully connected network, the softmax loss gradient and SGD.

The model is a list of augmented weight matrices W_i of shape (n_i + 1, n_{i+1}): the last
row is the bias, multiplied by a public column of ones appended to each layer's input.
Activations are fixed point with f fractional bits; ReLU derivatives are 0 or 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import BinaryIO

from refimpl.arithmetic import matmul_truncate, mul
from refimpl.comparison import comparisons_for_max, max_and_argmax, relu_and_derivative
from refimpl.nonlinear import comparisons_for_softmax, softmax
from refimpl.preprocessing import ComparisonPool
from refimpl.randomness import DOMAIN, prg_bytes
from refimpl.ring import Profile, ShapeError, Share
from refimpl.sharing import public_share, reveal, sub
from refimpl.transport import PartyContext

PUBLIC_SEED_BYTES = 32


class TrainingConfigError(ValueError):
    """§9.1 Network and parameters: an inconsistent architecture or training configuration."""


@dataclass(frozen=True)
class Architecture:
    """§9.1 Network and parameters: layer widths, input first; ReLU after every hidden layer."""

    layers: tuple[int, ...] = (784, 128, 128, 10)

    def __post_init__(self) -> None:
        if len(self.layers) < 2 or any(width < 1 for width in self.layers):
            raise TrainingConfigError(f"an architecture needs two or more positive widths, got {self.layers}")

    @property
    def classes(self) -> int:
        """§9.1 Network and parameters: the width of the output layer."""
        return self.layers[-1]

    @property
    def weight_shapes(self) -> list[tuple[int, int]]:
        """§9.1 Network and parameters: the augmented weight shapes (n_i + 1, n_{i+1})."""
        return [(inputs + 1, outputs) for inputs, outputs in zip(self.layers, self.layers[1:], strict=False)]

    def describe(self) -> str:
        """§9.1 Network and parameters: the widths joined by '-', for example '784-128-128-10'."""
        return "-".join(str(width) for width in self.layers)


@dataclass(frozen=True)
class TrainingConfig:
    """§9.1 Network and parameters: batch size 2^b, learning rate 2^-a, epochs and the public seed."""

    batch_size: int = 128
    learning_rate_log2: int = 2
    epochs: int = 15
    public_seed: bytes = bytes(PUBLIC_SEED_BYTES)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_size & (self.batch_size - 1):
            raise TrainingConfigError(f"the batch size must be a power of two, got {self.batch_size}")
        if not 0 <= self.learning_rate_log2 <= 16:
            raise TrainingConfigError(
                f"learning_rate_log2 must lie in [0, 16], got {self.learning_rate_log2}"
            )
        if self.epochs < 1:
            raise TrainingConfigError(f"at least one epoch is needed, got {self.epochs}")
        if len(self.public_seed) != PUBLIC_SEED_BYTES:
            raise TrainingConfigError(
                f"the public seed is {PUBLIC_SEED_BYTES} bytes, got {len(self.public_seed)}"
            )

    @property
    def learning_rate(self) -> float:
        """§9.1 Network and parameters: eta = 2^-a."""
        return 2.0**-self.learning_rate_log2

    def gradient_shift(self, profile: Profile) -> int:
        """§9.4 Backward pass and update: d = f + a + log2(B), the truncation of eta/B * A^T Delta."""
        return profile.fractional_bits + self.learning_rate_log2 + self.batch_size.bit_length() - 1


def public_key(seed: bytes, purpose: str) -> bytes:
    """§9.2 Public randomness: SHA-256(DOMAIN || "/public/" || purpose || seed), a 32-byte PRG key."""
    return hashlib.sha256(DOMAIN + b"/public/" + purpose.encode("ascii") + seed).digest()


def public_words(seed: bytes, purpose: str, counter: int, count: int) -> list[int]:
    """§9.2 Public randomness: ``count`` little-endian 64-bit words of the public stream."""
    data = prg_bytes(public_key(seed, purpose), counter, purpose, 8 * count)
    return [int.from_bytes(data[8 * index : 8 * index + 8], "little") for index in range(count)]


def initial_weights(profile: Profile, architecture: Architecture, seed: bytes) -> list[list[int]]:
    """§9.2 Public randomness: the public initial model, in ring units, one flat list per layer.

    Weight rows: w = floor(u * (2c + 1) / 2^64) - c with u a public word and
    c = floor(2^f / sqrt(n_in)) (uniform on [-1/sqrt(n_in), 1/sqrt(n_in)]); bias rows are 0.
    """
    modulus = profile.ring.modulus
    layers = []
    for layer, (rows, columns) in enumerate(architecture.weight_shapes):
        bound = weight_bound(profile, rows - 1)
        words = public_words(seed, "init", layer, (rows - 1) * columns)
        weights = [(word * (2 * bound + 1) >> 64) - bound for word in words]
        layers.append([weight % modulus for weight in weights] + [0] * columns)
    return layers


def weight_bound(profile: Profile, inputs: int) -> int:
    """§9.2 Public randomness: c = floor(2^f / sqrt(n_in)), computed exactly with integers."""
    scale = 1 << profile.fractional_bits
    return math.isqrt(scale * scale // inputs)


def epoch_order(config: TrainingConfig, epoch: int, count: int) -> list[list[int]]:
    """§9.2 Public randomness: the public batches of one epoch (floor(count / B) of them).

    Record j gets the public tag t_j (word j of counter ``epoch``); records are sorted by
    (t_j, j) and cut into batches of B; the last count mod B records of the order are skipped.
    """
    tags = public_words(config.public_seed, "shuffle", epoch, count)
    order = sorted(range(count), key=lambda record: (tags[record], record))
    size = config.batch_size
    return [order[start : start + size] for start in range(0, count - size + 1, size)]


def share_model(ctx: PartyContext, weights: list[list[int]], architecture: Architecture) -> list[Share]:
    """§9.2 Public randomness: the public initial model as sharings (c, 0, 0), without communication."""
    return [
        public_share(ctx, ctx.ring, values, shape)
        for values, shape in zip(weights, architecture.weight_shapes, strict=True)
    ]


def with_ones(ctx: PartyContext, x: Share) -> Share:
    """§9.3 Forward pass: [x | 1], the public column 2^f appended to every row."""
    rows, columns = x.shape
    one = public_share(ctx, x.ring, [1 << ctx.profile.fractional_bits] * rows, (rows, 1))
    first, second = [], []
    for row in range(rows):
        span = slice(row * columns, (row + 1) * columns)
        first += x.first[span] + [one.first[row]]
        second += x.second[span] + [one.second[row]]
    return Share(x.ring, (rows, columns + 1), first, second)


def transposed(x: Share) -> Share:
    """§9.4 Backward pass and update: the transpose of a matrix sharing, locally."""
    rows, columns = x.shape
    order = [row * columns + column for column in range(columns) for row in range(rows)]
    return Share(x.ring, (columns, rows), [x.first[i] for i in order], [x.second[i] for i in order])


def without_bias_row(weights: Share) -> Share:
    """§9.4 Backward pass and update: the weight rows of an augmented matrix (the bias row dropped)."""
    rows, columns = weights.shape
    kept = (rows - 1) * columns
    return Share(weights.ring, (rows - 1, columns), weights.first[:kept], weights.second[:kept])


@dataclass(frozen=True)
class ForwardPass:
    """§9.3 Forward pass: the augmented inputs of every layer, the ReLU derivatives and the logits."""

    inputs: list[Share]
    derivatives: list[Share]
    logits: Share


def comparisons_for_forward(architecture: Architecture, rows: int) -> int:
    """§9.3 Forward pass: material for the hidden ReLUs of ``rows`` records."""
    return rows * sum(architecture.layers[1:-1])


def comparisons_for_training_step(architecture: Architecture, batch_size: int) -> int:
    """§9.5 Training step: the ReLUs plus the softmax of one batch (material per iteration)."""
    softmax_material = comparisons_for_softmax((batch_size, architecture.classes))
    return comparisons_for_forward(architecture, batch_size) + softmax_material


def comparisons_for_evaluation(architecture: Architecture, rows: int) -> int:
    """§9.6 Secure evaluation: the ReLUs plus the argmax of ``rows`` records."""
    return comparisons_for_forward(architecture, rows) + comparisons_for_max((rows, architecture.classes))


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
    """§9.4 Backward pass and update: G_i = [A_i | 1]^T Delta_i / 2^d, last layer first.

    Delta_{i-1} = ((Delta_i W_i'^T) / 2^f) * D_{i-1} with W_i' the weight rows of W_i.
    Returns the scaled gradients in layer order.
    """
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
    """§9.6 Secure evaluation: how many records the model classifies as their one-hot label.

    The argmax one-hot (0/1) times the labels (0 or 2^f) summed over everything is opened;
    only this count is revealed.
    """
    check_batch(model, x, labels)
    logits = forward(ctx, model, x, pool).logits
    onehot = max_and_argmax(ctx, logits, pool)[1]
    assert onehot is not None
    hits = mul(ctx, onehot, labels)
    total = sum_all(hits)
    opened = reveal(ctx, total)[0]
    return opened >> ctx.profile.fractional_bits


def sum_all(x: Share) -> Share:
    """§9.6 Secure evaluation: the sum of every element, a sharing of shape (1,)."""
    modulus = x.ring.modulus
    return Share(x.ring, (1,), [sum(x.first) % modulus], [sum(x.second) % modulus])


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


MODEL_MAGIC = b"MP-BADNET model shares\n"
MODEL_FORMAT_VERSION = 1
RUN_ID_BYTES = 16
MAX_MODEL_HEADER_BYTES = 1 << 16
"""The longest header line a reader accepts."""
MAX_MODEL_PAYLOAD_BYTES = 1 << 30
"""The largest payload a reader accepts (a default model needs 1,892,512 bytes)."""


class ModelFileError(ValueError):
    """§9.7 Model share files: a file that is malformed or does not belong to this run, party or model."""


def component_bytes(ring_bits: int, values: list[int]) -> bytes:
    """§9.7 Model share files: one component of one layer, little-endian, l/8 bytes per element."""
    width = ring_bits // 8
    return b"".join(value.to_bytes(width, "little") for value in values)


def check_run_id(run_id: bytes) -> None:
    """§9.7 Model share files: a run id is 16 bytes."""
    if len(run_id) != RUN_ID_BYTES:
        raise ModelFileError(f"a run id is {RUN_ID_BYTES} bytes, got {len(run_id)}")


def header_fields(
    ctx: PartyContext, architecture: Architecture, run_id: bytes, first: bytes, second: bytes
) -> dict[str, object]:
    """§9.7 Model share files: party, components, profile, architecture, run and digests."""
    profile = ctx.profile
    return {
        "version": MODEL_FORMAT_VERSION,
        "party": ctx.party,
        "components": [ctx.party, (ctx.party + 1) % 3],
        "profile": {
            "name": profile.name,
            "ring_bits": profile.ring_bits,
            "fractional_bits": profile.fractional_bits,
            "prime": profile.prime,
            "comparison_bits": profile.comparison_bits,
        },
        "architecture": list(architecture.layers),
        "run_id": run_id.hex(),
        "digests": [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()],
        "payload_bytes": len(first) + len(second),
    }


def encode_model_file(header: dict[str, object], first: bytes, second: bytes) -> bytes:
    """§9.7 Model share files: MAGIC, one line of canonical JSON, then both components."""
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
    return MODEL_MAGIC + line + first + second


def write_atomically(path: str, content: bytes) -> str:
    """§9.7 Model share files: write to a temporary file in the same folder, then rename."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


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


def read_model_file(path: str) -> tuple[dict[str, object], bytes, bytes]:
    """§9.7 Model share files: the header and both payload halves, with the format checked.

    Reads the header line (at most ``MAX_MODEL_HEADER_BYTES``), then refuses a file whose size
    is not exactly what the header says before reading its payload; never reads more than
    the header says plus one byte.
    """
    with open(path, "rb") as handle:
        header, offset = read_model_header(path, handle)
        declared = declared_payload_bytes(path, header)
        size = os.fstat(handle.fileno()).st_size
        if size != offset + declared:
            raise ModelFileError(
                f"{path}: the file is {size} bytes, its header line and payload_bytes say {offset + declared}"
            )
        payload = handle.read(declared + 1)
    if len(payload) != declared:
        raise ModelFileError(f"{path}: payload is {len(payload)} bytes, header says {declared}")
    half = len(payload) // 2
    first, second = payload[:half], payload[half:]
    if [hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()] != header.get("digests"):
        raise ModelFileError(f"{path}: payload digest mismatch (corrupt or altered file)")
    return header, first, second


def read_model_header(path: str, handle: BinaryIO) -> tuple[dict[str, object], int]:
    """§9.7 Model share files: the magic and the header line; returns the header and the payload offset."""
    start = handle.read(len(MODEL_MAGIC) + MAX_MODEL_HEADER_BYTES + 1)
    if not start.startswith(MODEL_MAGIC):
        raise ModelFileError(f"{path}: not an MP-BADNET model share file (bad magic)")
    end = start.find(b"\n", len(MODEL_MAGIC))
    if end < 0:
        raise ModelFileError(f"{path}: no header line within {MAX_MODEL_HEADER_BYTES} bytes")
    try:
        header = json.loads(start[len(MODEL_MAGIC) : end])
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ModelFileError(f"{path}: unreadable header: {error}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object")
    if header.get("version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format version {header.get('version')!r}")
    run = header.get("run_id")
    if (
        not isinstance(run, str)
        or len(run) != 2 * RUN_ID_BYTES
        or any(c not in "0123456789abcdef" for c in run)
    ):
        raise ModelFileError(f"{path}: the run id {run!r} is not {RUN_ID_BYTES} bytes of lower-case hex")
    handle.seek(end + 1)
    return header, end + 1


def declared_payload_bytes(path: str, header: dict[str, object]) -> int:
    """§9.7 Model share files: the header's ``payload_bytes``, an even integer of at most the limit."""
    declared = header.get("payload_bytes")
    if type(declared) is not int or not 0 <= declared <= MAX_MODEL_PAYLOAD_BYTES or declared % 2:
        raise ModelFileError(
            f"{path}: payload_bytes {declared!r} is not an even byte count "
            f"of at most {MAX_MODEL_PAYLOAD_BYTES}"
        )
    return declared


def model_payload_bytes(ring_bits: int, architecture: Architecture) -> int:
    """§9.7 Model share files: the payload length the architecture needs, two components of every layer."""
    return 2 * component_length(ring_bits, architecture)


def component_length(ring_bits: int, architecture: Architecture) -> int:
    """§9.7 Model share files: the bytes of one component of every layer."""
    return sum(rows * columns for rows, columns in architecture.weight_shapes) * (ring_bits // 8)


def check_payload_length(path: str, ring_bits: int, payload: int, architecture: Architecture) -> None:
    """§9.7 Model share files: the payload must be exactly what the architecture needs."""
    needed = model_payload_bytes(ring_bits, architecture)
    if payload != needed:
        raise ModelFileError(
            f"{path}: payload is {payload} bytes, the {architecture.describe()} model needs {needed} "
            f"at {ring_bits} bits per element"
        )


def check_model_header(
    path: str, header: dict[str, object], ctx: PartyContext, architecture: Architecture, run_id: bytes | None
) -> None:
    """§9.7 Model share files: the file must be this party's, for this profile, model and run."""
    expected = header_fields(ctx, architecture, run_id or bytes.fromhex(str(header.get("run_id"))), b"", b"")
    for key in ("party", "components", "profile", "architecture", "run_id"):
        if header.get(key) != expected[key]:
            raise ModelFileError(f"{path}: {key} is {header.get(key)!r}, expected {expected[key]!r}")


def split_component(ring_bits: int, data: bytes, architecture: Architecture) -> list[list[int]]:
    """§9.7 Model share files: one component's bytes back into one list per layer.

    Raises ModelFileError unless ``data`` is exactly one component of ``architecture``.
    """
    check_payload_length("a model component", ring_bits, 2 * len(data), architecture)
    width = ring_bits // 8
    layers, offset = [], 0
    for rows, columns in architecture.weight_shapes:
        count = rows * columns
        chunk = data[offset : offset + count * width]
        layers.append([int.from_bytes(chunk[i * width : (i + 1) * width], "little") for i in range(count)])
        offset += count * width
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


def check_model_consistency(ctx: PartyContext, path: str, header: dict[str, object]) -> None:
    """§9.7 Model share files: P_i sends (run id, digest of its second component) to P_{i+1}.

    Component i+1 is P_{i+1}'s first component, so P_{i+1} compares the message with its own
    header; any difference means the three files are not the three parts of one model. The
    message reveals nothing P_{i+1} does not hold already.
    """
    digests = header["digests"]
    assert isinstance(digests, list)
    run = bytes.fromhex(str(header["run_id"]))
    ctx.send((ctx.party + 1) % 3, "model-check", run + bytes.fromhex(digests[1]))
    received = ctx.recv((ctx.party + 2) % 3, "model-check", len(run) + 32)
    if received[: len(run)] != run:
        raise ModelFileError(
            f"{path}: P{(ctx.party + 2) % 3} loaded shares of run {received[: len(run)].hex()}, "
            f"this file is of run {run.hex()}"
        )
    if received[len(run) :] != bytes.fromhex(digests[0]):
        raise ModelFileError(
            f"{path}: component {ctx.party} differs from P{(ctx.party + 2) % 3}'s copy "
            "(files of different models)"
        )
