"""Small statistics for the statistical properties, without extra dependencies.

* :func:`chi_square_survival`: P(X >= x) for X chi-square with ``df`` degrees of freedom
  (regularised upper incomplete gamma Q(df/2, x/2), series and continued fraction).
* :func:`homogeneity_p_value`: the chi-square test that two samples of bin labels come from
  the same distribution (a 2 x k contingency table; empty bins are dropped).
* :func:`uniformity_p_value`: the chi-square goodness-of-fit test against uniform bins.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

_ITERATIONS = 10_000
_EPSILON = 1e-15
_TINY = 1e-300


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series (converges fast for x < a + 1)."""
    term = 1.0 / a
    total = term
    denominator = a
    for _ in range(_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPSILON:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by Lentz's continued fraction (converges fast for x >= a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for index in range(1, _ITERATIONS):
        an = -index * (index - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi_square_survival(statistic: float, df: int) -> float:
    """P(X >= statistic) for X ~ chi-square(df)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if statistic <= 0.0:
        return 1.0
    a, x = df / 2.0, statistic / 2.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return _upper_fraction(a, x)


def homogeneity_p_value(first: Sequence[int], second: Sequence[int]) -> float:
    """p-value of the chi-square test that two samples of bin labels share one distribution."""
    counts = [Counter(first), Counter(second)]
    bins = sorted(set(counts[0]) | set(counts[1]))
    if len(bins) < 2:
        return 1.0
    sizes = [len(first), len(second)]
    total = sum(sizes)
    statistic = 0.0
    for label in bins:
        column = counts[0][label] + counts[1][label]
        for row in range(2):
            expected = sizes[row] * column / total
            statistic += (counts[row][label] - expected) ** 2 / expected
    return chi_square_survival(statistic, len(bins) - 1)


def uniformity_p_value(sample: Sequence[int], bins: int) -> float:
    """p-value of the chi-square goodness-of-fit test of labels in range(bins) against uniform."""
    counts = Counter(sample)
    if any(not 0 <= label < bins for label in counts):
        raise ValueError("labels outside range(bins)")
    expected = len(sample) / bins
    statistic = sum((counts[label] - expected) ** 2 / expected for label in range(bins))
    return chi_square_survival(statistic, bins - 1)
