"""pytest fixtures for plugin authors (registered as the `hsp` pytest11 entry point).

    def test_counts(hsp_run):
        run = hsp_run("counter.lua", "counter.toml", "input.jsonl")
        assert run.terminated is None
        assert "*total*\\t3" in run.payloads("tsv")[-1]

Relative paths (plugin, cfg file, message file) are relative to the directory of the test file,
so a plugin's tests live beside it and run from anywhere. Fixtures:

- `hsp_run(plugin, cfg, messages, **kw) -> PluginRun`: `run_plugin` (see harness.py). `cfg` is a
  mapping or the path of a `.cfg`/`.toml` file (its type is used unless `plugin_type` is given);
  `messages` an iterable of messages or the path of a `.jsonl`/`.hpb` file.
- `hsp_session(plugin, cfg, **kw) -> PluginSession`: step-by-step control (process some messages,
  assert, process more); closed with the shutdown timer_event at the end of the test unless the
  test closed it.
- `hsp_messages(path) -> list[(raw, Message)]`: a message file, relative to the test file.
- `hsp_match(matcher, messages) -> list[bool]`.
- `hsp_expect(run, "expected.jsonl")`: fails the test with the diff unless the run injected
  exactly the expected messages (the rules of `hsp test --expect`) and was not terminated.

This module imports nothing from hsp at import time: pytest loads it in every session of every
project where hsp is installed, and the sandbox engine (lupa, which forces TZ=UTC for the whole
process) must only be loaded by tests that use a fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hindsight_py.testing.harness import MessageInput, PluginRun, PluginSession

__all__ = ["hsp_run", "hsp_session", "hsp_messages", "hsp_match", "hsp_expect"]

PathArg = str | os.PathLike[str]


def _base(request: pytest.FixtureRequest) -> Path:
    return Path(request.path).parent


def _resolve(base: Path, p: PathArg) -> Path:
    path = Path(p)
    return path if path.is_absolute() else base / path


def _is_file_arg(v: Any, suffixes: tuple[str, ...]) -> bool:
    return isinstance(v, os.PathLike) or (isinstance(v, str) and "\n" not in v and v.endswith(suffixes))


def _plugin(base: Path, plugin: bytes | PathArg) -> bytes | str | os.PathLike[str]:
    if isinstance(plugin, bytes) or not _is_file_arg(plugin, (".lua",)):
        return plugin
    return _resolve(base, plugin)


def _cfg(base: Path, cfg: Mapping[str, Any] | PathArg, kw: dict[str, Any]) -> Mapping[str, Any]:
    if isinstance(cfg, Mapping):
        return cfg
    from hindsight_py.testing.harness import load_cfg

    loaded = load_cfg(_resolve(base, cfg))
    if loaded.plugin_type is not None:
        kw.setdefault("plugin_type", loaded.plugin_type)
    if loaded.name is not None:
        kw.setdefault("name", loaded.name)
    kw.setdefault("lenient", loaded.lenient)
    return loaded.values


def _messages(base: Path, messages: Iterable[MessageInput] | PathArg) -> Iterable[MessageInput]:
    if isinstance(messages, (str, os.PathLike)):
        from hindsight_py.testing.harness import load_messages

        return load_messages(_resolve(base, messages))
    return messages


@pytest.fixture
def hsp_run(request: pytest.FixtureRequest) -> Callable[..., PluginRun]:
    """Run a plugin over messages in hsp's sandbox: `hsp_run(plugin, cfg, messages, **kw)`."""
    base = _base(request)

    def run(
        plugin: bytes | PathArg,
        cfg: Mapping[str, Any] | PathArg,
        messages: Iterable[MessageInput] | PathArg,
        **kw: Any,
    ) -> PluginRun:
        from hindsight_py.testing.harness import run_plugin

        values = _cfg(base, cfg, kw)
        return run_plugin(_plugin(base, plugin), values, _messages(base, messages), **kw)

    return run


@pytest.fixture
def hsp_session(request: pytest.FixtureRequest) -> Iterator[Callable[..., PluginSession]]:
    """Open a PluginSession: `hsp_session(plugin, cfg, **kw)`; closed at teardown."""
    base = _base(request)
    opened: list[PluginSession] = []

    def open_session(plugin: bytes | PathArg, cfg: Mapping[str, Any] | PathArg, **kw: Any) -> PluginSession:
        from hindsight_py.testing.harness import PluginSession

        values = _cfg(base, cfg, kw)
        s = PluginSession(_plugin(base, plugin), values, **kw)
        opened.append(s)
        return s

    yield open_session
    for s in opened:
        s.close()


@pytest.fixture
def hsp_messages(request: pytest.FixtureRequest) -> Callable[[PathArg], list[Any]]:
    """Load a `.jsonl`/`.hpb` message file relative to the test file."""
    base = _base(request)

    def load(path: PathArg) -> list[Any]:
        from hindsight_py.testing.harness import load_messages

        return load_messages(_resolve(base, path))

    return load


@pytest.fixture
def hsp_match() -> Callable[..., list[bool]]:
    """`hsp_match(matcher, messages) -> list[bool]` (raises MatcherError for a bad matcher)."""
    from hindsight_py.testing.harness import match

    return match


@pytest.fixture
def hsp_expect(request: pytest.FixtureRequest) -> Callable[[PluginRun, PathArg], None]:
    """`hsp_expect(run, path)`: assert the run injected the messages of a JSON lines file."""
    base = _base(request)

    def check(run: PluginRun, path: PathArg) -> None:
        from hindsight_py.testing.jsonl import compare_messages, iter_jsonl

        p = _resolve(base, path)
        with open(p, encoding="utf-8", errors="surrogateescape") as fh:
            expected = list(iter_jsonl(fh.read().splitlines(), source=str(p)))
        cmp = compare_messages(expected, run.messages, source=str(p))
        problems = []
        if run.terminated is not None:
            problems.append(f"the plugin was terminated: {run.terminated}")
        if not cmp.ok:
            problems.append(f"{cmp.summary()}\n{cmp.diff}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)

    return check
