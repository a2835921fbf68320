"""Configuration: hindsight.cfg / plugin cfgs (Lua) and hsp's TOML, runtime config and `.rtc`.

Ports hindsight's `src/test/test_config.c` (the cfg files are re-written under
`tests/data/config/hindsight` and `.../sandbox`), gives each case a TOML twin, and drives the error
cases from `tests/data/config/errors/*/`: every file there starts with a comment
`expect: <exact str(ConfigError)>` in which `{file}`, `{dir}`, `{install}` and `{plugins}` are
substituted.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import pytest

from hindsight_py import resources
from hindsight_py.config import (
    PLUGIN_TYPES,
    ConfigError,
    HindsightConfig,
    PluginConfig,
    assign_threads,
    load_hindsight_cfg,
    load_plugin_cfg,
    load_toml,
    runtime_config,
    runtime_config_text,
)
from hindsight_py.config.lua_cfg import evaluate_lua, plugin_cfg_files, read_rtc_thread
from hindsight_py.config.model import DEFAULT_INSTALL_PATH, PluginDefaults, rtc_path
from hindsight_py.config.toml import lua_literal

DATA = Path(__file__).parent.parent / "data" / "config"
HS = DATA / "hindsight"
SB = DATA / "sandbox"
TOML = DATA / "toml"
ERRORS = DATA / "errors"


def _header(path: Path, name: str) -> str:
    for line in path.read_text().splitlines()[:3]:
        m = re.match(rf"^(?:--|#) {name}: (.*)$", line)
        if m:
            return m.group(1)
    raise AssertionError(f"{path} has no '{name}:' header")


def _expected(path: Path, **extra: str) -> str:
    text = _header(path, "expect")
    subs = {"file": str(path), "dir": str(path.parent), "install": str(DEFAULT_INSTALL_PATH),
            "plugins": str(resources.plugins_dir()), **extra}
    for k, v in subs.items():
        text = text.replace("{" + k + "}", v)
    return text


# -- test_config.c: hindsight.cfg ----------------------------------------------------------------


def _hs_default_checks(cfg: HindsightConfig, base: Path | None) -> None:
    p = (lambda s: base / s) if base else Path  # TOML paths are relative to the file
    assert cfg.output_path == p("output_path")
    assert cfg.max_message_size == 64 * 1024
    assert cfg.output_size == 64 * 1024 * 1024
    assert cfg.backpressure == 0
    assert cfg.backpressure_disk_free == 4
    assert cfg.sandbox_run_path == p("run")
    assert cfg.sandbox_load_path == p("load")
    assert cfg.analysis_threads == 1
    assert cfg.analysis_utilization_limit == 95
    assert cfg.input_defaults == PluginDefaults(restricted_headers=False)
    assert cfg.analysis_defaults == PluginDefaults(restricted_headers=True)
    assert cfg.output_defaults == PluginDefaults(restricted_headers=False)
    assert cfg.input_defaults.output_limit == 1024 * 64
    assert cfg.input_defaults.memory_limit == 1024 * 1024 * 8
    assert cfg.input_defaults.instruction_limit == 1000000
    assert cfg.input_defaults.preserve_data is False
    assert cfg.analysis_defaults.process_message_inject_limit == 0
    assert cfg.analysis_defaults.timer_event_inject_limit == 10
    assert cfg.output_defaults.read_queue == "both"


def test_load_default_config() -> None:
    cfg = load_hindsight_cfg(HS / "default.cfg")
    _hs_default_checks(cfg, None)
    assert cfg.io_lua_path == "io/?.lua"
    assert cfg.io_lua_cpath == "io/?.so"
    assert cfg.analysis_lua_path == "analysis/?.lua"
    assert cfg.analysis_lua_cpath == "analysis/?.so"
    assert cfg.sandbox_install_path == Path("/usr/share/luasandbox/sandboxes/heka")
    assert cfg.hostname and len(cfg.hostname.encode()) <= 64
    assert cfg.syntax == "lua" and cfg.source == HS / "default.cfg"


def test_load_default_config_toml() -> None:
    cfg = load_toml(TOML / "default.toml")[0]
    _hs_default_checks(cfg, TOML)
    assert cfg.io_lua_path == f"{TOML}/io/?.lua"
    assert cfg.analysis_lua_cpath == f"{TOML}/analysis/?.so"
    assert cfg.syntax == "toml"


def _valid_checks(cfg: HindsightConfig) -> None:
    assert cfg.output_size == 1024
    assert cfg.backpressure == 10
    assert cfg.input_defaults.output_limit == 1023
    assert cfg.input_defaults.memory_limit == 32767
    assert cfg.input_defaults.instruction_limit == 1000
    assert cfg.input_defaults.preserve_data is True
    assert cfg.output_defaults.remove_checkpoints_on_terminate is True
    assert cfg.output_defaults.read_queue == "both"


def test_load_config() -> None:
    cfg = load_hindsight_cfg(HS / "valid.cfg")
    _valid_checks(cfg)
    assert cfg.output_path == Path("output_path")
    assert cfg.io_lua_path == "io/?.lua"


def test_load_config_toml_matches_lua() -> None:
    lua = load_hindsight_cfg(HS / "valid.cfg")
    toml = load_toml(TOML / "valid.toml")[0]
    _valid_checks(toml)
    same = ("output_size", "backpressure", "backpressure_disk_free", "max_message_size", "analysis_threads",
            "analysis_utilization_limit", "input_defaults", "analysis_defaults", "output_defaults", "hostname")
    assert {k: getattr(toml, k) for k in same} == {k: getattr(lua, k) for k in same}


@pytest.mark.parametrize(
    "path, expected",
    [
        (HS / "extra.cfg", "{file}:18: invalid option: 'extra'"),
        (TOML / "extra.toml", "{file}:3: invalid option: 'extra'"),
        (HS / "output_too_large.cfg",
         "{file}:21: key 'max_message_size' must be greater than or equal to the sandbox output_limit "
         "(got max_message_size 65536 < analysis_defaults.output_limit 66560)"),
        (TOML / "output_too_large.toml",
         "{file}:8: key 'max_message_size' must be greater than or equal to the sandbox output_limit "
         "(got max_message_size 65536 < analysis_defaults.output_limit 66560)"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_load_invalid_configs(path: Path, expected: str) -> None:
    with pytest.raises(ConfigError) as ei:
        (load_toml if path.suffix == ".toml" else load_hindsight_cfg)(path)
    assert str(ei.value) == expected.replace("{file}", str(path))
    assert ei.value.file == path


def test_lua_expressions_and_lenient_types() -> None:
    cfg = load_hindsight_cfg(HS / "expressions.cfg")
    assert cfg.output_size == 64 * 1024 * 1024  # fraction truncated, as the C (unsigned) cast does
    assert cfg.io_lua_path == "/usr/lib/luasandbox/modules/?.lua;/usr/lib/luasandbox/io_modules/?.lua"
    assert cfg.io_lua_cpath == "/usr/lib/luasandbox/modules/?.so;/usr/lib/luasandbox/io_modules/?.so"
    assert cfg.sandbox_load_path is None  # "" disables dynamic loading
    assert cfg.sandbox_install_path == Path("/opt/heka")
    assert cfg.hostname == "12345"  # lua_tolstring accepts numbers
    assert cfg.analysis_threads == 4
    assert cfg.analysis_utilization_limit == 0
    assert cfg.max_message_size == 256 * 1024
    assert cfg.input_defaults == PluginDefaults(instruction_limit=0, ticker_interval=5, restricted_headers=True)
    assert cfg.analysis_defaults == PluginDefaults(
        process_message_inject_limit=1, timer_event_inject_limit=2, restricted_headers=False,
        shutdown_on_terminate=True, output_limit=256 * 1024,
    )
    assert cfg.output_defaults == PluginDefaults(read_queue="analysis", preserve_data=True)
    assert cfg.load_dir("input") is None
    assert cfg.run_dir("output") == Path("run/output")
    assert cfg.lua_path("analysis") == cfg.analysis_lua_path and cfg.lua_path("output") == cfg.io_lua_path


def test_hostname_truncated_to_64_bytes(tmp_path: Path) -> None:
    text = (HS / "rtc.cfg").read_text().replace("hsp.example.com", "h" * 100)
    (tmp_path / "h.cfg").write_text(text)
    assert load_hindsight_cfg(tmp_path / "h.cfg").hostname == "h" * 64


# -- test_config.c: plugin cfgs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hs() -> HindsightConfig:
    return load_hindsight_cfg(HS / "default.cfg")


def test_sandbox_input_config(hs: HindsightConfig) -> None:
    cfg = load_plugin_cfg(SB / "input.cfg", "input", hs)
    assert cfg.filename == "input.lua"
    assert cfg.lua_file == SB / "input.lua"
    assert cfg.name == "input.input" and cfg.short_name == "input"
    assert cfg.message_matcher is None
    assert cfg.async_buffer_size == 0
    assert cfg.thread is None
    assert (cfg.output_limit, cfg.memory_limit, cfg.instruction_limit) == (65536, 8388608, 1000000)
    assert cfg.ticker_interval == 0 and cfg.preserve_data is False and cfg.restricted_headers is False
    assert cfg.restart == 0
    assert dict(cfg.user) == {}


def test_sandbox_analysis_config(hs: HindsightConfig) -> None:
    cfg = load_plugin_cfg(SB / "analysis.cfg", "analysis", hs)
    assert cfg.filename == "analysis.lua"
    assert cfg.name == "analysis.analysis"
    assert cfg.output_limit == 77777
    assert cfg.memory_limit == 88888
    assert cfg.instruction_limit == 99999
    assert cfg.ticker_interval == 17
    assert cfg.preserve_data is True
    assert cfg.restricted_headers is True  # the analysis default
    assert cfg.message_matcher == "TRUE"
    assert cfg.thread == 1
    assert cfg.async_buffer_size == 0
    assert (cfg.process_message_inject_limit, cfg.timer_event_inject_limit) == (0, 10)


def test_sandbox_output_config(hs: HindsightConfig) -> None:
    cfg = load_plugin_cfg(SB / "output.cfg", "output", hs)
    assert cfg.filename == "output.lua"
    assert cfg.async_buffer_size == 999
    assert cfg.thread is None
    assert cfg.remove_checkpoints_on_terminate is True
    assert cfg.read_queue == "input"


@pytest.mark.parametrize("name, reason", [
    ("path_in_fn", "filename must not contain a path component"),
    ("invalid_fn_ext", "filename must have a .lua extension"),
])
def test_sandbox_filename_config(hs: HindsightConfig, name: str, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_plugin_cfg(SB / f"{name}.cfg", "input", hs)
    assert ei.value.reason == reason
    assert (ei.value.key, ei.value.line, ei.value.file) == ("filename", 1, SB / f"{name}.cfg")


def test_plugin_defaults_come_from_the_type_defaults() -> None:
    hcfg = load_hindsight_cfg(HS / "expressions.cfg")
    cfg = load_plugin_cfg(SB / "input.cfg", "input", hcfg, install_path=SB)
    assert (cfg.instruction_limit, cfg.ticker_interval, cfg.restricted_headers) == (0, 5, True)
    d = PluginDefaults(read_queue="analysis", remove_checkpoints_on_terminate=True, preserve_data=True)
    out = load_plugin_cfg(SB / "output.cfg", "output", d)
    assert out.read_queue == "input"  # the cfg wins over the defaults
    assert out.preserve_data is True and out.remove_checkpoints_on_terminate is True


def test_lua_file_is_found_in_the_install_path(tmp_path: Path) -> None:
    (tmp_path / "run" / "analysis").mkdir(parents=True)
    (tmp_path / "inst" / "analysis").mkdir(parents=True)
    (tmp_path / "inst" / "analysis" / "x.lua").write_text("")
    cfg_file = tmp_path / "run" / "analysis" / "x.cfg"
    cfg_file.write_text('filename = "x.lua"\nmessage_matcher = "TRUE"\n')
    d = PluginDefaults.builtin("analysis")
    assert load_plugin_cfg(cfg_file, "analysis", d, install_path=tmp_path / "inst").lua_file == (
        tmp_path / "inst" / "analysis" / "x.lua")
    (tmp_path / "run" / "analysis" / "x.lua").write_text("")  # the run directory wins
    assert load_plugin_cfg(cfg_file, "analysis", d, install_path=tmp_path / "inst").lua_file == (
        tmp_path / "run" / "analysis" / "x.lua")


def test_plugin_cfg_files(tmp_path: Path) -> None:
    for n in ("b.cfg", "a.cfg", "c.off", "d.err", "e.lua", ".cfg", "x.cfg.bak"):
        (tmp_path / n).write_text("")
    assert [p.name for p in plugin_cfg_files(tmp_path)] == ["a.cfg", "b.cfg"]
    assert plugin_cfg_files(tmp_path / "missing") == []


# -- TOML plugin tables --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toml_plugins() -> tuple[HindsightConfig, dict[str, PluginConfig]]:
    hcfg, plugins = load_toml(TOML / "plugins.toml")
    return hcfg, {p.name: p for p in plugins}


def test_toml_plugins_match_the_lua_cfgs(hs: HindsightConfig, toml_plugins: Any) -> None:
    _, tp = toml_plugins
    assert list(tp) == ["input.input", "input.bare", "analysis.analysis", "analysis.inrun", "output.output"]
    fields = [f.name for f in dataclasses.fields(PluginConfig)
              if f.name not in ("filename", "lua_file", "cfg_lua", "cfg_path", "user", "restart")]
    for ptype in PLUGIN_TYPES:
        lua = load_plugin_cfg(SB / f"{ptype}.cfg", ptype, hs)
        toml = tp[f"{ptype}.{ptype}"]
        assert {f: getattr(toml, f) for f in fields} == {f: getattr(lua, f) for f in fields}
        assert toml.lua_file.resolve() == lua.lua_file.resolve()
    assert dict(tp["analysis.analysis"].user) == dict(load_plugin_cfg(SB / "analysis.cfg", "analysis", hs).user)


def test_toml_filename_lookup_and_restart(toml_plugins: Any) -> None:
    hcfg, tp = toml_plugins
    assert hcfg.sandbox_install_path == TOML / "install"
    assert tp["input.bare"].lua_file == TOML / "install" / "input" / "bare.lua"
    assert tp["analysis.inrun"].lua_file == TOML / "run" / "analysis" / "inrun.lua"
    assert tp["input.input"].lua_file == TOML / "../sandbox/input.lua"
    assert tp["input.input"].restart == 2 and tp["input.bare"].restart == 2  # from [input_defaults]
    assert "restart" not in tp["input.input"].user  # not written in the table: not a user key
    assert tp["analysis.inrun"].restart == 5 and tp["analysis.inrun"].user["restart"] == 5
    assert tp["output.output"].restart == 0


def test_toml_mode_defaults() -> None:
    cfg, plugins = load_toml(TOML / "minimal.toml")
    assert plugins == []
    assert cfg.output_path == TOML / "out"
    assert cfg.sandbox_run_path == TOML / "out" / "run"
    assert cfg.sandbox_load_path is None
    assert cfg.sandbox_install_path == resources.plugins_dir()
    sb = resources.sandbox_dir()
    assert cfg.analysis_lua_path == f"{sb}/lua_modules/?.lua"
    assert cfg.io_lua_path == f"{sb}/lua_modules/?.lua;{sb}/lua_io_modules/?.lua"
    assert cfg.analysis_lua_cpath == "" and cfg.io_lua_cpath == ""
    assert cfg.input_defaults == PluginDefaults.builtin("input")
    assert cfg.analysis_defaults == PluginDefaults.builtin("analysis")


def test_toml_relative_lua_path_templates(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        'output_path = "/abs/out"\nanalysis_lua_path = "mods/?.lua;/usr/x/?.lua;;"\n')
    cfg = load_toml(tmp_path / "c.toml")[0]
    assert cfg.output_path == Path("/abs/out") and cfg.sandbox_run_path == Path("/abs/out/run")
    assert cfg.analysis_lua_path == f"{tmp_path}/mods/?.lua;/usr/x/?.lua;;"


def test_toml_user_values_round_trip_through_lua(toml_plugins: Any) -> None:
    """cfg_lua (the .rtc's first part) evaluates to the same values the TOML gave."""
    _, tp = toml_plugins
    for p in tp.values():
        ev = evaluate_lua(p.cfg_lua.encode())
        got = {k: v for k, v in ev.globals.items() if k in p.user}
        assert got.keys() == dict(p.user).keys()
        assert got == dict(p.user) or p.name == "analysis.inrun"
    inrun = tp["analysis.inrun"]
    values = evaluate_lua(inrun.cfg_lua.encode()).globals
    assert values["weird"] == inrun.user["weird"] == 'tab\tquote" backslash\\ bell\x07 é'
    limits = values["limits"]
    assert limits["inf"] == float("inf") and limits["ninf"] == float("-inf") and limits["tiny"] == 1e-300
    assert limits["big"] == 9007199254740992  # a Lua number is a double, as in Hindsight


def test_lua_literal() -> None:
    assert lua_literal({"a": [1, 2.5, True], "b-c": {}, 3: "x"}) == '{a = {1, 2.5, true}, ["b-c"] = {}, [3] = "x"}'
    assert lua_literal(b"\xff\x00") == '"\\255\\000"'
    assert lua_literal(float("nan")) == "0/0"


# -- user keys and reserved keys in the runtime config -------------------------------------------


def test_user_keys_reach_the_runtime_config_unchanged(hs: HindsightConfig) -> None:
    p = load_plugin_cfg(SB / "analysis.cfg", "analysis", hs)
    rc = runtime_config(hs, p, pid=42)
    arr = ["string", 99, False, True]
    h = {"string": "string", "number": 99, "false": False, "true": True}
    assert rc["array"] == arr and rc["hash"] == h and rc["nested"] == {"array": arr, "hash": h}
    rc["nested"]["array"].append("mutated")  # a plugin mutating its config never reaches the model
    assert runtime_config(hs, p, pid=42)["nested"]["array"] == arr


def test_reserved_keys_overwrite_user_keys(hs: HindsightConfig) -> None:
    p = load_plugin_cfg(SB / "user_keys.cfg", "input", hs)
    assert dict(p.user) == {
        "Logger": "somebody else", "Hostname": "spoofed", "path": "/evil/?.lua",
        "message_matcher": "not interpreted for an input plugin", "thread": "nor is this",
        "_password": "secret", "restart": 3,
        "mixed": {1: 1, 2: 2, "x": "y", 10: 10},  # the function is skipped, as lua_sandbox does
        "holes": {1: 1, 2: 2, 4: 4},
        "binary": b"\xff\xfe",  # not UTF-8: kept as bytes
        "float": 0.5,
    }
    assert p.restart == 3
    rc = runtime_config(hs, p, pid=42, log_level=7)
    assert rc["Logger"] == "input.user_keys"
    assert rc["Hostname"] == hs.hostname and rc["Pid"] == 42 and rc["log_level"] == 7
    assert rc["path"] == "io/?.lua" and rc["cpath"] == "io/?.so"
    assert rc["message_matcher"] == "not interpreted for an input plugin"
    assert rc["thread"] == "nor is this"  # Hindsight only overrides thread for analysis plugins
    assert rc["_password"] == "secret" and rc["restart"] == 3
    assert "handler" not in rc and "nothing" not in rc
    assert rc["output_path"] == "output_path" and rc["sandbox_load_path"] == "load"
    assert rc["input_limit"] == 65536 and rc["max_message_size"] == 65536


def test_runtime_config_per_type(toml_plugins: Any) -> None:
    hcfg, tp = toml_plugins
    a = runtime_config(hcfg, tp["analysis.inrun"], pid=1, thread=3)
    assert a["thread"] == 3 and a["Logger"] == "analysis.inrun"
    assert a["message_matcher"] == "Type == 'x' && Fields[n] > 1"
    assert "output_path" not in a and "sandbox_run_path" not in a  # io-only keys
    assert a["max_message_size"] == 65536  # the Heka layer's default for analysis plugins
    with pytest.raises(ValueError):
        runtime_config(hcfg, tp["analysis.inrun"])  # no explicit thread and none assigned
    assert runtime_config(hcfg, tp["analysis.analysis"])["thread"] == 1
    o = runtime_config(hcfg, tp["output.output"], pid=1)
    assert (o["async_buffer_size"], o["remove_checkpoints_on_terminate"], o["read_queue"]) == (999, True, "input")
    assert o["output_path"] == str(TOML / "out") and o["sandbox_install_path"] == str(TOML / "install")
    i = runtime_config(hcfg, tp["input.bare"], pid=1)
    assert "read_queue" not in i and "thread" not in i and "message_matcher" not in i


def test_read_config_in_a_sandbox_sees_user_keys(toml_plugins: Any) -> None:
    from hindsight_py.sandbox.runtime import Sandbox

    hcfg, tp = toml_plugins
    src = b"""
    local n = read_config("nested")
    assert(n.hash["false"] == false and n.array[2] == 99 and n.array[4] == true, "nested")
    assert(read_config("array")[1] == "string", "array")
    assert(read_config("Logger") == "analysis.analysis", "Logger")
    assert(read_config("thread") == 1, "thread")
    function process_message() return 0 end
    function timer_event() end
    """
    sb = Sandbox(src, "analysis", runtime_config(hcfg, tp["analysis.analysis"], pid=1))
    sb.destroy()


# -- the .rtc file -------------------------------------------------------------------------------


RTC_INPUT = """\
-- original configuration
filename = "input.lua"

-- Hindsight defaults and overrides
Hostname = [[hsp.example.com]]
Pid = 4242
log_level = 6
path = [[io/?.lua]]
cpath = [[io/?.so]]
output_path = [[output]]
output_size = 67108864
max_message_size = 65536
sandbox_load_path = [[]]
sandbox_run_path = [[run]]
sandbox_install_path = [[/usr/share/luasandbox/sandboxes/heka]]

-- Sandbox defaults and overrides
Logger = [[input.input]]
output_limit = 65536
memory_limit = 8388608
instruction_limit = 1000000
ticker_interval = 0
preserve_data = false
restricted_headers = false
shutdown_on_terminate = false
-- end Hindsight configuration
"""

RTC_ANALYSIS_TAIL = """\
-- Hindsight defaults and overrides
Hostname = [[hsp.example.com]]
Pid = 4242
log_level = 7
path = [[analysis/?.lua]]
cpath = [[analysis/?.so]]

-- Sandbox defaults and overrides
Logger = [[analysis.analysis]]
output_limit = 77777
memory_limit = 88888
instruction_limit = 99999
ticker_interval = 17
preserve_data = true
restricted_headers = true
shutdown_on_terminate = false
thread = 1
process_message_inject_limit = 0
timer_event_inject_limit = 10
-- end Hindsight configuration
"""

RTC_OUTPUT_TAIL = """\
Logger = [[output.output]]
output_limit = 65536
memory_limit = 8388608
instruction_limit = 1000000
ticker_interval = 0
preserve_data = false
restricted_headers = false
shutdown_on_terminate = false
async_buffer_size = 999
remove_checkpoints_on_terminate = true
read_queue = "input"
-- end Hindsight configuration
"""


def test_rtc_layout() -> None:
    hcfg = load_hindsight_cfg(HS / "rtc.cfg")
    i = load_plugin_cfg(SB / "input.cfg", "input", hcfg)
    assert runtime_config_text(hcfg, i, pid=4242) == RTC_INPUT
    a = load_plugin_cfg(SB / "analysis.cfg", "analysis", hcfg)
    text = runtime_config_text(hcfg, a, pid=4242, log_level=7)
    assert text == "-- original configuration\n" + (SB / "analysis.cfg").read_text() + "\n" + RTC_ANALYSIS_TAIL
    o = load_plugin_cfg(SB / "output.cfg", "output", hcfg)
    assert runtime_config_text(hcfg, o, pid=4242).endswith("\n-- Sandbox defaults and overrides\n" + RTC_OUTPUT_TAIL)
    assert rtc_path(hcfg, a.name) == Path("output/analysis.analysis.rtc")


def test_rtc_evaluates_to_the_runtime_config(tmp_path: Path, toml_plugins: Any) -> None:
    """The .rtc is Lua: evaluating it gives what read_config sees (Hindsight's own round trip)."""
    hcfg, tp = toml_plugins
    for p in tp.values():
        kw: dict[str, Any] = {"pid": 7, "thread": 5 if p.type == "analysis" else None}
        f = tmp_path / f"{p.name}.rtc"
        f.write_text(runtime_config_text(hcfg, p, **kw))
        ev = evaluate_lua(f.read_bytes()).globals
        rc = runtime_config(hcfg, p, **kw)
        if p.type == "analysis":
            assert read_rtc_thread(f) == 5
            del rc["max_message_size"]  # added by the Heka layer, not written by Hindsight
        del rc["input_limit"]  # lua_sandbox's default, not written by Hindsight
        if p.name == "analysis.inrun":  # 2^53 + 1 is not a double
            rc["limits"]["big"] = float(rc["limits"]["big"])
        assert ev == rc


def test_read_rtc_thread_is_forgiving(tmp_path: Path) -> None:
    assert read_rtc_thread(tmp_path / "missing.rtc") is None
    for text in ("thread = ", "thread = 'x'", "thread = -1", "x = 1", "while true do end"):
        (tmp_path / "t.rtc").write_text(text)
        assert read_rtc_thread(tmp_path / "t.rtc") is None
    (tmp_path / "t.rtc").write_text("thread = 3\nthread = 70")
    assert read_rtc_thread(tmp_path / "t.rtc") == 70


# -- analysis thread assignment (§7.4) -----------------------------------------------------------


def _ap(name: str, thread: int | None = None) -> PluginConfig:
    return PluginConfig(name=f"analysis.{name}", type="analysis", filename="x.lua", lua_file=Path("x.lua"),
                        cfg_lua="", message_matcher="TRUE", thread=thread)


def test_assign_threads() -> None:
    plugins = [_ap("a"), _ap("b", thread=1), _ap("c"), _ap("d"), _ap("e", thread=5), _ap("f")]
    # Explicit threads are kept as written (5 -> worker 5 % 3 = 2); a/c/d/f fill workers by count.
    got = assign_threads(plugins, 3, previous={"analysis.d": 0, "analysis.b": 2})
    assert set(got) == {p.name for p in plugins}
    assert got["analysis.b"] == 1 and got["analysis.e"] == 5 and got["analysis.d"] == 0
    # pinned: b->1, e->2, d->0 (previous .rtc); then a: no empty worker, all have 1 -> 0; c -> 1; f -> 2
    assert (got["analysis.a"], got["analysis.c"], got["analysis.f"]) == (0, 1, 2)
    assert assign_threads([_ap("a"), _ap("b"), _ap("c")], 2) == {"analysis.a": 0, "analysis.b": 1, "analysis.c": 0}
    assert assign_threads([], 4) == {}


# -- error cases (data driven) -------------------------------------------------------------------


def _cases(sub: str, pattern: str) -> list[Path]:
    return sorted((ERRORS / sub).glob(pattern))


@pytest.mark.parametrize("path", _cases("lua_main", "*.cfg"), ids=lambda p: p.stem)
def test_hindsight_cfg_errors(path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as ei:
        load_hindsight_cfg(path)
    assert time.monotonic() - t0 < 2  # hostile files fail fast
    assert str(ei.value) == _expected(path)


@pytest.mark.parametrize("path", _cases("lua_plugin", "*.cfg"), ids=lambda p: p.stem)
def test_plugin_cfg_errors(path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as ei:
        load_plugin_cfg(path, _header(path, "type"), PluginDefaults.builtin("input"))  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 2
    assert str(ei.value) == _expected(path)


@pytest.mark.parametrize("path", _cases("toml", "*.toml"), ids=lambda p: p.stem)
def test_toml_errors(path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_toml(path)
    assert str(ei.value) == _expected(path)


def test_error_fields() -> None:
    path = ERRORS / "toml" / "threads_range.toml"
    with pytest.raises(ConfigError) as ei:
        load_toml(path)
    e = ei.value
    assert (e.file, e.key, e.line, e.reason) == (path, "analysis_threads", 3, "analysis_threads must be 1-64")
    assert e.message == "key 'analysis_threads' must be 1-64 (got 100)"


def test_bytecode_is_refused(tmp_path: Path) -> None:
    (tmp_path / "b.cfg").write_bytes(b"\x1bLuaQ\x00junk")
    with pytest.raises(ConfigError, match="binary chunks are not allowed"):
        load_hindsight_cfg(tmp_path / "b.cfg")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_hindsight_cfg(DATA / "nope.cfg")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_toml(DATA / "nope.toml")
    with pytest.raises(ConfigError, match="must end with .cfg"):
        load_plugin_cfg(SB / "input.lua", "input", PluginDefaults())


def test_the_cfg_state_is_bare() -> None:
    """Nothing lupa or the Lua standard library adds is visible to a cfg."""
    names = ["_G", "_VERSION", "python", "string", "table", "os", "io", "debug", "package", "require",
             "print", "pairs", "type", "tostring", "loadstring", "setfenv", "getmetatable", "pcall", "error",
             "coroutine", "math", "collectgarbage", "newproxy", "dofile", "load"]
    src = "\n".join(f"v_{n} = {n}" for n in names) + "\nshebang_ok = true\n"
    assert evaluate_lua(("#!/usr/bin/env hindsight\n" + src).encode()).globals == {"shebang_ok": True}


def test_configs_and_errors_pickle(toml_plugins: Any) -> None:
    """Configs travel to analysis worker processes; errors may travel back."""
    import pickle

    hcfg, tp = toml_plugins
    plugins = list(tp.values())
    assert pickle.loads(pickle.dumps((hcfg, plugins))) == (hcfg, plugins)
    with pytest.raises(ConfigError) as ei:
        load_toml(ERRORS / "toml" / "threads_range.toml")
    e2 = pickle.loads(pickle.dumps(ei.value))
    assert (str(e2), e2.reason, e2.key, e2.line) == (str(ei.value), ei.value.reason, "analysis_threads", 3)


def test_user_keys_are_read_only(toml_plugins: Any) -> None:
    _, tp = toml_plugins
    with pytest.raises(TypeError):
        tp["analysis.analysis"].user["array"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        tp["analysis.analysis"].thread = 2


def test_lenient_lua_fractions(tmp_path: Path) -> None:
    text = (HS / "rtc.cfg").read_text() + "analysis_threads = 2.9\nbackpressure = 3.5\n"
    (tmp_path / "f.cfg").write_text(text)
    cfg = load_hindsight_cfg(tmp_path / "f.cfg")
    assert (cfg.analysis_threads, cfg.backpressure) == (2, 3)
