"""Testing Lua plugins before deploying them: the library behind `hsp test` and the pytest fixtures.

    from hindsight_py.testing import run_plugin
    run = run_plugin("counter.lua", {"message_matcher": "TRUE", "ticker_interval": 60}, messages)
    assert run.terminated is None
    assert run.payloads("tsv")[-1].startswith("web.access\t")

`run_plugin` runs the plugin in hsp's real sandbox with message-driven time (harness.py);
messages are raw protobuf, `Message`s or JSON-form mappings (jsonl.py); `match` tries a
message_matcher. The pytest fixtures (`hsp_run`, `hsp_session`, `hsp_messages`) are in
pytest_plugin.py, registered through the `pytest11` entry point. See docs/testing-plugins.md.
"""

from hindsight_py.testing.harness import (
    Injected,
    LoadedCfg,
    MatcherError,
    MessageInput,
    PluginLoadError,
    PluginRun,
    PluginSession,
    load_cfg,
    load_messages,
    match,
    run_plugin,
    to_record,
    to_records,
)
from hindsight_py.testing.jsonl import JsonMessageError, format_jsonl, message_from_json, message_to_json, read_jsonl

__all__ = [
    "Injected",
    "JsonMessageError",
    "LoadedCfg",
    "MatcherError",
    "MessageInput",
    "PluginLoadError",
    "PluginRun",
    "PluginSession",
    "format_jsonl",
    "load_cfg",
    "load_messages",
    "match",
    "message_from_json",
    "message_to_json",
    "read_jsonl",
    "run_plugin",
    "to_record",
    "to_records",
]
