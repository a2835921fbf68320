"""Queue directory layout: `<queue>/<N>.log`, N a decimal integer without padding."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["queue_file", "file_ids", "first_id", "next_id", "last_id"]


def queue_file(directory: Path, file_id: int) -> Path:
    return directory / f"{file_id}.log"


def file_ids(directory: Path) -> list[int]:
    """Sorted ids of the `<digits>.log` files in `directory` (Hindsight's extract_id rule)."""
    ids = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(".log") and len(name) > 4 and name[:-4].isdigit():
            ids.append(int(name[:-4]))
    ids.sort()
    return ids


def first_id(directory: Path) -> int:
    ids = file_ids(directory)
    return ids[0] if ids else 0


def last_id(directory: Path) -> int:
    ids = file_ids(directory)
    return ids[-1] if ids else 0


def next_id(directory: Path, after: int) -> int | None:
    """The smallest existing id greater than `after`, or None."""
    for i in file_ids(directory):
        if i > after:
            return i
    return None
