"""`hsp test`: run one plugin over a message file in the real sandbox; print or check what it injects.

    hsp test counter.lua --cfg counter.toml --input in.jsonl                 # print (hsp cat text)
    hsp test counter.lua --cfg counter.toml --input in.hpb --json            # JSON lines
    hsp test counter.lua --cfg counter.toml --input in.jsonl --expect out.jsonl

Injected messages go to standard output; terminations, non-zero statuses, the plugin's log and a
summary go to standard error, so `--json > out.jsonl` captures only messages.

Exit status: 0 the plugin ran to the end (and matched --expect); 1 it was terminated, or what it
injected differs from --expect (the diff is printed); 2 it could not be created (syntax error,
invalid cfg), or an input, cfg or expectation file is unusable. The rules of the comparison are
in docs/testing-plugins.md (and `compare_messages` in hindsight_py/testing/jsonl.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def _fail(text: str) -> None:
    click.echo(f"hsp test: {text}", err=True)
    raise SystemExit(EXIT_UNUSABLE)


@click.command("test")
@click.argument("plugin", type=click.Path(dir_okay=False))
@click.option("--cfg", "cfg_path", required=True, type=click.Path(dir_okay=False),
              help="The plugin's cfg: a Hindsight .cfg (Lua syntax) or an hsp .toml with one plugin table.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Messages to offer: .jsonl (hsp cat --json lines) or a framed Heka file (.hpb).")
@click.option("--expect", "expect_path", type=click.Path(dir_okay=False), default=None,
              help="JSON lines of the messages the plugin must inject; exit 1 with a diff if not.")
@click.option("--type", "plugin_type", type=click.Choice(["analysis", "output"]), default=None,
              help="Plugin type (default: the TOML table's type, else analysis).")
@click.option("--json", "as_json", is_flag=True, help="Print injected messages as JSON lines.")
@click.option("--write-expect", "write_expect", type=click.Path(dir_okay=False), default=None,
              help="Write what the plugin injected as an expectation file (volatile headers left out).")
@click.option("--lua-path", default=None, help="Extra ';'-separated '?' templates for require.")
@click.option("--wall-clock", is_flag=True,
              help="No message-driven timer_event: only the shutdown timer_event, at the current time.")
def test_command(
    plugin: str,
    cfg_path: str,
    input_path: str,
    expect_path: str | None,
    plugin_type: str | None,
    as_json: bool,
    write_expect: str | None,
    lua_path: str | None,
    wall_clock: bool,
) -> None:
    """Run analysis or output PLUGIN over --input in hsp's sandbox, with message-driven time."""
    from hindsight_py.config.model import ConfigError
    from hindsight_py.message.text import format_json, format_text
    from hindsight_py.testing.harness import PluginLoadError, load_cfg, load_messages, run_plugin
    from hindsight_py.testing.jsonl import JsonMessageError, compare_messages, expectation_json, iter_jsonl

    try:
        loaded = load_cfg(cfg_path)
    except ConfigError as e:
        _fail(f"invalid cfg: {e}")
    if loaded.plugin_type is not None and loaded.plugin_type not in ("analysis", "output"):
        _fail(f"{cfg_path}: hsp test runs analysis and output plugins, not {loaded.plugin_type} plugins")
    if plugin_type is not None and loaded.plugin_type is not None and plugin_type != loaded.plugin_type:
        _fail(f"--type {plugin_type} contradicts the cfg's [{loaded.plugin_type}.{loaded.name}] table")
    ptype = plugin_type or loaded.plugin_type or "analysis"
    try:
        messages = load_messages(input_path)
    except (OSError, ValueError) as e:
        _fail(f"unusable input: {e}")
    expected: list[tuple[int, dict[str, Any]]] | None = None
    if expect_path is not None:
        try:
            with open(expect_path, encoding="utf-8", errors="surrogateescape") as fh:
                expected = list(iter_jsonl(fh.read().splitlines(), source=expect_path))
        except OSError as e:
            _fail(f"cannot read {expect_path}: {e.strerror or e}")
        except JsonMessageError as e:
            _fail(f"unusable expectation: {e}")

    try:
        run = run_plugin(
            plugin, loaded.values, messages, plugin_type=ptype, message_time=not wall_clock,
            name=loaded.name, lua_path=lua_path, lenient=loaded.lenient,
        )
    except PluginLoadError as e:
        _fail(f"cannot create the plugin: {e}")
    except FileNotFoundError as e:
        _fail(str(e))

    out = sys.stdout.buffer
    err = sys.stderr
    for line in run.log:
        err.write(f"log: {line}\n")
    for idx, code, text in run.statuses:
        err.write(f"message {idx + 1}: process_message returned {code}" + (f": {text}" if text else "") + "\n")
    if run.terminated is not None:
        err.write(f"terminated: {run.terminated}\n")
    err.write(
        f"Processed: {len(messages)}, matched: {run.matched}, process_message calls: {run.processed}, "
        f"timer_event calls: {len(run.timer_events)}, injected: {len(run.injected)} messages\n"
    )
    err.flush()

    if write_expect is not None:
        try:
            with open(write_expect, "w", encoding="utf-8") as fh:
                for inj in run.injected:
                    fh.write(json.dumps(expectation_json(inj.message), ensure_ascii=False) + "\n")
        except OSError as e:
            _fail(f"cannot write {write_expect}: {e.strerror or e}")

    if expected is None:
        for inj in run.injected:
            out.write(format_json(inj.message) if as_json else format_text(inj.message))
        out.flush()
        raise SystemExit(EXIT_FAILED if run.terminated is not None else EXIT_OK)

    try:
        cmp = compare_messages(expected, run.messages, source=expect_path)
    except JsonMessageError as e:
        _fail(f"unusable expectation: {e}")
    if cmp.diff:
        out.write(cmp.diff.encode("utf-8", "surrogateescape"))
    ok = cmp.ok and run.terminated is None
    verdict = cmp.summary() if run.terminated is None else f"FAILED: the plugin was terminated ({cmp.summary()})"
    if not cmp.ok and run.terminated is None:
        verdict = "FAILED: " + verdict
    out.write((verdict + "\n").encode())
    out.flush()
    raise SystemExit(EXIT_OK if ok else EXIT_FAILED)


def _main() -> None:  # pragma: no cover - `python -m hindsight_py.tools.test_cmd`
    test_command()


if __name__ == "__main__":  # pragma: no cover
    _main()
