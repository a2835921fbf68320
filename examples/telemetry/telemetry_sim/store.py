"""Pending pings on disk: one file per ping that could not be delivered yet.

Firefox keeps unsent pings in its profile (`saved-telemetry-pings/<id>`) and sends them later;
here each pending ping is `<dir>/<docId>.json`, holding the request and its retry bookkeeping,
written atomically so a generator killed mid-write leaves either the old or the new file.
A generator started again with the same directory resumes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["PendingPing", "PendingStore"]


@dataclass
class PendingPing:
    doc_id: str
    path: str  # the submission URL path
    body: str  # the JSON text (or, for deliberately broken pings, whatever is sent)
    created: float  # simulated time the ping was created
    attempts: int
    next_attempt: float
    valid: bool  # False for the deliberately invalid pings (not expected in Parquet)
    pingsender: bool  # sent with X-PingSender-Version (shutdown pings)
    user_agent: str


class PendingStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def _file(self, doc_id: str) -> Path:
        return self.dir / f"{doc_id}.json"

    def save(self, ping: PendingPing) -> None:
        tmp = self.dir / f".{ping.doc_id}.tmp"
        tmp.write_text(json.dumps(asdict(ping)))
        os.replace(tmp, self._file(ping.doc_id))

    def remove(self, doc_id: str) -> None:
        self._file(doc_id).unlink(missing_ok=True)

    def load_all(self) -> list[PendingPing]:
        """Every pending ping left by an earlier run; unreadable files are skipped (and kept
        for inspection) rather than stopping the generator."""
        pings: list[PendingPing] = []
        for f in sorted(self.dir.glob("*.json")):
            try:
                pings.append(PendingPing(**json.loads(f.read_text())))
            except (ValueError, TypeError) as e:
                print(f"skipping unreadable pending ping {f}: {e}")
        return pings

    def count(self) -> int:
        return sum(1 for _ in self.dir.glob("*.json"))
