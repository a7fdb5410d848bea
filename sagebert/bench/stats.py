"""The latency statistics the benchmarks report, computed one way so that their tables compare."""

from __future__ import annotations


def p99(values: list[float]) -> float:
    """The 99th percentile as the k-th smallest sample, k = floor(0.99 n) (at least 1): no interpolation,
    so it is always a latency that was measured."""
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]
