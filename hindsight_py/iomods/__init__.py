"""Python-backed Lua modules for io plugins (Kafka, the HTTP edge, Parquet, landfill, S3).

An input or output plugin `require`s one of these by name, exactly as a Hindsight plugin requires
a lua_sandbox_extensions C module. The Lua face of a module lives in `sandbox/io/<name>.lua`
(trusted code run in the bootstrap's private environment); what it calls lives here, in Python,
reached only through guarded callbacks. Analysis plugins never see any of it: the bootstrap only
offers these modules to input and output sandboxes.
"""

from hindsight_py.iomods.context import IoContext, IoModule, FlushListener

__all__ = ["IoContext", "IoModule", "FlushListener"]
