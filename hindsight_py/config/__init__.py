"""hsp's configuration: its own TOML form and unchanged Hindsight cfg files, one model.

- `load_toml(path)` -> (HindsightConfig, [PluginConfig]): hsp's single-file form (`toml.py`).
- `load_hindsight_cfg(path)` / `load_plugin_cfg(path, type, hcfg)`: Hindsight's Lua-syntax
  hindsight.cfg and `<run>/<type>/<name>.cfg` files (`lua_cfg.py`).
- `runtime_config()` / `runtime_config_text()`: what a plugin's `read_config` sees and its `.rtc`
  file (`model.py`); `assign_threads()`: start-up placement of analysis plugins.

Every loader raises `ConfigError` (file, key, line, Hindsight's reason) before returning anything.
"""

from typing import TYPE_CHECKING

from hindsight_py.config.model import (
    PLUGIN_TYPES,
    ConfigError,
    HindsightConfig,
    PluginConfig,
    PluginDefaults,
    PluginType,
    assign_threads,
    rtc_path,
    runtime_config,
    runtime_config_text,
)

if TYPE_CHECKING:
    from hindsight_py.config.lua_cfg import load_hindsight_cfg, load_plugin_cfg
    from hindsight_py.config.toml import load_toml

__all__ = [
    "PLUGIN_TYPES",
    "ConfigError",
    "HindsightConfig",
    "PluginConfig",
    "PluginDefaults",
    "PluginType",
    "assign_threads",
    "load_hindsight_cfg",
    "load_plugin_cfg",
    "load_toml",
    "rtc_path",
    "runtime_config",
    "runtime_config_text",
]


def __getattr__(name: str) -> object:
    # The loaders are imported lazily: lua_cfg pulls in the Lua engine (lupa), which a process
    # that only reads TOML, or only builds runtime configs, does not need to load.
    if name == "load_toml":
        from hindsight_py.config.toml import load_toml

        return load_toml
    if name in ("load_hindsight_cfg", "load_plugin_cfg"):
        from hindsight_py.config import lua_cfg

        return getattr(lua_cfg, name)
    raise AttributeError(name)
