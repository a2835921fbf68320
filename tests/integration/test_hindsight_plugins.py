"""Real Hindsight plugins (the standard benchmark workload, written for Hindsight) run unchanged.

Each plugin file is loaded byte for byte from hindsight_py/bench/workload and driven through the
sandbox's Python API the way the kernel drives it; the assertions check what Hindsight's own run
of the workload checks (counts, preserved state, injected payloads, files written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.sandbox import Sandbox

WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"
N = 500


def plugin(kind: str, name: str) -> bytes:
    return (WORKLOAD / kind / f"{name}.lua").read_bytes()


def cfg(name: str, **extra: Any) -> dict[str, Any]:
    return {"Logger": name, "Hostname": "bench-host", "Pid": 4242, **extra}


def generate(tmp_path: Path, n: int = N) -> list[tuple[bytes, Any]]:
    injected: list[tuple[bytes, Any]] = []
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    sb = Sandbox(
        plugin("input", "bench_gen"),
        "input",
        cfg("input.bench_gen", instruction_limit=0, message_count=n, mark_dir=str(marks)),
        chunkname="bench_gen.lua",
        on_inject=lambda pb, cp: injected.append((pb, cp)) or 0,
    )
    assert sb.input_process(None) == (0, None)
    assert (marks / "gen.done").read_text() == str(n)
    return injected


def test_bench_gen_injects_messages_with_ordinal_checkpoints(tmp_path: Path) -> None:
    injected = generate(tmp_path)
    assert [cp for _, cp in injected] == list(range(1, N + 1))
    msgs = [decode_message(pb) for pb, _ in injected]
    assert sum(1 for m in msgs if m.type == b"foo") == N // 10
    m = msgs[0]
    assert m.logger == b"bench.gen" and m.hostname == b"bench-host" and m.pid == 4242
    names = {f.name: f for f in m.fields}
    assert set(names) == {b"host", b"status", b"bytes"}
    assert names[b"status"].value_type == 3


def test_bench_gen_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    injected: list[Any] = []
    sb = Sandbox(
        plugin("input", "bench_gen"),
        "input",
        cfg("input.bench_gen", instruction_limit=0, message_count=20),
        on_inject=lambda pb, cp: injected.append(cp) or 0,
    )
    sb.input_process(15)
    assert injected == [16, 17, 18, 19, 20]


@pytest.fixture()
def records(tmp_path: Path) -> list[tuple[bytes, Any]]:
    return [(pb, decode_message(pb)) for pb, _ in generate(tmp_path)]


def test_bench_count_counts_and_preserves(tmp_path: Path, records: list[tuple[bytes, Any]]) -> None:
    state = tmp_path / "analysis.bench_count.data"
    sb = Sandbox(plugin("analysis", "bench_count"), "analysis", cfg("analysis.bench_count", preserve_data=True), state_file=state)
    for i in range(0, N, 100):
        sb.process_batch(records[i : i + 100])
    sb.timer_event(0, True)
    sb.destroy()
    text = state.read_text()
    assert f'_G["cnt"] = {N}' in text
    again = Sandbox(plugin("analysis", "bench_count"), "analysis", cfg("analysis.bench_count", preserve_data=True), state_file=state)
    assert again.global_value("cnt") == N


def test_bench_work_reads_five_values(records: list[tuple[bytes, Any]]) -> None:
    sb = Sandbox(plugin("analysis", "bench_work"), "analysis", cfg("analysis.bench_work"))
    res = sb.process_batch(records)
    assert res.processed == N and res.statuses == []
    assert sb.global_value("total") == N
    assert sb.global_value("last_ts") == pytest.approx(records[-1][1].timestamp, rel=1e-15)


def test_bench_work_cb_publishes_a_circular_buffer(records: list[tuple[bytes, Any]]) -> None:
    sb = Sandbox(plugin("analysis", "bench_work_cb"), "analysis", cfg("analysis.bench_work_cb"))
    res = sb.process_batch(records)
    assert res.processed == N
    sb.timer_event(1_700_000_100 * 10**9)
    assert len(sb.injected) == 1
    msg = decode_message(sb.injected[0][0])
    assert msg.type == b"inject_payload"
    assert msg.field(b"payload_type") == b"cbuf"
    assert msg.field(b"payload_name") == b"bench_work_cb"
    header, *rows = msg.payload.decode().splitlines()  # type: ignore[union-attr]
    assert '"rows":60' in header and '"columns":3' in header
    assert len(rows) == 60
    total_requests = sum(float(r.split("\t")[0]) for r in rows if r.split("\t")[0] != "nan")
    assert total_requests == N  # every message falls in the 60 s window (1 µs apart)


def test_bench_hsr_read_reinjects_a_stream(tmp_path: Path, records: list[tuple[bytes, Any]]) -> None:
    stream = tmp_path / "stream.hpb"
    stream.write_bytes(b"".join(frame(raw) for raw, _ in records))
    marks = tmp_path / "marks"
    injected: list[bytes] = []
    sb = Sandbox(
        plugin("input", "bench_hsr_read"),
        "input",
        cfg("input.bench_hsr_read", instruction_limit=0, input_file=str(stream), inject=True, read_fields=True, mark_dir=str(marks)),
        on_inject=lambda pb, cp: injected.append(pb) or 0,
    )
    assert sb.input_process(None) == (0, None)
    assert injected == [raw for raw, _ in records]
    cnt, total = (marks / "hsr.done").read_text().split()
    assert int(cnt) == N
    assert float(total) == sum(m.field(b"bytes") for _, m in records)


def test_bench_out_file_writes_the_framed_stream(tmp_path: Path, records: list[tuple[bytes, Any]]) -> None:
    out = tmp_path / "out.hpb"
    sb = Sandbox(plugin("output", "bench_out_file"), "output", cfg("output.bench_out_file", output_file=str(out), expected_count=N))
    for seq, (raw, msg) in enumerate(records, 1):
        assert sb.output_message(raw, msg, seq) == (0, None)
    sb.timer_event(0, True)
    assert out.read_bytes() == b"".join(frame(raw) for raw, _ in records)
    sc = FrameScanner()
    sc.feed(out.read_bytes())
    assert len(list(sc.records(final=True))) == N


def test_bench_out_count_marks_completion(tmp_path: Path, records: list[tuple[bytes, Any]]) -> None:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    sb = Sandbox(plugin("output", "bench_out_count"), "output", cfg("output.bench_out_count", expected_count=N, mark_dir=str(marks)))
    for seq, (raw, msg) in enumerate(records, 1):
        sb.output_message(raw, msg, seq)
    assert (marks / "out.done").read_text() == str(N)
    sb.timer_event(0, True)
    assert (marks / "out.count").read_text() == str(N)
