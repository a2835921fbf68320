"""The sandbox: one isolated lupa Lua 5.1 runtime per plugin, with Hindsight's API and limits."""

from hindsight_py.sandbox.runtime import BatchResult, PluginType, Sandbox, SandboxError, SandboxStats, Terminated

__all__ = ["BatchResult", "PluginType", "Sandbox", "SandboxError", "SandboxStats", "Terminated"]
