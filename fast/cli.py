"""The ``mpbadnet`` command.

``mpbadnet demo`` runs a short demonstration of secure arithmetic: a data holder
secret-shares fixed-point matrices to P0, P1 and P2, which multiply them (elementwise and as
matrices, with truncation) and reveal the results; it prints what was computed, the error
against float64, and what it cost per party.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fast import arithmetic, sharing
from fast.ring import decode_fixed, encode_fixed, get_profile
from fast.tuning import keep_freed_memory
from refimpl.ring import PROFILES, Profile
from refimpl.transport import PartyContext, run_parties

DATA_HOLDER = 3
Matrix = NDArray[np.float64]


@dataclass
class DemoOutcome:
    """What one computing party revealed, what the secure part cost it, and how long it took."""

    elementwise: Matrix
    product: Matrix
    seconds: float
    bytes_sent: int
    rounds: int


def demo_inputs(rows: int, inner: int, columns: int, seed: int) -> tuple[Matrix, Matrix, Matrix]:
    """The data holder's plain inputs: values uniform in [-2, 2)."""
    generator = np.random.default_rng(seed)
    left = generator.uniform(-2.0, 2.0, (rows, inner))
    other = generator.uniform(-2.0, 2.0, (rows, inner))
    right = generator.uniform(-2.0, 2.0, (inner, columns))
    return left, other, right


def demo_program(
    profile: Profile, inputs: tuple[Matrix, Matrix, Matrix]
) -> Callable[[PartyContext], DemoOutcome | None]:
    """The SPMD program: the data holder deals; P0..P2 multiply and reveal."""
    ring = profile.ring
    shapes = [tuple(array.shape) for array in inputs]

    def program(ctx: PartyContext) -> DemoOutcome | None:
        if ctx.party == DATA_HOLDER:
            for array, shape in zip(inputs, shapes, strict=True):
                sharing.deal_input(ctx, ring, encode_fixed(profile, array), shape)
            ctx.barrier()
            return None
        left, other, right = (sharing.receive_input(ctx, ring, DATA_HOLDER, shape) for shape in shapes)
        ctx.barrier()
        sent_before, rounds_before = ctx.stats.bytes_sent, ctx.stats.rounds
        start = time.perf_counter()
        elementwise = arithmetic.mul_truncate(ctx, left, other, profile.fractional_bits)
        product = arithmetic.matmul_truncate(ctx, left, right, profile.fractional_bits)
        opened = [decode_fixed(profile, sharing.reveal(ctx, share)) for share in (elementwise, product)]
        seconds = time.perf_counter() - start
        return DemoOutcome(
            opened[0],
            opened[1],
            seconds,
            ctx.stats.bytes_sent - sent_before,
            ctx.stats.rounds - rounds_before,
        )

    return program


def run_demo(profile_name: str, rows: int, inner: int, columns: int, seed: int | None) -> int:
    """Run the demonstration and print its results; 0 when the errors are within the bound."""
    keep_freed_memory()
    profile = get_profile(profile_name)
    inputs = demo_inputs(rows, inner, columns, 0 if seed is None else seed)
    key_seed = None if seed is None else seed.to_bytes(8, "little")
    result = run_parties(demo_program(profile, inputs), parties=4, profile=profile, seed=key_seed)
    outcomes = [outcome for outcome in result.outputs if outcome is not None]
    left, other, right = inputs
    checks = [
        (
            "X * X' (elementwise)",
            outcomes[0].elementwise,
            left * other,
            1,
            float(np.max(np.abs(left)) + np.max(np.abs(other))),
        ),
        (
            "X @ Y (matrix product)",
            outcomes[0].product,
            left @ right,
            inner,
            float(np.max(np.abs(left)) + np.max(np.abs(right))),
        ),
    ]
    print(
        f"MP-BADNet secure arithmetic demo, profile {profile.name} "
        f"(l = {profile.ring_bits}, f = {profile.fractional_bits}); keys: "
        f"{'from the OS' if seed is None else f'pinned by seed {seed}'}"
    )
    print(
        f"a data holder shared X ({rows}x{inner}), X' ({rows}x{inner}) and Y ({inner}x{columns})"
        " with P0, P1, P2"
    )
    plausible = True
    for name, secure, exact, terms, magnitude in checks:
        bound = product_error_bound(profile, terms, magnitude)
        error = np.abs(secure - exact)
        failures = int(np.count_nonzero(error > bound))
        expected = expected_truncation_failures(profile, exact)
        plausible &= failures <= expected + 6.0 * expected**0.5 + 1.0
        print(f"{name}: revealed {np.round(secure.ravel()[:3], 4)}, float64 {np.round(exact.ravel()[:3], 4)}")
        print(
            f"  max |error| within the bound: {float(np.max(np.where(error > bound, 0.0, error))):.3g} "
            f"(bound {bound:.3g}); truncation failures: {failures} of {error.size} "
            f"(expected {expected:.3g} at |z| / 2^l per element, spec 5.3)"
        )
    print(
        f"cost of the secure part: {max(o.seconds for o in outcomes) * 1e3:.1f} ms, rounds "
        f"{max(o.rounds for o in outcomes)}, bytes sent per party {[o.bytes_sent for o in outcomes]}"
    )
    print(
        f"the data holder uploaded {result.stats[DATA_HOLDER].bytes_sent} bytes; "
        "no computing party saw X, X' or Y in the clear"
    )
    agree = all(np.array_equal(o.product, outcomes[0].product) for o in outcomes)
    return 0 if agree and plausible else 1


def product_error_bound(profile: Profile, terms: int, magnitude: float) -> float:
    """Encoding error 2^-(f+1) per operand over ``terms`` products, plus one truncation unit."""
    half_unit = 2.0 ** -(profile.fractional_bits + 1)
    return terms * (magnitude * half_unit + half_unit**2) + 2 * half_unit


def expected_truncation_failures(profile: Profile, exact: Matrix) -> float:
    """Sum over elements of |z| / 2^l with z the product at 2f fractional bits (spec 5.3)."""
    scale = 2.0 ** (2 * profile.fractional_bits - profile.ring_bits)
    return float(np.sum(np.abs(exact)) * scale)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mpbadnet`` console script."""
    parser = argparse.ArgumentParser(
        prog="mpbadnet", description="MP-BADNet: privacy-preserving backdoor detection"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="a short demonstration of secure arithmetic and its cost")
    demo.add_argument("--profile", choices=sorted(PROFILES), default="wide")
    demo.add_argument("--rows", type=int, default=128)
    demo.add_argument("--inner", type=int, default=784)
    demo.add_argument("--columns", type=int, default=128)
    demo.add_argument(
        "--seed", type=int, default=None, help="pin inputs and keys (default: keys from the OS)"
    )
    arguments = parser.parse_args(argv)
    return run_demo(arguments.profile, arguments.rows, arguments.inner, arguments.columns, arguments.seed)
