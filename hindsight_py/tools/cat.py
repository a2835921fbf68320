"""`hsp cat`: read framed Heka files the way lsb_heka_cat does, and a little more.

Differences from lsb_heka_cat, chosen for operators:
- several files in one call (counts are totals);
- `-n N` shows the last N *matching* messages, found by a full scan rather than a backwards header
  guess, so it is exact;
- corruption is reported (discarded bytes and runs) on stderr, and a torn record at the end of a
  file that is not followed is counted instead of silently swallowed;
- `--json` prints one JSON object per message.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import click

from hindsight_py.message.framing import DEFAULT_MAX_MESSAGE_SIZE, FrameScanner, StopFlag, frame, read_framed_file
from hindsight_py.message.model import Message
from hindsight_py.message.text import format_json, format_text

Formatter = Callable[[bytes, Message], bytes]


def _text(raw: bytes, msg: Message) -> bytes:
    return format_text(msg)


def _json(raw: bytes, msg: Message) -> bytes:
    return format_json(msg)


def _framed(raw: bytes, msg: Message) -> bytes:
    return frame(raw)


@dataclass
class CatTotals:
    processed: int = 0
    matched: int = 0
    discarded_bytes: int = 0
    corrupt_runs: int = 0
    failed_files: list[str] = field(default_factory=list)


def _records(
    fh: BinaryIO,
    max_message_size: int,
    follow: bool,
    totals: CatTotals,
    stop: StopFlag,
    on_idle: Callable[[], None] | None,
) -> Iterator[tuple[bytes, Message]]:
    scanner = FrameScanner(max_message_size=max_message_size)
    try:
        for raw, msg in read_framed_file(fh, scanner, follow=follow, stop=stop, on_idle=on_idle):
            assert msg is not None
            yield raw, msg
    finally:
        totals.discarded_bytes += scanner.stats.discarded_bytes
        totals.corrupt_runs += scanner.stats.corrupt_runs


@click.command("cat")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("-t", "--text", "mode", flag_value="text", default=True, help="heka_debug text format (default).")
@click.option("--json", "mode", flag_value="json", help="One JSON object per message.")
@click.option("--framed", "mode", flag_value="framed", help="Re-emit the matching records as a framed Heka stream.")
@click.option("-c", "--count", "mode", flag_value="count", help="Only print the message counts.")
@click.option("-m", "--matcher", default="TRUE", show_default=True, help="message_matcher expression.")
@click.option("-n", "last", type=click.IntRange(min=0), default=None, help="Only the last N matching messages.")
@click.option("-f", "--follow", is_flag=True, help="Keep reading as the (last) file grows.")
@click.option("--max-message-size", type=click.IntRange(min=1024), default=DEFAULT_MAX_MESSAGE_SIZE, show_default=True, help="Largest record accepted; bigger ones count as corrupt.")
def cat_command(files: tuple[str, ...], mode: str, matcher: str, last: int | None, follow: bool, max_message_size: int) -> None:
    """Print the messages of framed Heka stream FILES ('-' for stdin), e.g. Hindsight queue files."""
    from hindsight_py.matcher import MatcherSyntaxError, compile_matcher

    try:
        match = compile_matcher(matcher)
    except MatcherSyntaxError as e:
        raise click.UsageError(f"invalid message matcher {matcher!r}: {e}") from None

    fmt: Formatter | None = {"text": _text, "json": _json, "framed": _framed}.get(mode)
    out = sys.stdout.buffer
    totals = CatTotals()
    stop = StopFlag()
    tail: collections.deque[bytes] | None = collections.deque(maxlen=last) if last is not None else None

    def emit(raw: bytes, msg: Message) -> None:
        totals.processed += 1
        if not match(msg):
            return
        totals.matched += 1
        if fmt is None:
            return
        data = fmt(raw, msg)
        if tail is not None:
            tail.append(data)
        else:
            out.write(data)
            if follow:
                out.flush()

    def caught_up() -> None:
        # Following: the backlog is read, so print the last N and stream from here on.
        nonlocal tail
        if tail is not None:
            _flush_tail(tail, out)
            tail = None
        out.flush()

    try:
        for i, name in enumerate(files):
            following = follow and i == len(files) - 1 and name != "-"
            _run_file(name, max_message_size, following, totals, stop, emit, caught_up)
    except KeyboardInterrupt:
        pass
    if tail is not None:
        _flush_tail(tail, out)
    out.flush()

    summary = f"Processed: {totals.processed}, matched: {totals.matched} messages"
    if mode == "count":
        click.echo(summary)
    else:
        click.echo(summary, err=True)
    if totals.discarded_bytes:
        click.echo(
            f"Corrupt: discarded {totals.discarded_bytes} bytes in {totals.corrupt_runs} run(s)",
            err=True,
        )
    if totals.failed_files:
        raise SystemExit(1)


def _flush_tail(tail: collections.deque[bytes], out: BinaryIO) -> None:
    for data in tail:
        out.write(data)
    tail.clear()


def _run_file(
    name: str,
    max_message_size: int,
    follow: bool,
    totals: CatTotals,
    stop: StopFlag,
    emit: Callable[[bytes, Message], None],
    on_idle: Callable[[], None],
) -> None:
    try:
        fh: BinaryIO = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as e:
        click.echo(f"hsp cat: cannot open {name}: {e.strerror or e}", err=True)
        totals.failed_files.append(name)
        return
    try:
        for raw, msg in _records(fh, max_message_size, follow, totals, stop, on_idle):
            emit(raw, msg)
    except OSError as e:
        click.echo(f"hsp cat: error reading {name}: {e.strerror or e}", err=True)
        totals.failed_files.append(name)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
