"""hsp (hindsight_py): a Lua-sandboxed stream processor compatible with Mozilla's Hindsight."""

__version__ = "0.1.0"
