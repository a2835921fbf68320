"""Checkpoints: where every reader and input plugin is, persisted atomically in hindsight.cp."""

from hindsight_py.checkpoint.cpfile import QueuePosition, read_checkpoints, write_checkpoints

__all__ = ["QueuePosition", "read_checkpoints", "write_checkpoints"]
