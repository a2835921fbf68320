"""Creating a plugin's sandbox from its configuration, and recording why a plugin stopped.

Shared by every runner (input threads, analysis worker processes, output threads) so that a
plugin is built the same way wherever it runs: source from its resolved Lua file, `read_config`
table from `runtime_config`, state file `<output_path>/<name>.data`, `.rtc` written on creation
and `.err` written on failure, all as Hindsight lays them out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hindsight_py.config.model import HindsightConfig, PluginConfig, rtc_path, runtime_config, runtime_config_text
from hindsight_py.iomods import IoContext
from hindsight_py.sandbox import Sandbox

__all__ = ["create_sandbox", "err_path", "write_err", "state_path"]


def state_path(hcfg: HindsightConfig, plugin: PluginConfig) -> Path:
    return hcfg.output_path / f"{plugin.name}.data"


def err_path(hcfg: HindsightConfig, plugin: PluginConfig) -> Path:
    return hcfg.run_dir(plugin.type) / f"{plugin.short_name}.err"


def write_err(hcfg: HindsightConfig, plugin: PluginConfig, reason: str) -> None:
    """`<run>/<type>/<name>.err`: one line `YYYY-MM-DDTHH:MM:SS<TAB><reason>` (UTC)."""
    path = err_path(hcfg, plugin)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        tmp = path.with_suffix(".err.tmp")
        tmp.write_text(f"{stamp}\t{reason}\n", encoding="utf-8", errors="replace")
        os.replace(tmp, path)
    except OSError:
        pass  # reporting must never take the kernel down


def create_sandbox(
    hcfg: HindsightConfig,
    plugin: PluginConfig,
    *,
    thread: int | None = None,
    log_level: int = 6,
    **callbacks: Any,
) -> Sandbox:
    """Build the plugin's sandbox (raises SandboxError with the reason on failure)."""
    cfg = runtime_config(hcfg, plugin, log_level=log_level, thread=thread)
    try:
        rtc = rtc_path(hcfg, plugin.name)
        rtc.write_text(runtime_config_text(hcfg, plugin, log_level=log_level, thread=thread), encoding="utf-8")
    except (OSError, ValueError):
        pass
    source = plugin.lua_file.read_bytes()
    state = state_path(hcfg, plugin) if plugin.preserve_data else None
    on_log: Callable[[str], None] | None = callbacks.pop("on_log", None)
    io_flush: Callable[[], None] | None = callbacks.pop("io_flush", None)
    io_log: Callable[[str, str], None] | None = callbacks.pop("io_log", None)
    io_backpressure: Callable[[], bool] = callbacks.pop("io_backpressure", None) or (lambda: False)
    is_running: Callable[[], bool] = callbacks.get("is_running") or (lambda: True)
    io_context = IoContext(
        plugin.name,
        plugin.type,
        cfg,
        output_path=hcfg.output_path,
        log=io_log or (lambda level, text: on_log(f"{level}: {text}") if on_log else None),
        is_running=is_running,
        flush=io_flush or (lambda: None),
        backpressure=io_backpressure,
    )
    return Sandbox(
        source,
        plugin.type,
        cfg,
        chunkname=str(plugin.lua_file),
        state_file=state,
        on_log=on_log,
        io_context=io_context,
        **callbacks,
    )
