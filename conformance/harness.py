"""Implementation adapters: one object per implementation of the spec (``refimpl``, ``fast``).

The conformance suite speaks one plain language, that of :mod:`refimpl`: ring elements are
Python ``int`` in flat row-major lists with the shape beside them. An
:class:`Implementation` converts that language to the implementation's own plain values
(``refimpl``: the same lists; ``fast``: numpy arrays of the given shape, ``uint64`` for
Z_2^64, ``uint32`` for Z_2^32, ``uint8`` for Z_p and Z_2) and back, builds the
implementation's :class:`Share` objects, and runs programs through the implementation's
``transport.run_parties``.

The set of implementations under test is every name in :data:`IMPLEMENTATION_NAMES`; the
environment variable ``MPBADNET_IMPLEMENTATIONS`` (comma-separated) narrows it explicitly,
for example while a new implementation is still being written.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from refimpl.ring import Ring, element_count
from refimpl.transport import PartyContext, RunResult

MODULE_NAMES = (
    "ring",
    "randomness",
    "sharing",
    "arithmetic",
    "transport",
    "preprocessing",
    "comparison",
    "nonlinear",
    "training",
    "mnist",
    "backdoor",
    "detection",
)
"""The modules that every implementation provides, with the same public functions."""

IMPLEMENTATION_NAMES = ("refimpl", "fast")

Result = TypeVar("Result")
Program = Callable[[PartyContext], Result]


class PlainValueError(AssertionError):
    """An implementation returned a plain value of the wrong type, dtype, shape or range."""


class Implementation(ABC):
    """One implementation of the spec, seen through refimpl's plain language."""

    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.modules = {module: importlib.import_module(f"{name}.{module}") for module in MODULE_NAMES}

    def __repr__(self) -> str:
        return f"Implementation({self.name!r})"

    @property
    def ring(self) -> ModuleType:
        return self.modules["ring"]

    @property
    def randomness(self) -> ModuleType:
        return self.modules["randomness"]

    @property
    def sharing(self) -> ModuleType:
        return self.modules["sharing"]

    @property
    def arithmetic(self) -> ModuleType:
        return self.modules["arithmetic"]

    @property
    def transport(self) -> ModuleType:
        return self.modules["transport"]

    @property
    def preprocessing(self) -> ModuleType:
        return self.modules["preprocessing"]

    @property
    def comparison(self) -> ModuleType:
        return self.modules["comparison"]

    @property
    def nonlinear(self) -> ModuleType:
        return self.modules["nonlinear"]

    @abstractmethod
    def plain(self, ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> Any:
        """The implementation's plain value for flat ``values`` of ``shape`` in ``ring``."""

    @abstractmethod
    def flat(self, value: Any) -> list[int]:
        """Flat row-major ``int`` list of an implementation's plain value."""

    @abstractmethod
    def check_plain(self, ring: Ring, value: Any, shape: tuple[int, ...]) -> None:
        """Raise :class:`PlainValueError` unless ``value`` is a plain value of ``shape`` in ``ring``."""

    @abstractmethod
    def floats(self, values: Sequence[float]) -> Any:
        """The implementation's plain value for real numbers (input of ``encode_fixed``)."""

    @abstractmethod
    def flat_floats(self, value: Any) -> list[float]:
        """Flat list of ``float`` of an implementation's real-valued result (``decode_fixed``)."""

    def make_share(
        self, ring: Ring, shape: tuple[int, ...], first: Sequence[int], second: Sequence[int]
    ) -> Any:
        """The implementation's ``Share`` holding ``(first, second)`` as its two components."""
        return self.ring.Share(ring, shape, self.plain(ring, first, shape), self.plain(ring, second, shape))

    def parts(self, share: Any) -> tuple[list[int], list[int]]:
        """A share's two components, ``(first, second)``, as flat lists of ``int``."""
        return self.flat(share.first), self.flat(share.second)

    def run(
        self,
        program: Program[Result],
        *,
        profile: str,
        seed: bytes,
        parties: int = 3,
        keep_transcript: bool = True,
        timeout_seconds: float = 30.0,
    ) -> RunResult[Result]:
        """Run ``program`` on ``parties`` simulated parties with this implementation's runtime."""
        result: RunResult[Result] = self.transport.run_parties(
            program,
            parties=parties,
            profile=profile,
            seed=seed,
            keep_transcript=keep_transcript,
            timeout_seconds=timeout_seconds,
        )
        return result


class Reference(Implementation):
    """``refimpl``: plain values already are flat lists of ``int``."""

    def plain(self, ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> list[int]:
        return [int(value) for value in values]

    def flat(self, value: Any) -> list[int]:
        return [int(element) for element in value]

    def check_plain(self, ring: Ring, value: Any, shape: tuple[int, ...]) -> None:
        if not isinstance(value, list) or not all(type(element) is int for element in value):
            raise PlainValueError(f"refimpl plain values are lists of int, got {value!r}")
        if len(value) != element_count(shape):
            raise PlainValueError(f"{len(value)} values for shape {shape}")
        if not all(0 <= element < ring.modulus for element in value):
            raise PlainValueError(f"values outside {ring.name}: {value}")

    def floats(self, values: Sequence[float]) -> list[float]:
        return [float(value) for value in values]

    def flat_floats(self, value: Any) -> list[float]:
        return [float(element) for element in value]


def numpy_dtype(ring: Ring) -> type[np.unsignedinteger[Any]]:
    """The dtype that ``fast`` uses for ``ring``: uint64, uint32, or uint8 for Z_p and Z_2."""
    if ring.modulus == 1 << 64:
        return np.uint64
    if ring.modulus == 1 << 32:
        return np.uint32
    return np.uint8


class Vectorised(Implementation):
    """``fast``: plain values are numpy arrays of the value's shape."""

    def plain(self, ring: Ring, values: Sequence[int], shape: tuple[int, ...]) -> NDArray[Any]:
        return np.array([int(value) for value in values], dtype=numpy_dtype(ring)).reshape(shape)

    def flat(self, value: Any) -> list[int]:
        return [int(element) for element in np.asarray(value).reshape(-1).tolist()]

    def check_plain(self, ring: Ring, value: Any, shape: tuple[int, ...]) -> None:
        if not isinstance(value, np.ndarray | np.generic):
            raise PlainValueError(f"fast plain values are numpy arrays, got {type(value).__name__}")
        if value.dtype != np.dtype(numpy_dtype(ring)):
            raise PlainValueError(
                f"dtype {value.dtype} for {ring.name}, expected {np.dtype(numpy_dtype(ring))}"
            )
        if tuple(value.shape) != tuple(shape):
            raise PlainValueError(f"shape {value.shape}, expected {shape}")
        if value.size and int(np.max(value)) >= ring.modulus:
            raise PlainValueError(f"values outside {ring.name}: {value}")

    def floats(self, values: Sequence[float]) -> NDArray[np.float64]:
        return np.array([float(value) for value in values], dtype=np.float64)

    def flat_floats(self, value: Any) -> list[float]:
        return [float(element) for element in np.asarray(value, dtype=np.float64).reshape(-1).tolist()]


ADAPTERS: dict[str, type[Implementation]] = {"refimpl": Reference, "fast": Vectorised}


def selected_names() -> tuple[str, ...]:
    """The implementations under test: all, unless ``MPBADNET_IMPLEMENTATIONS`` narrows them."""
    chosen = os.environ.get("MPBADNET_IMPLEMENTATIONS", "")
    if not chosen.strip():
        return IMPLEMENTATION_NAMES
    names = tuple(name.strip() for name in chosen.split(",") if name.strip())
    unknown = [name for name in names if name not in ADAPTERS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {sorted(ADAPTERS)}")
    return names


@cache
def implementation(name: str) -> Implementation:
    """The adapter of implementation ``name`` (imports its modules; fails loudly if it cannot)."""
    return ADAPTERS[name](name)
