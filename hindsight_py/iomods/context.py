"""What an io module may use of the runner that hosts its plugin.

An io module lives as long as the plugin's sandbox. It gets the plugin's configuration, a logger
and two hooks into the durability of an input's queue:

* `flush()` asks the input runner to write what the plugin injected so far into the input queue
  now (instead of at the next 256 KiB or checkpoint tick);
* `add_flush_listener(listener)` registers a `listener()` that the runner calls, under the lock
  that guards its injection buffer, each time it takes that buffer to write it. The listener
  returns a `commit()` to call once the buffer is in the queue (or None). Everything the plugin
  had handed over before `listener()` ran is on disk when `commit()` runs: this is how Kafka
  offsets and HTTP acknowledgements follow the queue instead of running ahead of it.

Both are no-ops outside an input runner (an output plugin, `hsp test`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["IoContext", "IoModule", "FlushListener"]

FlushListener = Callable[[], Callable[[], None] | None]


def _no_flush() -> None:
    return None


@dataclass
class IoContext:
    plugin_name: str
    plugin_type: str
    config: Mapping[str, Any]
    output_path: Path = field(default_factory=Path.cwd)
    log: Callable[[str, str], None] = lambda level, text: None
    is_running: Callable[[], bool] = lambda: True
    flush: Callable[[], None] = _no_flush
    # True while the kernel holds inputs back (queue too far ahead of its readers, disk low):
    # an edge answers 503 instead of accepting what it could only buffer in memory.
    backpressure: Callable[[], bool] = lambda: False
    # Output plugins: the raw protobuf of message `index` (1-based) of the batch being processed,
    # or None. An io module that stores whole messages takes them from here instead of through a
    # Lua string (read_message("raw") and back: two copies and two boundary crossings).
    current_raw: Callable[[int], bytes | None] = lambda index: None
    listeners: list[FlushListener] = field(default_factory=list)

    def add_flush_listener(self, listener: FlushListener) -> None:
        self.listeners.append(listener)

    def prepare_flush(self) -> list[Callable[[], None]]:
        """Called by the input runner when it takes its buffer: the commits to run after writing."""
        commits = []
        for listener in self.listeners:
            commit = listener()
            if commit is not None:
                commits.append(commit)
        return commits


class IoModule(Protocol):
    """A Python module behind `require "<name>"` in an io plugin."""

    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        """The callbacks the module's Lua face (`sandbox/io/<name>.lua`) receives as `api`.

        Results must be plain values (None, bool, int, float, bytes or str, or tuples of them,
        or lists/dicts of them, which become Lua tables): the sandbox refuses anything else, so
        no Python object can ever reach plugin code."""
        ...

    def close(self) -> None:
        """Release sockets, threads and files; called when the sandbox is destroyed or terminated."""
        ...
