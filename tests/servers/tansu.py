"""The tansu broker starter lives in the package (`hsp bench kafka-parquet` uses it too)."""

from hindsight_py.bench.tansu import Tansu, free_port, tansu_binary

__all__ = ["Tansu", "tansu_binary", "free_port"]
