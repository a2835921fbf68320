"""The plugin documentation stays in step with the shipped plugins (docs/plugins.md, docs/plugins/).

Data-driven from the files themselves, so a new plugin, a new cfg key or a broken example fails
here rather than in an operator's hands:

- every `plugins/<type>/<name>.lua` has a row in the index docs/plugins.md linking to a page whose
  title names the plugin, and every page is linked from the index;
- every key a plugin passes to `read_config("...")` as a literal is documented on its page (as
  inline code outside the examples), and so is every key the io module it requires reads from the
  plugin cfg (hindsight_py/iomods), except the keys Hindsight itself sets for every plugin;
- every TOML example on the pages loads with hsp's TOML loader, and each page has one that
  configures its own plugin; every Hindsight Lua cfg example loads as a plugin cfg of that plugin.

No hsp runs: the examples were run by hand when written (see the pages); this keeps them loadable.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import pytest

from hindsight_py import resources
from hindsight_py.config import ConfigError, load_plugin_cfg, load_toml, runtime_config
from hindsight_py.config.model import PLUGIN_TYPES, PluginDefaults, PluginType
from hindsight_py.iomods.registry import IO_MODULES

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
INDEX = REPO / "docs" / "plugins.md"
PAGES = REPO / "docs" / "plugins"

FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
PLUGIN_REF = re.compile(r"`((?:input|analysis|output)/[A-Za-z0-9_.-]+\.lua)`")
# read_config("key"), read_config 'key', read_config[[key]] ... with a literal key
READ_CONFIG = re.compile(r"""\bread_config\s*\(?\s*(?:"([^"\n]+)"|'([^'\n]+)'|\[\[([^\]\n]+)\]\])""")
REQUIRE = re.compile(r"""\brequire\s*\(?\s*["']([A-Za-z0-9_.]+)["']""")
# how the io modules read the plugin cfg: cfg_str(cfg, "key", ...), _number(cfg, "key", ...),
# cfg.get("key"), ctx.config.get("key") ...
IO_CFG_KEY = re.compile(
    r"""(?:\b(?:cfg_str|cfg_number|cfg_bool|_text|_number|_strings|_entries)\(\s*cfg\s*,\s*"""
    r"""|\b(?:cfg|config)\.get\(\s*)"([A-Za-z_][A-Za-z0-9_]*)\""""
)


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page."""

    lang: str
    text: str
    index: int  # its position among the page's blocks of that language, for messages


def plugin_files() -> list[Path]:
    return sorted(p for t in PLUGIN_TYPES for p in (PLUGINS / t).glob("*.lua"))


def rel(plugin: Path) -> str:
    return f"{plugin.parent.name}/{plugin.name}"


@cache
def index_rows() -> dict[str, Path]:
    """`type/name.lua` -> the page its index table row links to.

    A row is a table line whose first cell names the plugin in backticks; its page is the last
    link to a .md file on that line.
    """
    rows: dict[str, Path] = {}
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        cells = line.strip().split("|")
        if len(cells) < 3 or line.lstrip()[:1] != "|":
            continue
        m = PLUGIN_REF.search(cells[1])
        links = LINK.findall(line)
        if m and links:
            assert m.group(1) not in rows, f"docs/plugins.md lists {m.group(1)} twice"
            rows[m.group(1)] = (INDEX.parent / links[-1]).resolve()
    return rows


def page_of(plugin: Path) -> Path:
    rows = index_rows()
    assert rel(plugin) in rows, (
        f"{rel(plugin)} has no row in docs/plugins.md "
        f"(| `{rel(plugin)}` | type | what it is for | [page](plugins/<type>_<name>.md) |)"
    )
    return rows[rel(plugin)]


def blocks(page: Path, lang: str) -> list[Block]:
    found = [m for m in FENCE.finditer(page.read_text(encoding="utf-8")) if m.group(1) == lang]
    return [Block(lang, m.group(2), i) for i, m in enumerate(found)]


def documented_names(page: Path) -> set[str]:
    """Every identifier that appears inside inline code on the page, examples left out."""
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    names: set[str] = set()
    for span in INLINE_CODE.findall(prose):
        names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_.-]*", span))
    return names


def read_config_keys(plugin: Path) -> set[str]:
    src = plugin.read_text(encoding="utf-8")
    return {next(g for g in m.groups() if g) for m in READ_CONFIG.finditer(src)}


def io_modules_required(plugin: Path) -> set[str]:
    return {m for m in REQUIRE.findall(plugin.read_text(encoding="utf-8")) if m in IO_MODULES}


def io_module_sources(name: str) -> list[Path]:
    """The Python module behind `require "<name>"` and the iomods modules it imports."""
    module = IO_MODULES[name].split(":")[0]
    main = REPO / (module.replace(".", "/") + ".py")
    text = main.read_text(encoding="utf-8")
    helpers = re.findall(r"^from hindsight_py\.iomods\.(\w+) import", text, re.M)
    return [main] + [REPO / "hindsight_py" / "iomods" / f"{h}.py" for h in helpers]


@cache
def hindsight_set_keys() -> frozenset[str]:
    """Keys Hindsight (and hsp) put into every plugin's runtime config: documented once, in the
    index, not on each page."""
    tables = (
        '[input.i]\nfilename = "file.lua"',
        '[analysis.a]\nfilename = "counter.lua"\nmessage_matcher = "TRUE"',
        '[output.o]\nfilename = "file.lua"\nmessage_matcher = "TRUE"',
    )
    keys: set[str] = set()
    with tempfile.TemporaryDirectory() as d:
        for i, table in enumerate(tables):
            cfg = Path(d) / f"{i}.toml"
            cfg.write_text(f'output_path = "out"\n{table}\n', encoding="utf-8")
            hcfg, plugins = load_toml(cfg)
            keys |= runtime_config(hcfg, plugins[0], thread=0).keys()
    return frozenset(keys - {"filename", "message_matcher"})


def adjust_paths(text: str) -> str:
    """The example with `output_path` pointing into the test's directory (added if missing)."""
    if re.search(r"^output_path\s*=", text, re.M):
        return re.sub(r"^output_path\s*=.*$", 'output_path = "out"', text, flags=re.M)
    return 'output_path = "out"\n' + text


PLUGIN_IDS = [rel(p) for p in plugin_files()]


def test_there_are_plugins() -> None:
    assert len(plugin_files()) >= 10, plugin_files()


@pytest.mark.parametrize("plugin", plugin_files(), ids=PLUGIN_IDS)
def test_plugin_has_a_page_linked_from_the_index(plugin: Path) -> None:
    page = page_of(plugin)
    assert page.is_file(), f"docs/plugins.md links {rel(plugin)} to {page}, which does not exist"
    assert page.parent == PAGES, f"{rel(plugin)}'s page should be in docs/plugins/, not {page}"
    title = page.read_text(encoding="utf-8").splitlines()[0]
    assert title.startswith("# ") and rel(plugin) in title, (
        f"{page.name} is linked for {rel(plugin)} but its title is {title!r}"
    )


def test_every_page_is_linked_and_every_link_resolves() -> None:
    linked: set[Path] = set()
    for doc in [INDEX, *sorted(PAGES.glob("*.md"))]:
        for target in LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.is_file(), f"{doc.relative_to(REPO)} links to {target}, which does not exist"
            if doc == INDEX:
                linked.add(path)
    orphans = sorted(p.name for p in PAGES.glob("*.md") if p.resolve() not in linked)
    assert not orphans, f"pages not linked from docs/plugins.md: {orphans}"
    listed = set(index_rows())
    gone = sorted(listed - set(PLUGIN_IDS))
    assert not gone, f"docs/plugins.md lists plugins that are not in plugins/: {gone}"


@pytest.mark.parametrize("plugin", plugin_files(), ids=PLUGIN_IDS)
def test_every_read_config_key_is_documented(plugin: Path) -> None:
    page = page_of(plugin)
    missing = sorted(read_config_keys(plugin) - documented_names(page))
    assert not missing, f"{rel(plugin)} reads cfg keys that {page.name} does not document: {missing}"


@pytest.mark.parametrize("module", sorted(IO_MODULES), ids=sorted(IO_MODULES))
def test_every_io_module_cfg_key_is_documented(module: str) -> None:
    users = [p for p in plugin_files() if module in io_modules_required(p)]
    if not users:
        pytest.skip(f"no shipped plugin requires {module}")
    keys: set[str] = set()
    for src in io_module_sources(module):
        keys |= set(IO_CFG_KEY.findall(src.read_text(encoding="utf-8")))
    assert keys, f"found no cfg keys in the sources of {module}: has the way it reads its cfg changed?"
    documented = set().union(*(documented_names(page_of(p)) for p in users))
    missing = sorted(keys - documented - hindsight_set_keys())
    pages = ", ".join(page_of(p).name for p in users)
    assert not missing, f"{module} reads cfg keys that {pages} do not document: {missing}"


@pytest.mark.parametrize("plugin", plugin_files(), ids=PLUGIN_IDS)
def test_toml_examples_load(plugin: Path, tmp_path: Path) -> None:
    page = page_of(plugin)
    examples = blocks(page, "toml")
    assert examples, f"{page.name} has no TOML example"
    configures_it = False
    for b in examples:
        cfg = tmp_path / f"example-{b.index}.toml"
        cfg.write_text(adjust_paths(b.text), encoding="utf-8")
        try:
            _, plugins = load_toml(cfg)
        except ConfigError as e:
            pytest.fail(f"{page.name}, TOML example {b.index + 1}: {e}\n{b.text}")
        configures_it |= any(p.lua_file.parent.name == plugin.parent.name and p.lua_file.name == plugin.name
                             for p in plugins)
    assert configures_it, f"no TOML example on {page.name} configures {rel(plugin)}"


@pytest.mark.parametrize("plugin", plugin_files(), ids=PLUGIN_IDS)
def test_hindsight_cfg_examples_load(plugin: Path, tmp_path: Path) -> None:
    page = page_of(plugin)
    ptype = cast(PluginType, plugin.parent.name)
    cfgs = [b for b in blocks(page, "lua") if re.search(r"^filename\s*=", b.text, re.M)]
    if not cfgs:
        pytest.skip(f"{page.name} has no Hindsight cfg example")
    (tmp_path / ptype).mkdir()
    for b in cfgs:
        path = tmp_path / ptype / f"example{b.index}.cfg"
        path.write_text(b.text, encoding="utf-8")
        try:
            loaded = load_plugin_cfg(path, ptype, PluginDefaults.builtin(ptype), install_path=resources.plugins_dir())
        except ConfigError as e:
            pytest.fail(f"{page.name}, Lua cfg example {b.index + 1}: {e}\n{b.text}")
        assert (loaded.lua_file.parent.name, loaded.lua_file.name) == (ptype, plugin.name), (
            f"{page.name}, Lua cfg example {b.index + 1} configures {loaded.lua_file}, not {rel(plugin)}"
        )


# -- the checks themselves can fail ---------------------------------------------------------------


def test_checks_catch_an_undocumented_key_and_a_broken_example(tmp_path: Path) -> None:
    page = tmp_path / "x.md"
    page.write_text("# output/x.lua\n\n| `known` | ... |\n\n```toml\n[output.x]\nfilename = \"file.lua\"\n"
                    "message_matcher = \"Type ==\"\n```\n\nText with `other = 1` and\n```lua\nnot_in_prose = 1\n```\n")
    names = documented_names(page)
    assert {"known", "other"} <= names and "not_in_prose" not in names
    plugin = tmp_path / "x.lua"
    plugin.write_text('local a = read_config("known")\nlocal b = read_config "missing"\nrequire "hsp_parquet"\n')
    assert read_config_keys(plugin) - names == {"missing"}
    assert io_modules_required(plugin) == {"hsp_parquet"}
    (b,) = blocks(page, "toml")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(adjust_paths(b.text))
    with pytest.raises(ConfigError, match="message_matcher"):
        load_toml(cfg)
