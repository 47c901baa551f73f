"""Request latency per pool: a fixed-bucket histogram the data path feeds."""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds, inclusive) of the latency buckets; ``+Inf`` follows."""


class LatencyHistogram:
    """Request latencies of one pool: per-bucket counts and their sum.

    ``counts[i]`` counts observations in ``(bounds[i-1], bounds[i]]``, the
    last slot those above every bound; cumulating happens at scrape time.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Record one request that took ``seconds``; the data path calls this."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs, ``+Inf`` last, as Prometheus wants."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(
            (*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True
        ):
            running += count
            out.append((bound, running))
        return out
