"""Kafka input and output plugins against a real broker (tansu), through `hsp run` subprocesses.

What a user relies on: every record reaches the other side (exactly, in a clean run), a crash
loses nothing, a consumer group splits the work, offsets and checkpoints never run ahead of
what is durable, and misconfiguration or undeliverable data gives a clear reason.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hindsight_py.checkpoint.cpfile import read_checkpoints  # noqa: E402
from hindsight_py.message.decode import decode_message  # noqa: E402
from hindsight_py.message.encode import encode_message  # noqa: E402
from hindsight_py.message.framing import FrameScanner  # noqa: E402
from tests.servers.tansu import Tansu  # noqa: E402

GROUP_CONF = '"session.timeout.ms" = 2000\n"heartbeat.interval.ms" = 500\n"auto.offset.reset" = "earliest"\n'


@pytest.fixture(scope="module")
def broker() -> Iterator[Tansu]:
    t = Tansu()
    t.start()
    try:
        yield t
    finally:
        t.stop()


# -- helpers ------------------------------------------------------------------------------------
def heka(i: int, tag: str = "m") -> bytes:
    return encode_message(
        {"Type": "kafka.test", "Payload": f"{tag} {i} " + "x" * (i % 50), "Timestamp": 1_700_000_000_000_000_000 + i,
         "Fields": {"n": i}},
        logger="producer", hostname="h", pid=1, restricted_headers=False,
    )


def produce(t: Tansu, topic: str, values: list[bytes], partition: int | None = None) -> None:
    p = Producer({"bootstrap.servers": t.bootstrap, "linger.ms": 5})
    failed: list[object] = []
    for v in values:
        while True:
            try:
                if partition is None:
                    p.produce(topic, v, on_delivery=lambda e, m: failed.append(e) if e else None)
                else:
                    p.produce(topic, v, partition=partition, on_delivery=lambda e, m: failed.append(e) if e else None)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
    assert not failed, failed


class Collector:
    """Reads a topic from the beginning (its own group) and keeps every record value."""

    def __init__(self, t: Tansu, topic: str) -> None:
        self.c = Consumer({"bootstrap.servers": t.bootstrap, "group.id": f"check-{topic}-{time.monotonic_ns()}",
                           "auto.offset.reset": "earliest", "session.timeout.ms": 2000,
                           "heartbeat.interval.ms": 500, "enable.auto.commit": False})
        self.c.subscribe([topic])
        self.values: list[bytes] = []

    def pump(self, seconds: float = 0.5) -> None:
        for m in self.c.consume(5000, seconds):
            if m.error() is None:
                self.values.append(m.value())

    def until(self, cond: Callable[[list[bytes]], bool], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond(self.values):
            assert time.monotonic() < deadline, f"timed out with {len(self.values)} records"
            self.pump()

    def settle(self, seconds: float = 3.0) -> None:
        """Keep reading until nothing new arrived for `seconds` (catches late extras)."""
        quiet_since = time.monotonic()
        n = len(self.values)
        while time.monotonic() - quiet_since < seconds:
            self.pump(0.5)
            if len(self.values) != n:
                n, quiet_since = len(self.values), time.monotonic()

    def close(self) -> None:
        self.c.close()


def committed(t: Tansu, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": t.bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, i) for i in range(partitions)], timeout=30)]
    finally:
        c.close()


def kafka_input(t: Tansu, name: str, topic: str, group: str, extra: str = "") -> str:
    return f"""[input.{name}]
filename = "kafka.lua"
instruction_limit = 0
brokerlist = "{t.bootstrap}"
topics = ["{topic}"]
{extra}
[input.{name}.consumer_conf]
"group.id" = "{group}"
{GROUP_CONF}"""


def kafka_output(t: Tansu, name: str, topic: str, extra: str = "", producer: str = "") -> str:
    return f"""[output.{name}]
filename = "kafka.lua"
message_matcher = "TRUE"
read_queue = "input"
ticker_interval = 1
async_buffer_size = 20000
brokerlist = "{t.bootstrap}"
topic = "{topic}"
{extra}
[output.{name}.producer_conf]
"linger.ms" = 5
{producer}"""


def file_output(name: str, path: Path) -> str:
    return f"""[output.{name}]
filename = "file.lua"
message_matcher = "TRUE"
read_queue = "input"
ticker_interval = 1
output_file = "{path}"
"""


class Hsp:
    """`hsp run` in its own directory and session; stderr kept in a file."""

    def __init__(self, workdir: Path, config: str, batch: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        (workdir / "hsp.toml").write_text('output_path = "out"\n' + config)
        self.err = workdir / "hsp.stderr"
        self.batch = batch
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Hsp:
        cmd = [sys.executable, "-m", "hindsight_py.cli", "run"] + (["--batch"] if self.batch else []) + ["hsp.toml"]
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stderr=err, stdout=subprocess.DEVNULL,
                                         env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
        return self

    def log(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def err_file(self, name: str) -> str:
        found = list((self.dir / "out").rglob(f"{name}.err"))
        return found[0].read_text() if found else ""


@pytest.fixture
def procs() -> Iterator[list[Hsp]]:
    started: list[Hsp] = []
    try:
        yield started
    finally:
        for h in started:
            h.cleanup()


def wait_for(cond: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def framed_records(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    sc = FrameScanner()
    sc.feed(path.read_bytes())
    return [raw for raw, _ in sc.records(final=True)]


# -- end to end ---------------------------------------------------------------------------------
def test_100k_kafka_to_kafka_exact(broker: Tansu, tmp_path: Path, procs: list[Hsp]) -> None:
    broker.create_topic("a_in", 3)
    broker.create_topic("a_out", 1)
    sent = [heka(i) for i in range(100_000)]
    produce(broker, "a_in", sent)
    h = Hsp(tmp_path, kafka_input(broker, "kin", "a_in", "ga") + kafka_output(broker, "kout", "a_out"))
    procs.append(h.start())
    out = Collector(broker, "a_out")
    try:
        try:
            out.until(lambda v: len(v) >= len(sent))
        except AssertionError as e:
            # a stall seen once under a full CI run: say where the messages stopped
            cps = read_checkpoints(tmp_path / "out") if (tmp_path / "out" / "hindsight.cp").exists() else {}
            raise AssertionError(f"{e}; checkpoints {cps}; committed offsets "
                                 f"{committed(broker, 'ga', 'a_in', 3)}; hsp log tail:\n{h.log()[-4000:]}") from None
        out.settle(2.0)
        assert h.stop() == 0
    finally:
        out.close()
    assert len(out.values) == len(sent)
    assert collections.Counter(out.values) == collections.Counter(sent)
    # every offset was committed, and only after the messages were in the queue (all of them are)
    assert sum(committed(broker, "ga", "a_in", 3)) == len(sent)
    # the output's checkpoint covers the whole input queue: every message was acknowledged
    cps = read_checkpoints(tmp_path / "out")
    assert cps["input->output.kout"] == cps["input"], cps


def test_sigkill_and_restart_loses_nothing(broker: Tansu, tmp_path: Path, procs: list[Hsp]) -> None:
    broker.create_topic("b_in", 2)
    broker.create_topic("b_out", 1)
    sent = [heka(i, "b") for i in range(40_000)]
    produce(broker, "b_in", sent)
    cfg = kafka_input(broker, "kin", "b_in", "gb") + kafka_output(broker, "kout", "b_out")
    out = Collector(broker, "b_out")
    try:
        h = Hsp(tmp_path, cfg)
        procs.append(h.start())
        out.until(lambda v: len(v) >= 5_000)
        h.kill()  # mid-run: input buffer, commits and deliveries in flight
        assert len(set(out.values)) < len(sent), "hsp finished before it was killed; the test proves nothing"
        h.start()
        want = set(sent)
        out.until(lambda v: want <= set(v))
        out.settle(3.0)
        assert h.stop() == 0
    finally:
        out.close()
    assert set(out.values) == set(sent)
    dupes = len(out.values) - len(sent)
    # duplicates only come from the window between a durable write and its commit / acknowledgement
    # (about one checkpoint interval of traffic plus what was in flight): never a re-run of everything
    assert dupes < len(sent) // 2, dupes


def test_two_instances_split_partitions(broker: Tansu, tmp_path: Path, procs: list[Hsp]) -> None:
    broker.create_topic("c_in", 4)
    first = [f"c first {i}".encode() for i in range(8_000)]
    produce(broker, "c_in", first)
    outs = [tmp_path / f"h{k}" / "records.hpb" for k in range(2)]
    hs = [
        Hsp(tmp_path / f"h{k}", kafka_input(broker, "kin", "c_in", "gc", 'decoder = "payload"') + file_output("fout", outs[k]))
        for k in range(2)
    ]
    procs.extend(hs)
    hs[0].start()
    wait_for(lambda: len(framed_records(outs[0])) > 0, what="the first instance's output")
    hs[1].start()  # joins while the first one consumes: a rebalance mid-stream

    def split() -> bool:
        ts = [re.findall(r"partitions assigned: ([^\"]*)", h.log()) for h in hs]
        if not all(ts):
            return False
        last = [set(t[-1].split(", ")) - {"none"} for t in ts]
        return bool(last[0]) and bool(last[1]) and not (last[0] & last[1]) and len(last[0] | last[1]) == 4

    wait_for(split, what="both instances to hold partitions")
    second = [f"c second {i}".encode() for i in range(8_000)]
    produce(broker, "c_in", second)
    want = set(first) | set(second)
    got: list[list[tuple[bytes, int]]] = [[], []]

    def collected() -> bool:
        for k in range(2):
            got[k] = []
            for raw in framed_records(outs[k]):
                m = decode_message(raw)
                part = [f.values[0] for f in m.fields if f.name == b"kafka_partition"][0]
                got[k].append((m.payload or b"", int(part)))
        return want <= {p for g in got for p, _ in g}

    wait_for(collected, timeout=180, what="every record in one of the outputs")
    for h in hs:
        assert h.stop() == 0
    collected()
    payloads = [p for g in got for p, _ in g]
    assert set(payloads) == want
    assert len(payloads) == len(want), f"{len(payloads) - len(want)} duplicates: a clean rebalance commits exactly what was handed over"
    # after the rebalance each instance read its own partitions
    late = [{part for p, part in g if p in set(second)} for g in got]
    assert late[0] and late[1] and not (late[0] & late[1]), late
    for k, h in enumerate(hs):
        assert {p for p, _ in got[k]}, f"instance {k} got nothing"


# -- focused --------------------------------------------------------------------------------------
API_ERRORS = r"""
require "kafka"
local ok, err
local function expect(want, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected failure: " .. want)
  if want:sub(1,1) == "^" then assert(err:match(want), err) else assert(err == want, err) end
end
expect("bad argument #0 to '?' (incorrect number of arguments)", kafka.producer)
expect("invalid broker list", kafka.producer, "")
expect("bad argument #2 to '?' (table expected, got boolean)", kafka.producer, "brokerlist", true)
expect("^Failed to set message.max.bytes = foo", kafka.producer, "local host", {["message.max.bytes"] = "foo"})
expect("^Failed to set message.max.bytes = 1 : ", kafka.producer, "local host", {["message.max.bytes"] = 1})
expect("^Failed to set message.max.bytes = true", kafka.producer, "local host", {["message.max.bytes"] = true})
expect("invalid config key type: function", kafka.producer, "brokerlist", {[assert] = true})
expect("invalid config value type: function", kafka.producer, "brokerlist", {foo = assert})
expect("bad argument #0 to '?' (incorrect number of arguments)", kafka.consumer)
expect("bad argument #1 to '?' (string expected, got boolean)", kafka.consumer, true, nil, nil)
expect("bad argument #2 to '?' (table expected, got boolean)", kafka.consumer, "test", true, nil)
expect("bad argument #2 to '?' (the topics array is empty)", kafka.consumer, "test", {}, nil)
expect("group.id must be set", kafka.consumer, "test", {"test"}, {})
expect("invalid broker list", kafka.consumer, "", {"test"}, {["group.id"] = "foo"})
expect("^Failed to set auto.offset.reset = foobar : ", kafka.consumer, "test", {"test"}, {["group.id"] = "foo"}, {["auto.offset.reset"] = "foobar"})
expect("^Failed to set auto.offset.reset = 0 : ", kafka.consumer, "test", {"test"}, {["group.id"] = "foo"}, {["auto.offset.reset"] = 0})
expect("invalid config value type: function", kafka.consumer, "test", {"test"}, {["group.id"] = "foo"}, {["auto.offset.reset"] = assert})
expect("invalid config key type: function", kafka.consumer, "test", {"test"}, {["group.id"] = "foo"}, {[assert] = true})
expect("invalid topic partition > INT32_MAX", kafka.consumer, "test", {"test:9000000000"}, {["group.id"] = "foo"})
expect("invalid topic partition < 0", kafka.consumer, "test", {"test:-1"}, {["group.id"] = "foo"})
expect("topics must be an array of strings", kafka.consumer, "test", {true}, {["group.id"] = "foo"})
expect("topics must be an array of strings", kafka.consumer, "test", {"one", item = "test"}, {["group.id"] = "foo"})
expect("^enable.auto.commit cannot be enabled", kafka.consumer, "test", {"test"}, {["group.id"] = "foo", ["enable.auto.commit"] = true})
local p = kafka.producer("127.0.0.1:1", {})
assert(not p:has_topic("t"))
p:create_topic("t")
assert(p:has_topic("t"))
expect("invalid topic", p.send, p, "u", -1, p, "x")
expect("bad argument #0 to '?' (incorrect number of arguments)", p.has_topic)
p:destroy_topic("t")
assert(not p:has_topic("t"))
assert(kafka.version() == "1.0.0")
assert(type(p) == "userdata")
function process_message() return 0 end
"""


def test_lua_api_argument_errors_match_the_c_module() -> None:
    """Hindsight's kafka plugins rely on these checks and texts (lua_sandbox_extensions'
    kafka/tests/test_errors.lua); no broker is contacted for any of them."""
    from hindsight_py.sandbox import Sandbox

    sb = Sandbox(API_ERRORS.encode(), "input", {"Logger": "api"})
    try:
        assert sb.input_process(None) == (0, None)
    finally:
        sb.destroy()


def test_bad_consumer_config_terminates_with_reason(broker: Tansu, tmp_path: Path) -> None:
    cfg = kafka_input(broker, "kin", "d_in", "gd").replace('"session.timeout.ms" = 2000', '"session.timeout.ms" = "soon"')
    h = Hsp(tmp_path / "a", cfg + file_output("fout", tmp_path / "a" / "x.hpb"), batch=True)
    h.start()
    assert h.proc is not None and h.proc.wait(120) == 2  # a plugin terminated
    assert "Failed to set session.timeout.ms = soon" in h.err_file("kin"), h.log()

    h2 = Hsp(tmp_path / "b", kafka_input(broker, "kin", "d_in", "gd").replace(f'brokerlist = "{broker.bootstrap}"', 'brokerlist = ""')
             + file_output("fout", tmp_path / "b" / "x.hpb"), batch=True)
    h2.start()
    assert h2.proc is not None and h2.proc.wait(120) == 2
    assert "invalid broker list" in h2.err_file("kin"), h2.log()

    h3 = Hsp(tmp_path / "c", kafka_input(broker, "kin", "d_in", "gd") + kafka_output(
        broker, "kout", "d_out", producer='"message.max.bytes" = 1\n'))
    h3.start()
    try:
        wait_for(lambda: h3.err_file("kout") != "", what="the output's .err file")
        assert "Failed to set message.max.bytes = 1" in h3.err_file("kout")
        assert h3.proc is not None and h3.proc.poll() is None, "a bad plugin must not take the kernel down"
    finally:
        h3.stop()


def test_undecodable_records_counted_and_skipped(broker: Tansu, tmp_path: Path, procs: list[Hsp]) -> None:
    broker.create_topic("e_in", 1)
    good = [heka(i, "e") for i in range(300)]
    bad = [b"not a heka message %d" % i for i in range(7)]
    values = good[:100] + bad[:3] + good[100:200] + bad[3:] + good[200:]
    produce(broker, "e_in", values, partition=0)
    out = tmp_path / "records.hpb"
    h = Hsp(tmp_path, kafka_input(broker, "kin", "e_in", "ge") + file_output("fout", out))
    procs.append(h.start())
    wait_for(lambda: len(framed_records(out)) >= len(good), what="the valid records")
    assert h.stop() == 0
    assert framed_records(out) == good  # in order, the invalid ones left out
    log = h.log()
    assert "7 invalid Heka records skipped in total" in log, log
    assert "invalid protobuf string" in log
    assert h.err_file("kin") == "", "an invalid record must not terminate the plugin"
    assert committed(broker, "ge", "e_in", 1) == [len(values)]  # skipped records are consumed too


def test_delivery_failure_keeps_checkpoint(tmp_path: Path, procs: list[Hsp]) -> None:
    with Tansu() as t:
        t.create_topic("f_out", 1)
        lines = tmp_path / "lines.txt"
        lines.write_text("".join(f"line {i}\n" for i in range(50)))
        cfg = f"""[input.fin]
filename = "file.lua"
input_filename = "{lines}"
ticker_interval = 1
""" + kafka_output(t, "kout", "f_out", extra='encoder = "payload"',
                   producer='"message.timeout.ms" = 3000\n"retry.backoff.ms" = 100\n')
        h = Hsp(tmp_path, cfg)
        procs.append(h.start())
        out = Collector(t, "f_out")
        try:
            out.until(lambda v: len(v) >= 50, timeout=120)
        finally:
            out.close()
        assert sorted(out.values) == sorted(f"line {i}".encode() for i in range(50))

        def delivered_all() -> bool:
            cps = read_checkpoints(tmp_path / "out")
            return "input->output.kout" in cps and cps["input->output.kout"] == cps.get("input")

        wait_for(delivered_all, what="the output checkpoint to cover the delivered messages")
        before = read_checkpoints(tmp_path / "out")["input->output.kout"]
        t.stop()  # a real fault: the broker is gone, so these can never be acknowledged
        with lines.open("a") as f:
            f.write("".join(f"late {i}\n" for i in range(20)))
        wait_for(lambda: h.err_file("kout") != "", timeout=120, what="the output to be terminated")
        assert "kafka delivery failed" in h.err_file("kout"), h.err_file("kout")
        time.sleep(1.5)  # a checkpoint tick after the termination
        cps = read_checkpoints(tmp_path / "out")
        assert cps["input"] != before, "the late lines were queued"
        assert cps["input->output.kout"] == before, "the checkpoint passed undelivered messages"
        assert h.stop() != 0  # hsp reports that a plugin was terminated
