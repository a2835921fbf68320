"""output/parquet.lua through the real kernel: a framed Heka stream (HTTP-edge-shaped messages)
read by input/file.lua, written as Hive-partitioned Parquet to a real SeaweedFS S3 or a local
directory, and read back with pyarrow.dataset and DuckDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hindsight_py.checkpoint.cpfile import read_checkpoints
from hindsight_py.message.encode import encode_message
from hindsight_py.message.framing import FrameScanner, frame
from tests.servers.seaweedfs import SeaweedFS

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400_000_000_000
T0 = 1_795_651_200_000_000_000  # 2026-11-26T00:00:00Z
APPS = ["Firefox", "Fenix", "Focus/ü"]  # the last one needs sanitising for a path


def edge_message(i: int, *, day: int = 0, docid: bool = True) -> bytes:
    """Message i, shaped like the HTTP edge's (see hindsight_py/iomods/http_edge.py)."""
    fields: dict[str, object] = {
        "uri": f"/submit/telemetry/main/4/id{i}",
        "namespace": "telemetry",
        "doctype": "main" if i % 5 else "event",
        "docversion": "4",
        "app": APPS[i % 3],
        "User-Agent": f"UA/{i % 7}",
        "content_length": {"value": 100 + i, "value_type": 2},
        "tags": ["a", f"t{i % 4}"],
    }
    if docid:
        fields["docid"] = f"id{i}"
    return encode_message(
        {
            "Timestamp": T0 + day * DAY + i * 1_000_000,
            "Type": "http.submission",
            "Payload": b'{"n": %d}' % i,
            "Fields": fields,
        },
        logger=b"edge",
        hostname=b"edge-host",
        pid=1,
        restricted_headers=False,
    )


def write_stream(path: Path, messages: list[bytes]) -> None:
    path.write_bytes(b"".join(frame(m) for m in messages))


COLUMNS = """columns = [
  { name = "docid", from = "Fields[docid]", type = "string", required = true },
  { name = "namespace", from = "Fields[namespace]", type = "string" },
  { name = "doctype", from = "Fields[doctype]", type = "string" },
  { name = "user_agent", from = "Fields[User-Agent]", type = "string" },
  { name = "content_length", from = "Fields[content_length]", type = "int64" },
  { name = "tags", from = "Fields[tags]", type = "list<string>" },
  { name = "ts", from = "Timestamp", type = "timestamp[ns]", required = true },
  { name = "payload", from = "Payload", type = "binary" },
  { name = "uuid", from = "Uuid", type = "string" },
  { name = "host", from = "Hostname", type = "string" },
]
partitions = [
  { name = "submission_date", from = "Timestamp", format = "%Y%m%d" },
  { name = "app", from = "Fields[app]" },
]"""


def config(tmp_path: Path, output: str, *, follow: bool = False, input_file: str = "in.hpb") -> Path:
    cfg = tmp_path / "hsp.toml"
    poll = "ticker_interval = 1\n" if follow else ""
    cfg.write_text(
        f"""output_path = "out"

[input.src]
filename = "file.lua"
input_filename = "{input_file}"
mode = "heka"
instruction_limit = 0
{poll}
[output.pq]
filename = "parquet.lua"
message_matcher = "Type == 'http.submission'"
read_queue = "input"
{output}
{COLUMNS}
"""
    )
    return cfg


def hsp_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **(extra or {}))


def hsp_batch(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)],
        cwd=cfg.parent, capture_output=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res


def hsp_start(cfg: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)],
        cwd=cfg.parent, stdout=subprocess.DEVNULL, stderr=open(cfg.parent / "hsp.log", "ab"),  # noqa: SIM115
        env=env, start_new_session=True,
    )


def hsp_stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def wait_for(cond: Callable[[], object], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def expected_counts(indices: list[int], day_of: Callable[[int], int]) -> Counter[tuple[str, str]]:
    safe = {"Firefox": "Firefox", "Fenix": "Fenix", "Focus/ü": "Focus__"}  # "/" and "ü" (2 bytes) -> "_"
    days = {0: "20261126", 1: "20261127"}
    return Counter((days[day_of(i)], safe[APPS[i % 3]]) for i in indices)


def dataset_counts(path: str, fs: pafs.FileSystem | None = None) -> Counter[tuple[str, str]]:
    d = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    t = d.to_table(columns=["submission_date", "app"])
    return Counter(zip(map(str, t.column("submission_date").to_pylist()), t.column("app").to_pylist()))


def duckdb_counts(local_root: Path) -> Counter[tuple[str, str]]:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT CAST(submission_date AS VARCHAR), app, count(*) FROM "
        f"read_parquet('{local_root}/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    return Counter({(d, a): n for d, a, n in rows})


def rows(root: Path) -> int:
    return ds.dataset(str(root), format="parquet").count_rows() if root.exists() else 0


def queue_docids(out: Path, position: str | None = None) -> list[int]:
    """The message numbers in the input queue, in order (up to a checkpointed 'file:offset')."""
    fid, off = (int(x) for x in position.split(":")) if position else (1 << 62, 0)
    ids: list[int] = []
    for f in sorted((out / "input").glob("*.log"), key=lambda p: int(p.stem)):
        if int(f.stem) > fid:
            break
        sc = FrameScanner()
        data = f.read_bytes()
        sc.feed(data if int(f.stem) < fid else data[:off])
        for _, m in sc.records(final=True):
            docid = m.field(b"docid")
            ids.append(int(docid[2:]) if isinstance(docid, bytes) else -1)
    return ids


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedFS]:
    server = SeaweedFS().start()
    try:
        yield server
    finally:
        server.stop()


def test_s3_partitions_read_back_with_pyarrow_and_duckdb(tmp_path: Path, s3: SeaweedFS) -> None:
    n = 3000
    bad = {7, 1500, 2999}  # no docid: a required column is missing -> rejected, not a crash
    msgs = [edge_message(i, day=i // 2000, docid=i not in bad) for i in range(n)]
    write_stream(tmp_path / "in.hpb", msgs)
    s3.create_bucket("hsp-parquet")
    cfg = config(
        tmp_path,
        f'location = "s3://hsp-parquet/submissions"\ns3_endpoint = "{s3.endpoint}"\nmax_rows = 700',
    )
    res = hsp_batch(cfg, hsp_env(s3.env))
    assert res.stderr.count(b"rejected: column docid: required value missing") == len(bad)

    good = [i for i in range(n) if i not in bad]
    want = expected_counts(good, lambda i: i // 2000)
    fs = s3.filesystem()
    assert dataset_counts("hsp-parquet/submissions", fs) == want

    files = [f for f in fs.get_file_info(pafs.FileSelector("hsp-parquet/submissions", recursive=True)) if f.is_file]
    assert files and all(f.path.endswith(".parquet") for f in files)
    assert len(files) >= 6  # 6 partitions, more than one roll
    # DuckDB over the same objects, downloaded with pyarrow (DuckDB's httpfs extension cannot
    # be installed offline)
    local = tmp_path / "download"
    pafs.copy_files("hsp-parquet/submissions", str(local), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    assert duckdb_counts(local) == want

    t = ds.dataset(str(local), format="parquet", partitioning="hive").to_table()
    assert sorted(t.column("docid").to_pylist()) == sorted(f"id{i}" for i in good)
    row = t.filter(ds.field("docid") == "id42").to_pylist()[0]
    assert row["content_length"] == 142 and row["tags"] == ["a", "t2"] and row["payload"] == b'{"n": 42}'
    assert row["user_agent"] == "UA/0" and row["host"] == "edge-host" and len(row["uuid"]) == 36
    assert pq.ParquetFile(next(local.rglob("*.parquet"))).metadata.row_group(0).column(0).compression == "ZSTD"
    cps = read_checkpoints(tmp_path / "out")
    assert cps["input->output.pq"] == cps["input"]  # everything committed, checkpoint at the end


def test_local_directory_with_gzip_and_exact_partition_counts(tmp_path: Path) -> None:
    msgs = [edge_message(i, day=i % 2) for i in range(1000)]
    write_stream(tmp_path / "in.hpb", msgs)
    cfg = config(tmp_path, 'location = "parquet"\ncompression = "gzip"\nmax_bytes = 50000')
    hsp_batch(cfg, hsp_env())
    root = tmp_path / "parquet"
    assert dataset_counts(str(root)) == expected_counts(list(range(1000)), lambda i: i % 2)
    assert duckdb_counts(root) == expected_counts(list(range(1000)), lambda i: i % 2)
    assert not list(root.rglob("*.inprogress")) and not list(root.rglob(".*"))
    files = sorted(root.rglob("*.parquet"))
    assert len(files) > 6  # max_bytes rolled several times
    assert {pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in files} == {"GZIP"}
    assert {f.parent.parent.name for f in files} == {"submission_date=20261126", "submission_date=20261127"}


def test_age_roll_commits_while_running(tmp_path: Path) -> None:
    """No size limit is reached: the files appear by age (timer_event) and the checkpoint follows."""
    write_stream(tmp_path / "in.hpb", [edge_message(i) for i in range(300)])
    cfg = config(tmp_path, 'location = "parquet"\nmax_age = 1\nticker_interval = 1', follow=True)
    proc = hsp_start(cfg, hsp_env())
    root = tmp_path / "parquet"
    try:
        wait_for(lambda: rows(root) == 300, what="the first 300 rows by age")
        cp = tmp_path / "out" / "hindsight.cp"
        wait_for(lambda: cp.exists() and (c := read_checkpoints(tmp_path / "out")).get("input->output.pq") == c.get("input"),
                 what="the output checkpoint to reach the end of the queue")
        # more data while running: a second age roll
        with (tmp_path / "in.hpb").open("ab") as fh:
            fh.write(b"".join(frame(edge_message(i)) for i in range(300, 500)))
        wait_for(lambda: rows(root) == 500, what="500 rows")
    finally:
        hsp_stop(proc)
    assert dataset_counts(str(root)) == expected_counts(list(range(500)), lambda i: 0)


def test_sigkill_then_restart_keeps_every_message(tmp_path: Path) -> None:
    """A SIGKILLed hsp loses nothing: every message ends up in some committed file. Duplicates are
    only messages after the output's persisted checkpoint (committed files it did not yet cover)."""
    n = 40000
    write_stream(tmp_path / "in.hpb", [edge_message(i, day=i % 2) for i in range(n)])
    cfg = config(tmp_path, 'location = "parquet"\nmax_rows = 1500')
    root = tmp_path / "parquet"
    proc = hsp_start(cfg, hsp_env())
    try:
        wait_for(lambda: len(list(root.rglob("*.parquet"))) >= 4, what="some committed files")
    finally:
        hsp_stop(proc, signal.SIGKILL)
    committed_at_kill = len(queue_docids(tmp_path / "out", str(read_checkpoints(tmp_path / "out")["input->output.pq"])))
    hsp_batch(cfg, hsp_env())

    t = ds.dataset(str(root), format="parquet", partitioning="hive").to_table(columns=["docid"])
    seen = Counter(int(d[2:]) for d in t.column("docid").to_pylist())
    assert set(seen) == set(range(n)), f"lost: {sorted(set(range(n)) - set(seen))[:10]}"
    # The input side may queue a message twice (its own checkpoint lags the queue by up to a
    # second); each queued record is in the files at least once, and the output's own re-deliveries
    # are records after its persisted checkpoint (files committed after the last checkpoint write).
    queued = queue_docids(tmp_path / "out")
    assert not Counter(queued) - seen, "a queued record is missing from the files"
    extra = seen - Counter(queued)
    assert not extra - Counter(queued[committed_at_kill:]), "re-delivered a record from before the checkpoint"


@pytest.fixture
def moto_s3() -> Iterator[str]:
    """moto, for a fault SeaweedFS cannot produce: it creates a missing bucket on the first PUT."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


def test_failing_put_holds_checkpoint_then_retries(tmp_path: Path, moto_s3: str) -> None:
    """PUTs fail (the bucket does not exist yet): the checkpoint must not move and hsp keeps
    running; once the bucket exists the same data is committed and the checkpoint catches up."""
    write_stream(tmp_path / "in.hpb", [edge_message(i) for i in range(400)])
    cfg = config(
        tmp_path,
        f'location = "s3://hsp-late/p"\ns3_endpoint = "http://{moto_s3}"\nmax_rows = 100\nmax_age = 1\n'
        'ticker_interval = 1\ns3_access_key = "k"\ns3_secret_key = "s"',
        follow=True,
    )
    proc = hsp_start(cfg, hsp_env())
    log = tmp_path / "hsp.log"
    fs = pafs.S3FileSystem(endpoint_override=moto_s3, scheme="http", access_key="k", secret_key="s",
                           region="us-east-1", allow_bucket_creation=True)
    try:
        wait_for(lambda: b"commit failed" in log.read_bytes(), what="a failed commit")
        time.sleep(2.5)  # several checkpoint intervals with the store failing
        cps = read_checkpoints(tmp_path / "out")
        assert queue_docids(tmp_path / "out", str(cps.get("input->output.pq", "0:0"))) == []
        assert proc.poll() is None
        fs.create_dir("hsp-late")
        wait_for(lambda: (c := read_checkpoints(tmp_path / "out")).get("input->output.pq") == c.get("input"),
                 timeout=120, what="the checkpoint after the bucket appeared")
    finally:
        hsp_stop(proc)
    assert dataset_counts("hsp-late/p", fs) == expected_counts(list(range(400)), lambda i: 0)
    assert b"commit succeeded after a failure" in log.read_bytes()
