"""What a queue may hold: backpressure (reference §6.6) and pruning of consumed files (§6.7).

Backpressure slows the writers of a queue when its slowest reader falls `backpressure` files
behind, or when the queue's filesystem has no more than `backpressure_disk_free` × output_size
bytes free; it is released once the slowest reader has caught up with the writer's file and the
disk has room again. Hindsight evaluates "on" only when a write rolls the file and "off" at most
once a second during an injection; hsp evaluates both once a second, which is the same
observable behaviour at file-roll granularity.

Pruning deletes `<N>.log` files below the smallest file any reader still needs. Hindsight leaves
that to its `prune_input.lua` plugin (which reads hindsight.cp); hsp does it after each
checkpoint write when `prune_queues` is on, never touching the writer's current file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hindsight_py.queue.files import file_ids, queue_file

__all__ = ["Backpressure", "free_units", "prune"]


def free_units(directory: Path, output_size: int) -> int:
    """Free space of the queue's filesystem in units of output_size (Hindsight's measure)."""
    st = os.statvfs(directory)
    return (st.f_bavail * st.f_frsize) // max(output_size, 1)


@dataclass
class Backpressure:
    """The backpressure state of one queue."""

    name: str
    files: int  # `backpressure`: allowed writer-reader distance in files (0 = off)
    disk_free: int  # `backpressure_disk_free`: threshold in output_size units (0 = off)
    on: bool = False
    reason: str = ""

    def evaluate(self, writer_id: int, min_reader_id: int | None, free: int | None) -> str | None:
        """Update the state; returns a log message when it changes."""
        behind = writer_id - min_reader_id if min_reader_id is not None else 0
        low_disk = self.disk_free > 0 and free is not None and free <= self.disk_free
        if not self.on:
            if self.files > 0 and behind > self.files:
                self.on, self.reason = True, "checkpoint"
            elif low_disk:
                self.on, self.reason = True, "disk"
            if self.on:
                return f"applying backpressure ({self.reason})"
            return None
        if behind <= 0 and not low_disk:
            self.on, self.reason = False, ""
            return "releasing backpressure"
        return None


def prune(directory: Path, keep_from: int, writer_id: int) -> list[int]:
    """Delete the queue files with ids below `keep_from` (never the writer's file); returns them."""
    removed = []
    for i in file_ids(directory):
        if i >= keep_from or i >= writer_id:
            break
        try:
            queue_file(directory, i).unlink()
            removed.append(i)
        except FileNotFoundError:
            continue
    return removed
