"""Which io modules exist, imported only when a plugin requires one.

Importing lazily keeps `hsp run` free of confluent-kafka or pyarrow start-up costs unless a
plugin uses them, and keeps a broken optional dependency from taking down unrelated plugins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from hindsight_py.iomods.context import IoContext, IoModule

__all__ = ["IO_MODULES", "IoModuleFactory", "resolve"]

IoModuleFactory = Callable[[IoContext], IoModule]

# require name -> "python.module:Factory"
IO_MODULES: Mapping[str, str] = MappingProxyType(
    {
        # lua_sandbox_extensions' kafka API, so Hindsight's own kafka plugins run unchanged
        "kafka": "hindsight_py.iomods.kafka:KafkaModule",
        "hsp_http_edge": "hindsight_py.iomods.http_edge:HttpEdgeModule",
        "hsp_parquet": "hindsight_py.iomods.parquet:ParquetModule",
        "hsp_landfill": "hindsight_py.iomods.landfill:LandfillModule",
    }
)


def resolve(spec: str | IoModuleFactory) -> IoModuleFactory:
    if callable(spec):
        return spec
    mod, _, attr = spec.partition(":")
    factory: IoModuleFactory = getattr(importlib.import_module(mod), attr)
    return factory
