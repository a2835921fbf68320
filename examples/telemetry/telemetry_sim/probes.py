"""Probe definitions and Firefox-shaped histogram values.

Firefox declares every probe with a collection policy: *opt-out* (base) data is collected from
everyone, *opt-in* (extended) data only from users who enabled it and on pre-release channels.
The simulator keeps that split so the pipeline sees both shapes of ping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["HistogramProbe", "HISTOGRAMS", "exponential_buckets", "linear_buckets", "Histogram"]

EXPONENTIAL = 0
LINEAR = 1
COUNT = 4


def exponential_buckets(low: int, high: int, count: int) -> list[int]:
    """Lower bounds of an exponential histogram: 0, `low`, then log-spaced up to `high`.

    Each bound is the previous one times a ratio chosen so the remaining buckets reach `high`,
    rounded, and at least one more than the previous bound (as Firefox's histogram code does).
    """
    bounds = [0, low]
    current = low
    log_high = math.log(high)
    for i in range(2, count):
        log_cur = math.log(current)
        step = (log_high - log_cur) / (count - i)
        nxt = int(math.floor(math.exp(log_cur + step) + 0.5))
        current = nxt if nxt > current else current + 1
        bounds.append(current)
    return bounds


def linear_buckets(low: int, high: int, count: int) -> list[int]:
    """Lower bounds of a linear histogram: 0, then `count - 1` evenly spaced bounds."""
    bounds = [0]
    for i in range(1, count):
        bounds.append((low * (count - 1 - i) + high * (i - 1)) // (count - 2))
    return bounds


@dataclass(frozen=True)
class HistogramProbe:
    """One histogram probe: its buckets, its collection policy and how samples are drawn.

    Samples are log-normal around `median` (`sigma` in natural-log units); `per_hour` is the
    mean number of samples a client records per hour of subsession.
    """

    name: str
    kind: int
    low: int
    high: int
    bucket_count: int
    extended: bool
    median: float
    sigma: float
    per_hour: float

    def bounds(self) -> list[int]:
        if self.kind == LINEAR:
            return linear_buckets(self.low, self.high, self.bucket_count)
        return exponential_buckets(self.low, self.high, self.bucket_count)


HISTOGRAMS: tuple[HistogramProbe, ...] = (
    # base (opt-out)
    HistogramProbe("GC_MS", EXPONENTIAL, 1, 10000, 50, False, 25.0, 0.8, 30.0),
    HistogramProbe("CYCLE_COLLECTOR_MAX_PAUSE", EXPONENTIAL, 1, 10000, 50, False, 8.0, 0.7, 20.0),
    HistogramProbe("FX_TAB_SWITCH_TOTAL_E10S_MS", EXPONENTIAL, 1, 1000, 20, False, 40.0, 0.6, 12.0),
    # extended (opt-in)
    HistogramProbe("GC_SLICE_DURING_IDLE", LINEAR, 1, 100, 11, True, 30.0, 0.5, 10.0),
    HistogramProbe("CHECKERBOARD_SEVERITY", EXPONENTIAL, 1, 1073741824, 50, True, 5000.0, 1.5, 3.0),
)


@dataclass
class Histogram:
    """A histogram being recorded: counts per bucket index plus the sum, as Firefox keeps them."""

    probe: HistogramProbe
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    _bounds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._bounds = self.probe.bounds()

    def add(self, value: float) -> None:
        v = max(0, int(value))
        # the last bound <= v
        lo, hi = 0, len(self._bounds) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._bounds[mid] <= v:
                lo = mid
            else:
                hi = mid - 1
        self.counts[lo] = self.counts.get(lo, 0) + 1
        self.total += v

    def sample(self, rng: random.Random, median: float) -> None:
        self.add(rng.lognormvariate(math.log(median), self.probe.sigma))

    def to_json(self) -> dict[str, object]:
        """The main-ping JSON form: non-empty buckets (keyed by lower bound) plus one empty
        bucket on each side, like Firefox's snapshot."""
        values: dict[str, int] = {}
        if self.counts:
            first, last = min(self.counts), max(self.counts)
            for i in range(max(0, first - 1), min(len(self._bounds) - 1, last + 1) + 1):
                c = self.counts.get(i, 0)
                if c or i in (first - 1, last + 1):
                    values[str(self._bounds[i])] = c
        return {
            "bucket_count": self.probe.bucket_count,
            "histogram_type": self.probe.kind,
            "sum": self.total,
            "range": [self.probe.low, self.probe.high],
            "values": values,
        }
