"""§11 Backdoor detection: the outlier test of Algorithm 2 (MAD) on the secondary server P3.

Pure Python over lists of ``float`` (no numpy). The median is the one numpy computes: the
middle value for an odd count, the mean of the two middle values for an even count
(§11.2). :mod:`fast.detection` computes the same values over numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONSISTENCY_CONSTANT = 1.4826
"""§11.2 Outlier detection (Algorithm 2): the MAD scale of a normal distribution."""

ANOMALY_THRESHOLD = 2.0
"""§11.2 Outlier detection (Algorithm 2): a label is flagged when its index exceeds this."""


def _check_norms(norms: Sequence[float]) -> list[float]:
    """§11.2: at least one finite, non-negative norm (``ValueError`` if not)."""
    values = [float(norm) for norm in norms]
    if not values:
        raise ValueError("Algorithm 2 needs at least one norm")
    for value in values:
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"every norm must be finite and non-negative, got {value!r}")
    return values


def compute_median(values: Sequence[float]) -> float:
    """§11.2 Outlier detection (Algorithm 2): numpy's median (mean of the two middle values if even)."""
    ordered = sorted(float(value) for value in values)
    if not ordered:
        raise ValueError("the median of no values is undefined")
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def compute_mad(norms: Sequence[float]) -> float:
    """§11.2 Outlier detection (Algorithm 2): ``CONSISTENCY_CONSTANT`` x median |norm - median|."""
    values = _check_norms(norms)
    centre = compute_median(values)
    return CONSISTENCY_CONSTANT * compute_median([abs(value - centre) for value in values])


def anomaly_indices(norms: Sequence[float]) -> list[float]:
    """§11.2 Outlier detection (Algorithm 2): |norm - median| / MAD for every label.

    When MAD is 0 (at least half of the norms equal the median), a norm equal to the median
    has index 0.0 and any other norm index ``math.inf``; so equal norms flag nothing.
    """
    values = _check_norms(norms)
    centre = compute_median(values)
    mad = CONSISTENCY_CONSTANT * compute_median([abs(value - centre) for value in values])
    indices = []
    for value in values:
        deviation = abs(value - centre)
        if mad > 0.0:
            indices.append(deviation / mad)
        else:
            indices.append(0.0 if deviation == 0.0 else math.inf)
    return indices


def flagged_labels(norms: Sequence[float]) -> list[int]:
    """§11.2 Outlier detection (Algorithm 2): labels with norm <= median and index > 2, ascending."""
    values = _check_norms(norms)
    centre = compute_median(values)
    indices = anomaly_indices(values)
    return [
        label
        for label, (value, index) in enumerate(zip(values, indices, strict=True))
        if value <= centre and index > ANOMALY_THRESHOLD
    ]
