"""output/landfill.lua through the real kernel: framed Heka streams compressed to a local directory
and to a real SeaweedFS S3, read back byte-exact after decompression (and by `hsp cat`)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from hindsight_py.checkpoint.cpfile import read_checkpoints
from hindsight_py.message.encode import encode_message
from hindsight_py.message.framing import frame
from tests.servers.seaweedfs import SeaweedFS

REPO = Path(__file__).resolve().parents[2]


def stream(n: int) -> bytes:
    return b"".join(
        frame(
            encode_message(
                {"Timestamp": 1_795_651_200_000_000_000 + i, "Type": "http.submission",
                 "Payload": os.urandom(i % 50) + b"x" * (i % 300), "Fields": {"docid": f"id{i}"}},
                logger=b"edge", hostname=b"h", pid=1, restricted_headers=False,
            )
        )
        for i in range(n)
    )


def config(tmp_path: Path, output: str) -> Path:
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
[input.src]
filename = "file.lua"
input_filename = "in.hpb"
mode = "heka"
instruction_limit = 0
[output.landfill]
filename = "landfill.lua"
message_matcher = "TRUE"
read_queue = "input"
{output}
"""
    )
    return cfg


def hsp(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: bytes = b"") -> bytes:
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", *args],
        cwd=cwd, input=stdin, capture_output=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})),
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


def decompress(data: bytes, codec: str) -> bytes:
    with pa.CompressedInputStream(pa.BufferReader(data), codec) as s:
        return bytes(s.read())


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_local_landfill_is_byte_exact(tmp_path: Path, codec: str) -> None:
    data = stream(3000)
    (tmp_path / "in.hpb").write_bytes(data)
    hsp(["run", "--batch", str(config(tmp_path, f'location = "landfill"\ncompression = "{codec}"\nmax_bytes = 100000'))], tmp_path)
    files = sorted((tmp_path / "landfill").rglob("*"))
    files = [f for f in files if f.is_file()]
    ext = ".heka.zst" if codec == "zstd" else ".heka.gz"
    assert len(files) > 3 and all(f.name.endswith(ext) and not f.name.startswith(".") for f in files)
    assert len({f.name for f in files}) == len(files)
    # names sort by time; concatenated in that order they are the input stream exactly
    assert b"".join(decompress(f.read_bytes(), codec) for f in files) == data
    if codec == "gzip":
        assert gzip.decompress(files[0].read_bytes()) == decompress(files[0].read_bytes(), "gzip")
    cps = read_checkpoints(tmp_path / "out")
    assert cps["input->output.landfill"] == cps["input"]
    # `hsp cat` reads a decompressed file (here from stdin: `zstd -dc FILE | hsp cat -`)
    out = hsp(["cat", "-c", "-"], tmp_path, stdin=decompress(files[0].read_bytes(), codec))
    assert b"Processed:" in out and b"Processed: 0" not in out


def test_restart_never_reuses_a_name(tmp_path: Path) -> None:
    data = stream(500)
    (tmp_path / "in.hpb").write_bytes(data)
    cfg = config(tmp_path, 'location = "landfill"\nmax_rows = 200\ndir_format = ""')
    hsp(["run", "--batch", str(cfg)], tmp_path)
    first = sorted(p.name for p in (tmp_path / "landfill").iterdir())
    more = stream(700)[len(data):]
    with (tmp_path / "in.hpb").open("ab") as fh:
        fh.write(more)
    hsp(["run", "--batch", str(cfg)], tmp_path)
    files = sorted((tmp_path / "landfill").iterdir())
    assert set(first) < {p.name for p in files}  # the first run's files are untouched
    assert b"".join(decompress(f.read_bytes(), "zstd") for f in files) == data + more


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedFS]:
    server = SeaweedFS().start()
    try:
        yield server
    finally:
        server.stop()


def test_s3_landfill_is_byte_exact(tmp_path: Path, s3: SeaweedFS) -> None:
    data = stream(4000)
    (tmp_path / "in.hpb").write_bytes(data)
    s3.create_bucket("hsp-landfill")
    cfg = config(tmp_path, f'location = "s3://hsp-landfill/raw"\ns3_endpoint = "{s3.endpoint}"\nmax_bytes = 200000')
    hsp(["run", "--batch", str(cfg)], tmp_path, env=s3.env)
    fs = s3.filesystem()
    infos = sorted((f for f in fs.get_file_info(pafs.FileSelector("hsp-landfill/raw", recursive=True)) if f.is_file),
                   key=lambda f: f.path)
    assert len(infos) > 3 and all(f.path.endswith(".heka.zst") for f in infos)
    assert max(f.size for f in infos) > 0
    got = b""
    for f in infos:
        with fs.open_input_stream(f.path) as s:
            got += decompress(s.read(), "zstd")
    assert got == data
    cps = read_checkpoints(tmp_path / "out")
    assert cps["input->output.landfill"] == cps["input"]


def test_s3_large_file_multipart(tmp_path: Path, s3: SeaweedFS) -> None:
    """One 12 MB file: larger than pyarrow's single-PUT size, so a multipart upload completed at commit."""
    data = b"".join(frame(encode_message({"Payload": os.urandom(60000)}, logger=b"l", hostname=b"h", pid=1,
                                         restricted_headers=False)) for _ in range(200))
    (tmp_path / "in.hpb").write_bytes(data)
    s3.create_bucket("hsp-landfill-big")
    # 256 messages of 60 kB per call into the plugin: more than the default 8 MiB memory_limit
    cfg = config(tmp_path, f'location = "s3://hsp-landfill-big/raw"\ns3_endpoint = "{s3.endpoint}"\nmemory_limit = 0')
    hsp(["run", "--batch", str(cfg)], tmp_path, env=s3.env)
    fs = s3.filesystem()
    infos = [f for f in fs.get_file_info(pafs.FileSelector("hsp-landfill-big/raw", recursive=True)) if f.is_file]
    assert len(infos) == 1 and infos[0].size > 10_000_000
    with fs.open_input_stream(infos[0].path) as s:
        assert decompress(s.read(), "zstd") == data
