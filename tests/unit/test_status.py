"""The live status screen of `hsp run`: snapshot(), render() and the redraw thread."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.kernel.status import (
    FINISHED,
    RUNNING,
    TERMINATED,
    PluginStatus,
    QueueStatus,
    ReaderStatus,
    Snapshot,
    StatusScreen,
    StatusThread,
    human_bytes,
    human_count,
    human_rate,
    queue_lag,
    render,
    snapshot,
)

QP = QueuePosition


def snap(now: float, counts: dict[str, tuple[str, str, int, int]], **kw: Any) -> Snapshot:
    """counts: name -> (type, state, processed, injected)."""
    plugins = tuple(
        PluginStatus(n, t, st, pc, ic, 1 if st == TERMINATED else 0, 4_300_000 if t != "input" else None)
        for n, (t, st, pc, ic) in counts.items()
    )
    kw.setdefault("queues", (QueueStatus("input", QP(3, 1000), 2, 5 * 1024 * 1024), QueueStatus("analysis", None, 0, 0)))
    kw.setdefault("readers", (ReaderStatus("analysis0", "input", QP(2, 0), 1_049_576),))
    kw.setdefault("terminations", ())
    return Snapshot(now=now, plugins=plugins, **kw)


BASE = {
    "input.gen": ("input", RUNNING, 0, 100_000),
    "analysis.count": ("analysis", RUNNING, 100_000, 10),
    "output.sink": ("output", RUNNING, 50_000, 0),
}


# -- humanised numbers ---------------------------------------------------------------------------
def test_humanised_numbers() -> None:
    assert human_count(0) == "0"
    assert human_count(999) == "999"
    assert human_count(1234) == "1.2k"
    assert human_count(12_345_678) == "12.3M"
    assert human_count(999_960) == "1.0M"
    assert human_count(999.7) == "1.0k"
    assert human_rate(None) == "-"
    assert human_rate(0) == "0/s"
    assert human_rate(3.46) == "3.5/s"
    assert human_rate(523.4) == "523/s"
    assert human_rate(12_300) == "12.3k/s"
    assert human_bytes(None) == "-"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1024) == "1.0 KiB"
    assert human_bytes(4.1 * 1024 * 1024) == "4.1 MiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"


# -- queue lag -----------------------------------------------------------------------------------
def test_queue_lag_across_file_boundaries() -> None:
    sizes = {0: 1000, 1: 500, 2: 700, 3: 40}
    writer = QP(3, 40)
    assert queue_lag(QP(3, 10), writer, sizes) == 30
    assert queue_lag(QP(3, 40), writer, sizes) == 0
    assert queue_lag(QP(2, 700), writer, sizes) == 40
    assert queue_lag(QP(2, 100), writer, sizes) == 600 + 40
    assert queue_lag(QP(0, 250), writer, sizes) == 750 + 500 + 700 + 40
    # a pruned file in between counts as empty; a reader ahead of the writer has no lag
    assert queue_lag(QP(0, 0), writer, {0: 1000, 2: 700, 3: 40}) == 1000 + 700 + 40
    assert queue_lag(QP(4, 0), writer, sizes) == 0


# -- render --------------------------------------------------------------------------------------
def test_render_columns_and_rates() -> None:
    prev = snap(10.0, BASE)
    cur = snap(12.0, {
        "input.gen": ("input", RUNNING, 0, 124_600),  # 12.3k/s
        "analysis.count": ("analysis", RUNNING, 124_600, 10),
        "output.sink": ("output", RUNNING, 50_007, 0),  # 3.5/s
    })
    text = render(cur, prev)
    lines = text.split("\n")
    assert len(lines) <= 30 and all(len(line) <= 100 for line in lines)
    assert "\x1b" not in text
    header = next(line for line in lines if line.startswith("PLUGIN"))
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in BASE}
    assert set(rows) == set(BASE)
    # the right-aligned numeric columns end where their headers end
    for col in ("PROCESSED", "MSG/S", "INJECTED", "MEMORY"):
        end = header.index(col) + len(col)
        for name, row in rows.items():
            assert row[end - 1] != " " and (len(row) == end or row[end] == " "), (col, name, row)
    assert "12.3k/s" in rows["input.gen"] and "124.6k" in rows["input.gen"]
    assert "12.3k/s" in rows["analysis.count"]
    assert "3.5/s" in rows["output.sink"] and "50.0k" in rows["output.sink"]
    assert "4.1 MiB" in rows["output.sink"]
    assert rows["input.gen"].split()[1:3] == ["input", "running"]
    # lag in bytes, humanised
    reader = next(line for line in lines if line.startswith("analysis0"))
    assert reader.split()[1:3] == ["input", "2:0"] and reader.endswith("1.0 MiB")
    assert lines[1] == "input queue 3:1000 (2 files, 5.0 MiB)  analysis queue - (0 files, 0 B)"
    assert lines[0] == "hsp run  3 running, 0 terminated, 0 finished  in 12.3k/s  processed 12.3k/s"
    assert "TERMINATIONS: none" in lines


def test_render_without_previous_snapshot_has_no_rates() -> None:
    lines = render(snap(1.0, BASE), None).split("\n")
    row = next(line for line in lines if line.startswith("output.sink"))
    assert " - " in row and "/s" not in row


def test_render_lists_recent_terminations() -> None:
    counts = dict(BASE, **{"output.bad": ("output", TERMINATED, 3, 0), "input.done": ("input", FINISHED, 0, 5)})
    terms = tuple((f"output.bad{i}", f"process_message() line {i}: boom\nstack traceback:\n...") for i in range(7))
    text = render(snap(2.0, counts, terminations=terms), snap(1.0, counts))
    lines = text.split("\n")
    assert "TERMINATIONS: 7, last 5" in lines
    shown = [line for line in lines if line.startswith("  output.bad")]
    assert [line.split(":")[0].strip() for line in shown] == [f"output.bad{i}" for i in range(2, 7)]
    assert all("traceback" not in line for line in lines)
    assert next(line for line in lines if line.startswith("output.bad ")).split()[2] == "terminated"
    assert next(line for line in lines if line.startswith("input.done ")).split()[2] == "finished"
    assert "  3 running, 1 terminated, 1 finished  in " in lines[0]


def test_render_fits_the_screen_with_many_plugins() -> None:
    counts = {f"analysis.p{i:03d}": ("analysis", RUNNING, i, 0) for i in range(80)}
    readers = tuple(ReaderStatus(f"output.o{i}", "analysis", QP(0, i), 10) for i in range(10))
    terms = tuple((f"analysis.p{i:03d}", "x" * 300) for i in range(10))
    text = render(snap(2.0, counts, readers=readers, terminations=terms), snap(1.0, counts))
    lines = text.split("\n")
    assert len(lines) == 30 and all(len(line) <= 100 for line in lines)
    assert any(re.match(r"… \d+ more plugins", line) for line in lines)
    assert any(re.match(r"… \d+ more readers", line) for line in lines)
    assert sum(1 for line in lines if line.startswith("  analysis.p")) >= 2
    small = render(snap(2.0, counts, readers=readers, terminations=terms), None, width=60, height=12)
    assert len(small.split("\n")) <= 12 and all(len(line) <= 60 for line in small.split("\n"))


def test_screen_keeps_previous_snapshot_and_frames_with_ansi() -> None:
    screen = StatusScreen()
    first = screen.frame(snap(1.0, BASE))
    assert first.startswith("\x1b[2J\x1b[H") and first.endswith("\x1b[J")
    second = screen.frame(snap(2.0, dict(BASE, **{"output.sink": ("output", RUNNING, 51_000, 0)})))
    assert second.startswith("\x1b[H") and "\x1b[2J" not in second
    assert "1.0k/s" in second
    assert screen.prev is not None and screen.prev.now == 2.0
    # a frame right after another computes its rates over at least min_dt (0.5 s)
    third = screen.frame(snap(2.1, dict(BASE, **{"output.sink": ("output", RUNNING, 51_100, 0)})))
    assert "1.0k/s" in third and "11.0k/s" not in third


# -- snapshot() against a kernel-shaped object ------------------------------------------------------
def _event(is_set: bool) -> threading.Event:
    e = threading.Event()
    if is_set:
        e.set()
    return e


def _plugin(name: str, ptype: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, type=ptype)


def make_kernel(tmp_path: Path) -> SimpleNamespace:
    for q, sizes in (("input", {0: 1000, 1: 2000, 2: 300}), ("analysis", {5: 50})):
        (tmp_path / q).mkdir()
        for fid, size in sizes.items():
            (tmp_path / q / f"{fid}.log").write_bytes(b"x" * size)
    (tmp_path / "input" / ".lock").write_bytes(b"")
    (tmp_path / "input" / "junk.log").write_bytes(b"x" * 99)
    inputs = [
        SimpleNamespace(plugin=_plugin("input.gen", "input"), terminated=None, finished=_event(False), injected=1234),
        SimpleNamespace(plugin=_plugin("input.once", "input"), terminated=None, finished=_event(True), injected=7),
    ]
    worker_stats = {
        "analysis.a": {"im_cnt": 3, "im_bytes": 30, "pm_cnt": 900, "pm_failures": 2, "mem_cur": 123_456},
        "analysis.again": {"pm_cnt": 4},  # terminated, then restarted by its worker
    }
    workers = [
        SimpleNamespace(thread=0, position=QP(0, 400), stats=worker_stats, exited=False,
                        plugins=[_plugin("analysis.a", "analysis"), _plugin("analysis.dead", "analysis"),
                                 _plugin("analysis.again", "analysis")]),
        SimpleNamespace(thread=1, position=None, stats={}, exited=False, plugins=[]),
    ]
    sb_stats = SimpleNamespace(process_message_count=77, inject_message_count=1, process_message_failures=0,
                               memory_current=2048)
    restarted_input = SimpleNamespace(plugin=_plugin("input.re", "input"), terminated=None, finished=_event(False), injected=1)
    inputs.append(restarted_input)
    outputs = [
        SimpleNamespace(plugin=_plugin("output.live", "output"), terminated=None, done=_event(False),
                        sb=SimpleNamespace(stats=sb_stats), stats=SimpleNamespace(processed=77),
                        checkpoint=lambda: {"input": QP(2, 100), "analysis": QP(5, 50)}),
        SimpleNamespace(plugin=_plugin("output.gone", "output"), terminated="boom", done=_event(True),
                        sb=None, stats=SimpleNamespace(processed=5), checkpoint=lambda: {"input": QP(1, 0)}),
    ]
    return SimpleNamespace(
        hcfg=SimpleNamespace(output_path=tmp_path), batch=False, _stop=threading.Event(),
        inputs=inputs, workers=workers, outputs=outputs,
        terminations=[("output.gone", "boom"), ("analysis.dead", "process_message() oops"),
                      ("analysis.again", "x"), ("input.re", "y")],
    )


def test_snapshot_of_a_kernel(tmp_path: Path) -> None:
    s = snapshot(make_kernel(tmp_path), 50.0, started=20.0)
    assert s.now == 50.0 and s.uptime == 30.0
    by = {p.name: p for p in s.plugins}
    assert [p.name for p in s.plugins] == [
        "input.gen", "input.once", "input.re", "analysis.a", "analysis.again", "analysis.dead",
        "output.gone", "output.live"]
    assert by["input.re"].state == RUNNING and by["analysis.again"].state == RUNNING
    assert by["input.gen"] == PluginStatus("input.gen", "input", RUNNING, 0, 1234, 0, None)
    assert by["input.once"].state == FINISHED
    assert by["analysis.a"] == PluginStatus("analysis.a", "analysis", RUNNING, 900, 3, 2, 123_456)
    assert by["analysis.dead"].state == TERMINATED and by["analysis.dead"].processed == 0
    assert by["output.live"] == PluginStatus("output.live", "output", RUNNING, 77, 1, 0, 2048)
    assert by["output.gone"] == PluginStatus("output.gone", "output", TERMINATED, 5, 0, 0, None)
    assert s.queues == (QueueStatus("input", QP(2, 300), 3, 3300), QueueStatus("analysis", QP(5, 50), 1, 50))
    assert s.readers == (
        ReaderStatus("analysis0", "input", QP(0, 400), 600 + 2000 + 300),
        ReaderStatus("analysis1", "input", None, None),
        ReaderStatus("output.live", "analysis", QP(5, 50), 0),
        ReaderStatus("output.live", "input", QP(2, 100), 200),
        ReaderStatus("output.gone", "input", QP(1, 0), 2300),
    )
    assert s.terminations[:2] == (("output.gone", "boom"), ("analysis.dead", "process_message() oops"))
    text = render(s, None)
    assert "output.gone: boom" in text and "2.8 KiB" in text  # analysis0's 2900 bytes


def test_snapshot_before_the_kernel_started(tmp_path: Path) -> None:
    k = SimpleNamespace(hcfg=SimpleNamespace(output_path=tmp_path / "missing"), inputs=[], workers=[], outputs=[],
                        terminations=[])
    s = snapshot(k, 1.0)
    assert s.plugins == () and s.readers == () and [q.writer for q in s.queues] == [None, None]
    assert "READERS: none" in render(s, None)


WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"


def test_status_of_a_real_batch_run(tmp_path: Path) -> None:
    """A real Kernel (input thread, analysis worker processes, output thread, rolling queue files)
    watched by the status thread: the last screen shows the exact counts and no lag."""
    from hindsight_py.kernel.supervisor import Kernel, load_configuration

    n = 3000
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(f"""output_path = "out"
output_size = 20000
analysis_threads = 2
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = {n}

[analysis.count]
filename = "{WORKLOAD}/analysis/bench_count.lua"
message_matcher = "TRUE"

[output.out]
filename = "{WORKLOAD}/output/bench_out_count.lua"
message_matcher = "TRUE"
read_queue = "input"
expected_count = {n}
mark_dir = "{tmp_path / 'marks'}"
""")
    (tmp_path / "marks").mkdir()
    kernel = Kernel(*load_configuration(cfg), batch=True)
    out = FakeTTY()
    status = StatusThread(kernel, out, interval=0.05)
    status.start()
    try:
        assert kernel.run() == 0
    finally:
        status.stop()
    assert status.error is None
    final = out.getvalue()[out.getvalue().rindex("\x1b[J") + 3 :]
    plugins_part, readers_part = final.split("\nREADER ", 1)
    rows = {line.split()[0]: line.split() for line in plugins_part.splitlines() if line.split()}
    rows.update({"reader " + line.split()[0]: line.split() for line in readers_part.splitlines()[1:] if line.split()})
    assert rows["input.gen"][1:3] == ["input", "finished"] and rows["input.gen"][5] == "3.0k"
    assert rows["analysis.count"][1:4] == ["analysis", "finished", "3.0k"]
    assert rows["output.out"][1:4] == ["output", "finished", "3.0k"]
    for reader in ("reader analysis0", "reader analysis1", "reader output.out"):
        assert rows[reader][1] == "input" and rows[reader][-2:] == ["0", "B"], rows[reader]
    assert "TERMINATIONS: none" in final


# -- the thread ----------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_thread_draws_on_a_tty_then_stops(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    out = FakeTTY()
    t = StatusThread(k, out, interval=0.02)
    assert t.enabled
    t.start()
    deadline = time.monotonic() + 5
    while out.getvalue().count("\x1b[H") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    k._stop.set()
    t.stop()
    assert not t.is_alive() and t.error is None
    text = out.getvalue()
    assert text.startswith("\x1b[2J\x1b[H") and text.count("\x1b[H") >= 3
    assert "output.live" in text and "0/s" in text  # rates once there is a previous snapshot
    final = text[text.rindex("\x1b[J") + 3 :]
    assert final.startswith("hsp run") and "\x1b" not in final and final.endswith("\n")


def test_thread_stops_with_the_kernel(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    t = StatusThread(k, FakeTTY(), interval=0.02)
    t.start()
    k._stop.set()
    t.join(2)
    assert not t.is_alive()


def test_thread_only_draws_on_a_tty_unless_forced(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    plain = io.StringIO()
    t = StatusThread(k, plain, interval=0.01)
    assert not t.enabled
    t.start()
    t.stop()
    assert plain.getvalue() == "" and t.ident is None
    off = StatusThread(k, FakeTTY(), enabled=False)
    off.start()
    off.stop()
    assert off.ident is None
    forced = StatusThread(k, plain, enabled=True, interval=0.01)
    forced.start()
    forced.stop()
    assert "output.live" in plain.getvalue()


def test_thread_disables_itself_on_error(tmp_path: Path) -> None:
    class Broken(FakeTTY):
        def write(self, s: str) -> int:
            raise OSError("EIO")

    k = make_kernel(tmp_path)
    t = StatusThread(k, Broken(), interval=0.01)
    t.start()
    t.join(2)
    assert not t.is_alive() and not t.enabled and t.error == "OSError: EIO"
    t.stop()  # no raise

    class BadKernel:
        @property
        def inputs(self) -> list[Any]:
            raise RuntimeError("torn")

    out = FakeTTY()
    t2 = StatusThread(BadKernel(), out, interval=0.01)
    t2.start()
    t2.join(2)
    t2.stop()
    assert t2.error == "RuntimeError: torn" and out.getvalue() == ""
