"""Durable disk queues: Hindsight-compatible rolling framed `<N>.log` files."""

from hindsight_py.queue.reader import QueueReader
from hindsight_py.queue.writer import QueueWriter

__all__ = ["QueueReader", "QueueWriter"]
