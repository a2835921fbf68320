#!/usr/bin/env python3
"""Simulated Firefox clients sending main pings to an HTTP edge (the telemetry example).

    python examples/telemetry/generator.py --url http://127.0.0.1:8880 --clients 300 \\
        --duration 1d --speed 1440 --shift-histogram GC_MS --shift-at 12h --ack-file acked.txt

A simulated clock drives everything (`--speed` simulated seconds per real second), so a day of
pings, an outage and the retries that follow take seconds or minutes. The same `--seed` gives
the same clients, sessions and ping contents. Pings that could not be delivered are kept in
`--store-dir` (one file each) and retried with exponential backoff until `--max-ping-age`; a
generator started again with the same directory resumes them. See docs/telemetry.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from telemetry_sim.clients import Population, Shift  # noqa: E402
from telemetry_sim.clock import parse_duration  # noqa: E402
from telemetry_sim.probes import HISTOGRAMS  # noqa: E402
from telemetry_sim.simulation import Settings, Simulation, summary_dict  # noqa: E402


def _time(text: str) -> float:
    """Epoch seconds or an ISO 8601 date/time (UTC unless it says otherwise)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad time {text!r}: use epoch seconds or ISO 8601") from None
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, which must be > 0."""
    def check(text: str) -> float:
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return v
    return check


def _share(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {text})")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8880", help="the edge's base URL")
    p.add_argument("--clients", type=_positive(int), default=200, help="simulated profiles")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same pings)")
    p.add_argument("--start", type=_time, default=_time("2024-03-01T00:00:00Z"),
                   help="simulated start time (epoch or ISO 8601)")
    p.add_argument("--duration", type=_duration, default=parse_duration("1d"),
                   help="simulated period during which subsessions end (e.g. 90m, 6h, 1d)")
    p.add_argument("--speed", type=_positive(float), default=1440.0,
                   help="simulated seconds per real second (1440: a day per minute)")
    p.add_argument("--concurrency", type=_positive(int), default=32, help="requests in flight")
    p.add_argument("--timeout", type=_positive(float), default=30.0, help="real seconds per request")
    p.add_argument("--store-dir", type=Path, default=Path("pending-pings"),
                   help="where undelivered pings wait (one file per ping)")
    p.add_argument("--max-ping-age", type=_duration, default=parse_duration("14d"),
                   help="older undelivered pings are dropped (simulated time)")
    p.add_argument("--backoff-base", type=_duration, default=parse_duration("60s"),
                   help="first retry delay, doubled per failure (simulated time)")
    p.add_argument("--backoff-max", type=_duration, default=parse_duration("4h"),
                   help="longest retry delay (simulated time)")
    p.add_argument("--optin-rate", type=_share, default=0.05,
                   help="share of release users with extended (opt-in) collection")
    p.add_argument("--session-mean", type=_duration, default=parse_duration("3h"), help="mean session length")
    p.add_argument("--idle-mean", type=_duration, default=parse_duration("4h"), help="mean time between sessions")
    p.add_argument("--env-change-rate", type=float, default=0.05,
                   help="environment changes (subsession splits) per hour")
    p.add_argument("--shift-histogram", choices=[h.name for h in HISTOGRAMS],
                   help="histogram whose distribution shifts")
    p.add_argument("--shift-at", type=_duration, default=None,
                   help="when the shift starts, as an offset from --start (simulated time)")
    p.add_argument("--shift-factor", type=_positive(float), default=3.0,
                   help="the shifted histogram's median is multiplied by this")
    p.add_argument("--invalid-rate", type=_share, default=0.0,
                   help="share of deliberately invalid submissions (bad JSON, missing clientId, wrong doctype)")
    p.add_argument("--ack-file", type=Path, help="append the ids of acknowledged valid pings here")
    p.add_argument("--invalid-file", type=Path, help="append '<docid>\\t<kind>' for each invalid ping sent")
    p.add_argument("--summary-json", type=Path, help="write the summary as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    shift = None
    if a.shift_histogram:
        if a.shift_at is None:
            parser().error("--shift-histogram needs --shift-at")
        shift = Shift(a.shift_histogram, a.start + a.shift_at, a.shift_factor)
    pop = Population(a.seed, a.optin_rate, a.session_mean, a.idle_mean, a.env_change_rate)
    settings = Settings(url=a.url, start=a.start, duration=a.duration, speed=a.speed, clients=a.clients,
                        seed=a.seed, store_dir=a.store_dir, concurrency=a.concurrency,
                        max_ping_age=a.max_ping_age, backoff_base=a.backoff_base,
                        backoff_max=a.backoff_max, shift=shift, invalid_rate=a.invalid_rate,
                        timeout=a.timeout, population=pop)
    ack = a.ack_file.open("a") if a.ack_file else None
    inv = a.invalid_file.open("a") if a.invalid_file else None
    try:
        summary = asyncio.run(Simulation(settings, ack, inv).run())
    except KeyboardInterrupt:
        print("interrupted: undelivered pings stay in", a.store_dir, file=sys.stderr)
        return 130
    finally:
        for f in (ack, inv):
            if f is not None:
                f.close()
    print(summary.text())
    if a.summary_json:
        a.summary_json.write_text(json.dumps(summary_dict(summary), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
