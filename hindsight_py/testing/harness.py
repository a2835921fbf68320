"""Run one analysis or output plugin in the real hsp sandbox over a list of messages.

This is the engine behind `hsp test`, the pytest fixtures and the dashboard's "try it first":

    run = run_plugin("counter.lua", {"message_matcher": "TRUE", "ticker_interval": 60}, messages)
    run.terminated        # None, or lua_sandbox's reason
    run.injected[0].message.payload

What is the same as under `hsp run --batch` (so a passing test means the deployed plugin behaves
the same way on the same messages):
- the sandbox (`hindsight_py.sandbox.Sandbox`), its limits and hsp's defaults for the plugin type
  (analysis: restricted_headers, process_message_inject_limit 0, timer_event_inject_limit 10), the
  cfg validated by the same code as a TOML plugin table, `read_config` answering from the same
  runtime configuration (Logger `<type>.<name>`, Hostname, thread 0, ...);
- the cfg's message_matcher, compiled by hsp's matcher;
- message-driven time: a clock that is the largest Timestamp seen so far (seconds); when it moves
  and reaches the next tick, the messages up to and including that one are processed, then
  `timer_event(clock)`, and the next tick is `clock + ticker_interval`. The clock starts at 0 with
  the first tick at `ticker_interval`, exactly as the analysis worker in batch mode does, so with
  real Timestamps the first timer_event follows the first message. At the end,
  `timer_event(clock, true)`.

What differs, on purpose:
- `log_level` is 7 (debug), so `print()` in output plugins reaches `PluginRun.log`;
- an output plugin's -3 (retry) is recorded as a status and the message is not offered again
  (Hindsight retries it every second, for ever); update_checkpoint calls are logged;
- a failing shutdown timer_event of an output plugin is reported in `terminated` (Hindsight only
  logs it);
- nothing is written to a queue: what the plugin injects is collected in `PluginRun.injected`.

Errors: a plugin that cannot be created (syntax error, error at load, invalid cfg) raises
`PluginLoadError` (a `SandboxError`) whose text is the reason; anything the plugin does wrong
once running is in `PluginRun.terminated` / `PluginRun.statuses`, never an exception. Messages
that cannot be decoded or converted raise `ValueError` subclasses naming the message.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from hindsight_py.config.model import ConfigError, HindsightConfig, PluginConfig, PluginDefaults, runtime_config
from hindsight_py.iomods.context import IoContext
from hindsight_py.matcher import MatcherSyntaxError, compile_matcher
from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.framing import FrameScanner, read_framed_file
from hindsight_py.message.model import Message
from hindsight_py.message.writer import write_message
from hindsight_py.sandbox import Sandbox, SandboxError, SandboxStats, Terminated
from hindsight_py.testing.jsonl import JsonMessageError, message_from_json, read_jsonl

__all__ = [
    "Injected",
    "PluginRun",
    "PluginSession",
    "PluginLoadError",
    "MatcherError",
    "MessageInput",
    "run_plugin",
    "match",
    "to_record",
    "to_records",
    "load_messages",
    "load_cfg",
    "LoadedCfg",
]

MatcherError = MatcherSyntaxError
"""The error `match()` raises for an invalid matcher (hindsight_py.matcher's MatcherSyntaxError)."""

MessageInput = Union[bytes, Message, Mapping[str, Any], tuple[bytes, Message]]
"""A message given to the harness: raw Heka protobuf, a decoded Message, the JSON form, or a
(raw, Message) record as `load_messages` returns them (the raw bytes are then trusted to be the
Message's encoding)."""

_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
SUPPORTED_TYPES = ("analysis", "output")


class PluginLoadError(SandboxError):
    """The plugin could not be created: Lua syntax error, error while loading, invalid cfg.

    `str(error)` is the reason (for a cfg error: the key and what is wrong with it)."""


@dataclass
class Injected:
    """One message the plugin injected."""

    raw: bytes  # the Heka protobuf, as it would be written to the analysis queue
    message: Message  # decoded
    payload_type: str | None  # for inject_payload: its type ("txt", "cbuf", "cbufd", "tsv", ...), else None
    payload_name: str | None  # for inject_payload with a name, else None

    @property
    def payload(self) -> str | None:
        """The Payload as text (invalid UTF-8 replaced), None when absent."""
        p = self.message.payload
        return None if p is None else p.decode("utf-8", "replace")

    def field(self, name: str, fi: int = 0, ai: int = 0) -> Any:
        """`read_message("Fields[name]", fi, ai)` of the injected message (bytes for text)."""
        return self.message.field(name.encode(), fi, ai)


@dataclass
class PluginRun:
    """Everything a plugin did during a run."""

    injected: list[Injected] = field(default_factory=list)
    # (message index, process_message status, status message) for every non-zero status;
    # the index is 0-based over all messages given (matched or not).
    statuses: list[tuple[int, int, str | None]] = field(default_factory=list)
    terminated: str | None = None  # the termination reason, or None
    processed: int = 0  # messages handed to process_message
    matched: int = 0  # messages the message_matcher accepted
    log: list[str] = field(default_factory=list)  # print() lines and sandbox warnings
    stats: SandboxStats = field(default_factory=SandboxStats)
    # Every timer_event call: (ns given to the plugin, shutdown flag), in order.
    timer_events: list[tuple[int, bool]] = field(default_factory=list)
    name: str = ""  # the plugin's Logger, `<type>.<name>`

    @property
    def messages(self) -> list[Message]:
        """The decoded injected messages."""
        return [i.message for i in self.injected]

    def payloads(self, payload_type: str | None = None, payload_name: str | None = None) -> list[str]:
        """Payload texts of the inject_payload messages, optionally of one type and/or name."""
        return [
            i.payload or ""
            for i in self.injected
            if i.payload_type is not None
            and (payload_type is None or i.payload_type == payload_type)
            and (payload_name is None or i.payload_name == payload_name)
        ]


# -- messages ----------------------------------------------------------------------------------


def _encode(msg: Message) -> bytes:
    fields = [(f.name, f.type, f.representation, f.values) for f in msg.fields]
    return write_message(
        msg.uuid, msg.timestamp, msg.type, msg.logger, msg.severity, msg.payload, msg.env_version, msg.pid,
        msg.hostname, fields,
    )


def to_record(m: MessageInput, index: int = 1, default_timestamp: int = 0) -> tuple[bytes, Message]:
    """(raw protobuf, Message) of one message given as bytes, a Message or a JSON-form mapping.

    `index` (1-based) names the message in errors and gives a mapping without Uuid its default."""
    if isinstance(m, Message):
        return _encode(m), m
    if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], bytes) and isinstance(m[1], Message):
        return m[0], m[1]  # a (raw, Message) record, as load_messages and to_records return them
    if isinstance(m, (bytes, bytearray, memoryview)):
        raw = bytes(m)
        try:
            return raw, decode_message(raw)
        except DecodeError as e:
            raise ValueError(f"message {index}: not a valid Heka protobuf: {e}") from None
    if isinstance(m, Mapping):
        try:
            return message_from_json(m, index=index, default_timestamp=default_timestamp)
        except JsonMessageError as e:
            raise JsonMessageError(e.reason, key=e.key, source=f"message {index}") from None
    raise TypeError(f"message {index}: expected bytes, Message or a mapping, got {type(m).__name__}")


def to_records(messages: Iterable[MessageInput]) -> list[tuple[bytes, Message]]:
    """`to_record` over a sequence; a mapping without Timestamp takes the previous message's."""
    out: list[tuple[bytes, Message]] = []
    ts = 0
    for i, m in enumerate(messages, 1):
        rec = to_record(m, i, ts)
        ts = rec[1].timestamp
        out.append(rec)
    return out


def load_messages(path: str | os.PathLike[str]) -> list[tuple[bytes, Message]]:
    """The messages of a `.jsonl` (JSON lines, see jsonl.py) or a framed Heka file (`.hpb`, a
    queue file, `hsp cat --framed` output). Other names are recognised by content: a framed
    stream starts with the record separator byte 0x1e."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(1)
    except OSError as e:
        raise FileNotFoundError(f"cannot read {p}: {e.strerror or e}") from None
    if p.suffix in (".jsonl", ".json", ".ndjson") or (p.suffix not in (".hpb", ".log") and head not in (b"\x1e", b"")):
        return read_jsonl(p)
    scanner = FrameScanner()
    with open(p, "rb") as fh:
        out = [(raw, msg) for raw, msg in read_framed_file(fh, scanner) if msg is not None]
    if scanner.stats.discarded_bytes:
        raise ValueError(
            f"{p}: {scanner.stats.discarded_bytes} bytes in {scanner.stats.corrupt_runs} run(s) are not Heka "
            "records (corrupt or not a framed Heka stream)"
        )
    return out


def match(matcher: str, messages: Iterable[MessageInput]) -> list[bool]:
    """Which of `messages` the message_matcher accepts; raises MatcherError for a bad matcher."""
    m = compile_matcher(matcher)
    return [bool(m(msg)) for _, msg in to_records(messages)]


# -- configuration -----------------------------------------------------------------------------


@dataclass
class LoadedCfg:
    """A plugin cfg read from a file: its keys, and the type/name the file gave (if any)."""

    values: dict[str, Any]
    plugin_type: str | None = None
    name: str | None = None
    lenient: bool = False  # Lua cfg: Hindsight's lenient number/string rules


def load_cfg(path: str | os.PathLike[str]) -> LoadedCfg:
    """A plugin cfg from a Hindsight `.cfg` (Lua syntax) or an hsp `.toml` file.

    A TOML file holds one plugin table (`[analysis.NAME]` or `[output.NAME]`; top-level hsp keys
    such as output_path are ignored), or just the plugin's keys at the top level. Raises
    ConfigError."""
    p = Path(path)
    if p.suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read the configuration: {e.strerror or e}", file=p) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"TOML syntax error: {e}", file=p) from None
        tables = [(t, n, v) for t in ("input", "analysis", "output") if isinstance(doc.get(t), dict)
                  for n, v in doc[t].items()]
        if not tables:
            return LoadedCfg(dict(doc), name=p.stem)
        if len(tables) > 1:
            names = ", ".join(f"[{t}.{n}]" for t, n, _ in tables)
            raise ConfigError(f"expected one plugin table, found {len(tables)}: {names}", file=p)
        ptype, name, values = tables[0]
        if not isinstance(values, dict):
            raise ConfigError(f"{ptype}.{name} must be a plugin table", file=p)
        return LoadedCfg(dict(values), ptype, name)
    from hindsight_py.config.lua_cfg import LuaOpaque, evaluate_lua

    try:
        source = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the configuration: {e.strerror or e}", file=p) from None
    ev = evaluate_lua(source, file=p)
    values = {k: v for k, v in ev.globals.items() if not isinstance(v, LuaOpaque)}
    return LoadedCfg(values, None, p.stem, lenient=True)


def _hindsight_config(output_path: Path, lua_path: str | None) -> HindsightConfig:
    from hindsight_py.config.toml import hsp_default_paths
    from hindsight_py.config.validate import Table, build_hindsight_config

    top: dict[str, Any] = dict(hsp_default_paths())
    if lua_path:
        top["analysis_lua_path"] += ";" + lua_path
        top["io_lua_path"] += ";" + lua_path
    top.update(output_path=str(output_path), sandbox_run_path=str(output_path / "run"))
    for ptype in ("input", "analysis", "output"):
        top[f"{ptype}_defaults"] = {}
    return build_hindsight_config(Table(top, file=None, locate=lambda k: None, lenient=False), source=None, syntax="toml")


def _plugin_config(
    hcfg: HindsightConfig, lua_file: Path, cfg: Mapping[str, Any], plugin_type: str, name: str, lenient: bool
) -> PluginConfig:
    from hindsight_py.config.validate import Table, build_plugin_config

    items = dict(cfg)
    items["filename"] = str(lua_file)
    t = Table(items, file=None, locate=lambda k: None, lenient=lenient)
    return build_plugin_config(
        t,
        plugin_type=plugin_type,  # type: ignore[arg-type]
        name=name,
        defaults=PluginDefaults.builtin(plugin_type),  # type: ignore[arg-type]
        run_dir=hcfg.run_dir(plugin_type),  # type: ignore[arg-type]
        install_path=hcfg.sandbox_install_path,
        cfg_lua="",
        cfg_path=None,
        filename_base=lua_file.parent,
    )


def _source(source: bytes | str | os.PathLike[str]) -> tuple[bytes, Path | None]:
    """(Lua source, its file or None). A str naming a `.lua` file (no newline) is a path."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), None
    if isinstance(source, str) and ("\n" in source or not source.rstrip().endswith(".lua")):
        return source.encode(), None
    p = Path(source)
    try:
        return p.read_bytes(), p
    except OSError as e:
        raise FileNotFoundError(f"cannot read the plugin {p}: {e.strerror or e}") from None


# -- running -----------------------------------------------------------------------------------


class PluginSession:
    """A plugin loaded in a scratch sandbox, driven step by step (run_plugin does it all at once).

        with PluginSession("p.lua", cfg) as s:
            s.process(messages)          # matcher, process_message, message-driven timer_event
            s.timer_event()              # one more timer_event at the current clock
        run = s.run                      # close() gave the final timer_event(clock, true)

    Not thread-safe; one session per thread. Raises PluginLoadError at creation."""

    def __init__(
        self,
        source: bytes | str | os.PathLike[str],
        cfg: Mapping[str, Any],
        *,
        plugin_type: str = "analysis",
        message_time: bool = True,
        state_dir: os.PathLike[str] | str | None = None,
        name: str | None = None,
        lua_path: str | None = None,
        lenient: bool = False,
    ) -> None:
        if plugin_type not in SUPPORTED_TYPES:
            raise ValueError(f"plugin_type must be one of {', '.join(SUPPORTED_TYPES)}, got {plugin_type!r}")
        if not isinstance(cfg, Mapping):
            raise TypeError(f"cfg must be a mapping of cfg keys, got {type(cfg).__name__}")
        self.plugin_type = plugin_type
        self.message_time = message_time
        text, path = _source(source)
        base = name or (path.stem if path is not None else "plugin")
        short = _NAME_OK.sub("_", base) or "plugin"
        self._tmp: Path | None = None
        if state_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="hsp-test-"))
            out_dir = self._tmp
        else:
            out_dir = Path(state_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._create(text, path, cfg, short, out_dir, lua_path, lenient)
        except BaseException:
            self._cleanup()
            raise

    def _create(
        self, text: bytes, path: Path | None, cfg: Mapping[str, Any], short: str, out_dir: Path, lua_path: str | None,
        lenient: bool,
    ) -> None:
        hcfg = _hindsight_config(out_dir, lua_path)
        if path is not None:
            lua_file = path.absolute()
        else:
            lua_file = out_dir / "run" / f"{short}.lua"
            lua_file.parent.mkdir(parents=True, exist_ok=True)
            lua_file.write_bytes(text)
        try:
            plugin = _plugin_config(hcfg, lua_file, cfg, self.plugin_type, short, lenient)
        except ConfigError as e:
            raise PluginLoadError(f"invalid cfg: {e}") from None
        self.plugin = plugin
        rcfg = runtime_config(hcfg, plugin, log_level=7, thread=0)
        if "filename" in cfg:  # read_config("filename") answers what the cfg said
            rcfg["filename"] = cfg["filename"]
        elif path is None:
            rcfg["filename"] = f"{short}.lua"
        self.run = PluginRun(name=plugin.name)
        self._index = 0  # messages seen so far (the next message's index)
        self._clock = 0.0
        self._next_tick = float(plugin.ticker_interval) if plugin.ticker_interval else 0.0
        self._seq = 0  # output: last sequence id used
        self._match = compile_matcher(plugin.message_matcher or "FALSE")
        self._always = (plugin.message_matcher or "").strip() == "TRUE"
        run = self.run
        io_context = IoContext(
            plugin.name,
            plugin.type,
            rcfg,
            output_path=hcfg.output_path,
            log=lambda level, t: run.log.append(f"{level}: {t}"),
        )
        try:
            self.sb: Sandbox | None = Sandbox(
                text,
                plugin.type,
                rcfg,
                chunkname=str(path) if path is not None else f"{short}.lua",
                on_inject=self._on_inject,
                on_print=run.log.append,
                on_log=lambda t: run.log.append(f"warning: {t}"),
                on_update_checkpoint=self._on_checkpoint if plugin.type == "output" else None,
                state_file=hcfg.output_path / f"{plugin.name}.data" if plugin.preserve_data else None,
                io_context=io_context,
            )
        except SandboxError as e:
            raise PluginLoadError(str(e)) from None
        self.run.stats = self.sb.stats

    # -- callbacks --
    def _on_inject(self, pb: bytes | None) -> int:
        if pb is None:
            return 0
        try:
            msg = decode_message(pb)
        except DecodeError as e:  # pragma: no cover - the sandbox encodes valid messages
            self.run.log.append(f"warning: injected message does not decode: {e}")
            return 0
        ptype = pname = None
        if msg.type == b"inject_payload":
            t = msg.field(b"payload_type")
            n = msg.field(b"payload_name")
            ptype = t.decode("utf-8", "replace") if isinstance(t, bytes) else None
            pname = n.decode("utf-8", "replace") if isinstance(n, bytes) else None
        self.run.injected.append(Injected(pb, msg, ptype, pname))
        return 0

    def _on_checkpoint(self, seq: Any, failures: int) -> int:
        self.run.log.append(f"update_checkpoint({'nil' if seq is None else int(seq)}, {failures})")
        return 0

    # -- driving --
    @property
    def clock_ns(self) -> int:
        """The message-driven clock (whole seconds, as timer_event receives it), in ns."""
        return int(self._clock) * 1_000_000_000

    def process(self, messages: Iterable[MessageInput]) -> PluginRun:
        """Offer `messages` in order (matcher, process_message, timer events when message_time).

        Stops at a termination: later messages are neither matched nor counted."""
        ticker = self.plugin.ticker_interval
        ts_default = int(self._clock * 1e9)
        for m in messages:
            if self.sb is None:
                break
            idx = self._index
            raw, msg = to_record(m, idx + 1, ts_default)
            ts_default = msg.timestamp
            self._index += 1
            if self._always or self._match(msg):
                self.run.matched += 1
                self._deliver(idx, raw, msg)
            if self.message_time and self.sb is not None:
                ts = msg.timestamp / 1e9
                if ts > self._clock:
                    self._clock = ts
                    if ticker and self._clock >= self._next_tick:
                        self.timer_event()
        return self.run

    def _deliver(self, idx: int, raw: bytes, msg: Message) -> None:
        """One message to process_message. One call per message (the kernel batches): the
        statuses and counts are then exact up to a termination."""
        sb = self.sb
        if sb is None:
            return
        if self.plugin_type == "analysis":
            try:
                res = sb.process_batch([(raw, msg)])
            except Terminated as t:
                self._terminated(t.reason)
                return
            finally:
                self.run.processed = sb.stats.process_message_count
            for _, code, text in res.statuses:
                self.run.statuses.append((idx, code, text))
            return
        res = sb.output_batch([(raw, msg)], self._seq, self.plugin.async_buffer_size > 0)
        self._seq += res.processed
        for _, code, text in res.statuses:
            self.run.statuses.append((idx, code, text))
        self.run.processed = sb.stats.process_message_count
        if res.terminated is not None:
            self._terminated(res.terminated)

    def timer_event(self, ns: int | None = None, shutdown: bool = False) -> None:
        """timer_event(ns or the current clock, shutdown); a failure terminates the plugin."""
        sb = self.sb
        if sb is None:
            return
        if ns is None:
            ns = self.clock_ns if self.message_time else time.time_ns()
        self.run.timer_events.append((int(ns // 1_000_000_000) * 1_000_000_000, shutdown))
        try:
            sb.timer_event(ns, shutdown)
        except Terminated as t:
            self._terminated(t.reason)
            return
        if self.plugin.ticker_interval and not shutdown:
            self._next_tick = self._clock + self.plugin.ticker_interval

    def _terminated(self, reason: str) -> None:
        self.run.terminated = reason
        self.sb = None

    def close(self, shutdown: bool = True) -> PluginRun:
        """The final timer_event(clock, true) when `shutdown`, then the sandbox is destroyed
        (with preserve_data and a state_dir, its globals are saved to `<state_dir>/<name>.data`)."""
        try:
            if self.sb is not None and shutdown:
                self.timer_event(None, True)
            if self.sb is not None:
                self.sb.destroy()
                self.sb = None
        finally:
            self._cleanup()
        return self.run

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> PluginSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_plugin(
    source: bytes | str | os.PathLike[str],
    cfg: Mapping[str, Any],
    messages: Iterable[MessageInput],
    *,
    plugin_type: str = "analysis",
    message_time: bool = True,
    shutdown: bool = True,
    state_dir: os.PathLike[str] | str | None = None,
    name: str | None = None,
    lua_path: str | None = None,
    lenient: bool = False,
) -> PluginRun:
    """Run a plugin over `messages` in the real sandbox and report what it did.

    `source`: Lua source (bytes, or a str containing a newline or not ending in `.lua`) or the
    path of a `.lua` file. `cfg`: the plugin's cfg keys as a TOML plugin table would give them
    (message_matcher is required; ticker_interval, limits, preserve_data, user keys...).
    `messages`: raw protobuf, `Message`s or JSON-form mappings (jsonl.py), in delivery order.
    `message_time`: drive timer_event from message Timestamps (module docstring); otherwise only
    the shutdown timer_event runs, at wall-clock time. `shutdown`: end with timer_event(t, true).
    `state_dir`: where preserve_data state is read from and saved to (`<name>.data`, name being
    `<type>.<name>`), and the plugin's output_path; default a temporary directory, removed.
    `name`: the plugin name (Logger `<type>.<name>`), default the file's stem or "plugin".
    `lua_path`: extra `;`-separated `?` templates for `require` (after hsp's modules).
    `lenient`: Hindsight's Lua-cfg rules for numbers and strings (as for a `.cfg` file).

    Raises PluginLoadError when the plugin cannot be created; never for what the plugin does once
    it runs (see `PluginRun.terminated` and `PluginRun.statuses`)."""
    session = PluginSession(
        source, cfg, plugin_type=plugin_type, message_time=message_time, state_dir=state_dir, name=name,
        lua_path=lua_path, lenient=lenient,
    )
    try:
        session.process(messages)
    finally:
        run = session.close(shutdown)
    return run


def iter_payload_rows(payload: str) -> Iterator[list[str]]:
    """The tab-separated rows of a tsv (or cbuf) payload, for assertions on table output."""
    for line in payload.splitlines():
        if line:
            yield line.split("\t")
