"""Disk queues and hindsight.cp: the formats other Hindsight tools read, and crash behaviour."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from hindsight_py.checkpoint.cpfile import QueuePosition, format_checkpoints, read_checkpoints, write_checkpoints
from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.queue import QueueReader, QueueWriter
from hindsight_py.queue.files import file_ids

DATA = Path(__file__).parent.parent / "data"


def fixture_raws() -> list[bytes]:
    sc = FrameScanner()
    sc.feed((DATA / "hindsight-varied.hpb").read_bytes())
    return [raw for raw, _ in sc.records(final=True)]


RAWS = fixture_raws()


def read_all(reader: QueueReader) -> list[bytes]:
    out = []
    while True:
        batch = reader.read(7)
        if not batch:
            return out
        out.extend(raw for raw, _, _ in batch)


def test_writer_produces_hindsight_queue_bytes(tmp_path: Path) -> None:
    with QueueWriter(tmp_path) as w:
        w.append(RAWS)
    assert (tmp_path / "0.log").read_bytes() == (DATA / "hindsight-varied.hpb").read_bytes()


def test_roll_after_output_size_and_reader_crosses_files(tmp_path: Path) -> None:
    with QueueWriter(tmp_path, output_size=1000) as w:
        for r in RAWS:
            w.append([r])
    ids = file_ids(tmp_path)
    assert len(ids) > 5 and ids == list(range(len(ids)))
    for i in ids[:-1]:
        size = (tmp_path / f"{i}.log").stat().st_size
        assert size >= 1000
    r = QueueReader(tmp_path)
    assert read_all(r) == RAWS


def test_positions_resume_exactly(tmp_path: Path) -> None:
    with QueueWriter(tmp_path, output_size=2000) as w:
        w.append(RAWS)  # one write: stays in one file even past output_size
        w.append(RAWS[:10])
    r = QueueReader(tmp_path)
    first = r.read(20)
    pos = first[-1][2]
    assert pos == r.position
    r2 = QueueReader(tmp_path, pos)
    assert [x for x, _, _ in first] + read_all(r2) == RAWS + RAWS[:10]


def test_writer_continues_highest_file(tmp_path: Path) -> None:
    (tmp_path / "3.log").write_bytes(frame(RAWS[0]))
    (tmp_path / "1.log").write_bytes(frame(RAWS[1]))
    with QueueWriter(tmp_path) as w:
        assert w.position() == QueuePosition(3, len(frame(RAWS[0])))
        w.append([RAWS[2]])
    assert (tmp_path / "3.log").read_bytes() == frame(RAWS[0]) + frame(RAWS[2])


def test_torn_tail_of_a_finished_file_is_skipped_and_counted(tmp_path: Path) -> None:
    torn = frame(RAWS[1])[:-7]
    (tmp_path / "0.log").write_bytes(frame(RAWS[0]) + torn)
    r = QueueReader(tmp_path)
    assert read_all(r) == [RAWS[0]]  # newest file: the torn record is waited for
    assert r.stats.discarded_bytes == 0
    (tmp_path / "1.log").write_bytes(frame(RAWS[2]))  # the writer restarted on a new file
    assert read_all(r) == [RAWS[2]]
    assert r.stats.discarded_bytes == len(torn)


def test_missing_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "0.log").write_bytes(frame(RAWS[0]))
    (tmp_path / "4.log").write_bytes(frame(RAWS[1]))
    r = QueueReader(tmp_path)
    assert read_all(r) == [RAWS[0], RAWS[1]]
    assert r.stats.skipped_files == 3


def test_start_at_pruned_file_moves_forward(tmp_path: Path) -> None:
    (tmp_path / "5.log").write_bytes(frame(RAWS[0]))
    r = QueueReader(tmp_path, QueuePosition(2, 100))
    assert read_all(r) == [RAWS[0]]


def _writer_proc(path: str, base: int, count: int) -> None:
    with QueueWriter(path, output_size=4096) as w:
        for i in range(count):
            w.append([RAWS[(base + i) % len(RAWS)]])


def test_several_processes_share_one_queue(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer_proc, args=(str(tmp_path), k * 7, 300)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    r = QueueReader(tmp_path)
    got = read_all(r)
    assert len(got) == 900
    assert r.stats.discarded_bytes == 0
    assert sorted(got) == sorted([RAWS[(k * 7 + i) % len(RAWS)] for k in range(3) for i in range(300)])


def test_checkpoint_file_format_and_round_trip(tmp_path: Path) -> None:
    values = {
        "input": QueuePosition(12, 3409),
        "analysis": QueuePosition(4, 98123),
        "input->analysis0": QueuePosition(12, 3409),
        "input->output.debug": QueuePosition(12, 1200),
        "input.tail": "/var/log/syslog:1234567",
        "input.heka_file": 2048,
    }
    write_checkpoints(tmp_path, values)
    text = (tmp_path / "hindsight.cp").read_text()
    assert "_G['input->output.debug'] = '12:1200'\n" in text
    assert "_G['input.heka_file'] = 2048\n" in text
    got = read_checkpoints(tmp_path)
    assert got["input.heka_file"] == 2048
    assert got["input.tail"] == "/var/log/syslog:1234567"
    assert QueuePosition.parse(got["input->analysis0"]) == QueuePosition(12, 3409)
    assert not (tmp_path / "hindsight.cp.tmp").exists()


@pytest.mark.parametrize("value", ["it's", 'a "q"', "back\\slash", "new\nline\r", "ü"])
def test_string_checkpoints_survive_escaping(tmp_path: Path, value: str) -> None:
    write_checkpoints(tmp_path, {"input.x": value})
    assert read_checkpoints(tmp_path) == {"input.x": value}


def test_reads_a_file_written_by_hindsight(tmp_path: Path) -> None:
    # Hindsight writes numbers with %.17g, positions with %.14g, and leaves `'` unescaped.
    (tmp_path / "hindsight.cp").write_text(
        "_G['input'] = '1:200'\n_G['input.n'] = 0.10000000000000001\n_G['input.s'] = 'a\\\"b'\n"
    )
    assert read_checkpoints(tmp_path) == {"input": "1:200", "input.n": 0.1, "input.s": 'a"b'}


def test_broken_checkpoint_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "hindsight.cp").write_text("_G['x'] = \n")
    with pytest.raises(ValueError, match="hindsight.cp"):
        read_checkpoints(tmp_path)
    (tmp_path / "hindsight.cp").write_text("while true do end\n")
    with pytest.raises(ValueError, match="too many instructions"):
        read_checkpoints(tmp_path)


def test_numbers_use_17_significant_digits() -> None:
    assert format_checkpoints({"input.x": 0.1}) == "_G['input.x'] = 0.10000000000000001\n"
    assert format_checkpoints({"input": QueuePosition(3, 1048576)}) == "_G['input'] = '3:1048576'\n"


def test_read_batch_matches_read_across_files_and_corruption(tmp_path: Path) -> None:
    with QueueWriter(tmp_path, output_size=3000) as w:
        for r in RAWS:
            w.append([r])
    # a torn tail in a finished file and garbage between records
    (tmp_path / "1.log").write_bytes(b"junk" + (tmp_path / "1.log").read_bytes() + frame(RAWS[3])[:9])
    a, b = QueueReader(tmp_path), QueueReader(tmp_path)
    via_read = read_all(a)
    via_batch: list[bytes] = []
    while True:
        got = b.read_batch(5)
        if not got:
            break
        via_batch.extend(raw for raw, _ in got)
    assert via_batch == via_read
    assert b.position == a.position
    assert (b.stats.discarded_bytes, b.stats.corrupt_runs) == (a.stats.discarded_bytes, a.stats.corrupt_runs)


def test_every_reported_position_resumes_exactly_across_files(tmp_path: Path) -> None:
    with QueueWriter(tmp_path, output_size=1500) as w:
        for r in RAWS[:30]:
            w.append([r])
    (tmp_path / "2.log").write_bytes((tmp_path / "2.log").read_bytes() + frame(RAWS[0])[:5])  # torn tail
    records = QueueReader(tmp_path).read(1000)
    assert [raw for raw, _, _ in records] == RAWS[:30]
    for i, (_, _, pos) in enumerate(records):
        rest = [raw for raw, _, _ in QueueReader(tmp_path, pos).read(1000)]
        assert rest == RAWS[i + 1 : 30], i


def test_threads_sharing_one_writer(tmp_path: Path) -> None:
    """Input runners are threads sharing the input queue writer: appends and rolls must not race."""
    import threading

    w = QueueWriter(tmp_path, output_size=2000)
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(300):
            w.append([RAWS[(k * 13 + i) % len(RAWS)]])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    r = QueueReader(tmp_path)
    got = read_all(r)
    assert sorted(got) == sorted(RAWS[(k * 13 + i) % len(RAWS)] for k in range(4) for i in range(300))
    assert r.stats.discarded_bytes == 0
    ids = file_ids(tmp_path)
    assert ids == list(range(len(ids)))  # consecutive files: no double roll
    for i in ids[:-1]:
        assert (tmp_path / f"{i}.log").stat().st_size >= 2000  # no file rolled early and left short
