"""A simulated clock: simulated seconds run `speed` times faster than real ones.

With speed 1440 a simulated day passes in a real minute. Everything the simulator timestamps
(subsession ends, the Date header, retry schedules, ping ages) reads this clock, so a long
outage and a maximum ping age of days can be exercised in seconds.
"""

from __future__ import annotations

import time
from email.utils import formatdate

__all__ = ["SimClock", "http_date", "parse_duration"]


class SimClock:
    def __init__(self, start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0 (got {speed})")
        self.start = start
        self.speed = speed
        self._real0 = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self._real0) * self.speed

    def real_delay(self, t: float) -> float:
        """Real seconds until simulated time `t` (0 if it has passed)."""
        return max(0.0, (t - self.now()) / self.speed)


def http_date(t: float) -> str:
    """RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return formatdate(t, usegmt=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `6h`, `2d` -> seconds."""
    t = text.strip().lower()
    if not t:
        raise ValueError("empty duration")
    unit = _UNITS.get(t[-1])
    try:
        return float(t[:-1]) * unit if unit else float(t)
    except ValueError:
        raise ValueError(f"bad duration {text!r} (use e.g. 90s, 15m, 6h, 2d)") from None
