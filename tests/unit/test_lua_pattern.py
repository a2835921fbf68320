"""Differential tests: hindsight_py.matcher.lua_pattern against the real Lua 5.1 string.find (lupa)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lupa.lua51 as lupa_lua51  # a hard dependency of hsp: never skip the differential tests

from hindsight_py.matcher.lua_pattern import (
    LuaPatternError,
    _compile,
    _describe,
    _interp_find,
    _regex_find,
    compile_find,
    find,
)

_LUA = lupa_lua51.LuaRuntime(encoding=None)
assert _LUA.eval("_VERSION") == b"Lua 5.1"
_LUA_FIND = _LUA.eval(
    """function(s, p, init, plain)
         local function pack(...) return {n = select('#', ...), ...} end
         return pack(pcall(string.find, s, p, init, plain))
       end"""
)

Result = tuple[str, Any]  # ("ok", tuple | None) or ("err", message)


def lua_find(subject: bytes, pattern: bytes, init: int | None = None, plain: bool | None = None) -> Result:
    """Run Lua 5.1's string.find and normalise its answer."""
    r = _LUA_FIND(subject, pattern, init, plain)
    n = r[b"n"]
    values = [r[i] for i in range(1, n + 1)]
    ok = values.pop(0)
    if not ok:
        return ("err", values[0].decode("latin-1"))
    if values == [None]:
        return ("ok", None)
    norm = tuple(int(v) if isinstance(v, float) else v for v in values)
    return ("ok", norm)


def py_find(subject: bytes, pattern: bytes, init: int | None = None, plain: bool | None = None) -> Result:
    try:
        return ("ok", find(subject, pattern, 1 if init is None else init, bool(plain)))
    except LuaPatternError as exc:
        return ("err", str(exc))


def interp_only(subject: bytes, pattern: bytes, init: int = 1) -> Result:
    """Force the interpreter (the lstrlib.c port) for any non-plain pattern."""
    prog = _compile(pattern)
    if prog.plain:
        return py_find(subject, pattern, init)
    length = len(subject)
    i = init + length + 1 if init < 0 else init
    i = min(max(i - 1, 0), length)
    try:
        return ("ok", _interp_find(subject, prog, i))
    except LuaPatternError as exc:
        return ("err", str(exc))


def check(subject: bytes, pattern: bytes, init: int | None = None, plain: bool | None = None) -> Result:
    """Assert find, the interpreter, the regex path and compile_find all agree with Lua."""
    expected = lua_find(subject, pattern, init, plain)
    assert py_find(subject, pattern, init, plain) == expected, (subject, pattern, init, plain)
    if not plain:
        assert interp_only(subject, pattern, 1 if init is None else init) == expected, (subject, pattern, init)
    prog = _compile(pattern)
    if not plain and not prog.plain and prog.regex is not None:
        # The translation must be exact on its own, not only through find()'s dispatch.
        assert expected[0] == "ok"
        length = len(subject)
        i = 1 if init is None else init
        i = i + length + 1 if i < 0 else i
        i = min(max(i - 1, 0), length)
        assert _regex_find(subject, prog, i) == expected[1], (subject, pattern, init)
    if init is None:
        try:
            pred = compile_find(pattern, bool(plain))
        except LuaPatternError as exc:
            if expected[0] == "err":
                assert str(exc) == expected[1], (subject, pattern)
            else:
                # Lua's lazy error was not reached on this subject; compile_find rejects up front.
                assert prog.error is not None and str(exc) == str(prog.error)
        else:
            assert expected[0] == "ok", (subject, pattern, expected)
            assert pred(subject) is (expected[1] is not None), (subject, pattern, expected)
    return expected


# --- hand-written table ---------------------------------------------------------------------

SUBJECTS = [
    b"",
    b"a",
    b"hello world",
    b"f(a(b)c)d(e",
    b"THE (quick) fox",
    b"x]y^z$w-",
    b"a\0b\0c",
    b"\xff\xfe\x80abc\xe9",
    b"line1\nline2\n",
    b"aaa bbb aaa",
    b"key=value; name=hsp_01",
    b"%a%%[x]",
    b"  \t\r\n\v\f ",
    b"[[]]",
]

PATTERNS = [
    # empty / plain / specials decision
    b"", b"a", b"o w", b"a)", b"]", b")(", b"a\0.", b".\0zz", b"\0", b"a\0b", b"%\0",
    # anchors
    b"^", b"$", b"^$", b"^h", b"^hello world$", b"d$", b"a^b", b"^^", b"$$", b"x$y", b"a$*", b"^$a",
    b"$^", b"^*", b"world$", b"\n$", b"line2$", b"^%s*$",
    # classes
    b"%a+", b"%A+", b"%d", b"%l%l", b"%u", b"%w+", b"%W", b"%x+", b"%p", b"%P+", b"%s+", b"%S+",
    b"%c", b"%z", b"%Z+", b"%q", b"%.", b"%%", b"%]", b"%^", b"%$", b"%(", b".", b".+", b"..",
    # sets
    b"[]]", b"[^]]", b"[^]]+", b"[a-]", b"[-a]", b"[%a-z]", b"[a-%]]", b"[%]]", b"[]-a]",
    b"[^%s]+", b"[%w_]+", b"[\x80-\xff]+", b"[^\x80-\xff]", b"[%z]", b"[^%z]+", b"[a-c-e]",
    b"[z-a]", b"[]", b"[^]", b"[a", b"[%", b"[a%", b"[%a", b"[^", b"[]]]", b"[[]", b"[%[%]]+",
    # quantifiers
    b"a*", b"a-", b"a+", b"a?", b"a-b", b"a*b", b".-", b".-$", b"a.-o", b"a.*o", b"o.-", b"l+o?",
    b"a**", b"a*?", b"a+-", b"-", b"--", b"*", b"+a", b"?", b"x?y?z?", b"[ab]-b", b"%a-%d",
    # captures
    b"(a)", b"()", b"()a()", b"(a*(.)%w(%s*))", b"(h)(e)(l)", b"(", b"(a", b")", b"a)(", b"(()",
    b"(a)*", b"(a)?", b"((a))", b"()()", b"(.-)=(.-);",
    # back-references
    b"(a)%1", b"(.)%1", b"(a+) %1", b"%1", b"%0", b"(a%1)", b"()%1", b"(a)%2", b"(.)(.)%2%1",
    b"(a)%1*", b"(%w+)=%1", b"(o)(.-)%1",
    # %b and %f
    b"%b()", b"%b()*", b"%b[]", b"%b\"\"", b"%bxx", b"%b", b"%bx", b"%b(", b"a%b()d", b"%b)(",
    b"%f[%w]%w+", b"%f[%W]", b"%f[%z]", b"%f[^%z]", b"%f[a]", b"%f", b"%fa", b"%f[", b"%f[%a]$",
    b"%f[%l]%a", b"%f[\0]", b"%f[^\0]",
    # patterns ending with % and other malformed
    b"%", b"a%", b"abc%", b"(a%", b"((((((((((((((((((((((((((((((((a)", b"(((((((((((((((((((((((((((((((((a",
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
def test_table(pattern: bytes) -> None:
    for subject in SUBJECTS:
        check(subject, pattern)


@pytest.mark.parametrize(
    "subject,pattern,init",
    [
        (b"hello", b"l", 4),
        (b"hello", b"l", 5),
        (b"hello", b"", 10),
        (b"hello", b"", 6),
        (b"hello", b"o", -1),
        (b"hello", b"h", -100),
        (b"hello", b"^l", 3),
        (b"hello", b"^l", 4),
        (b"hello", b"%f[%w]", 2),
        (b"hello world", b"%f[%w]%w+", 2),
        (b"hello", b"$", 3),
        (b"hello", b"()", 6),
        (b"hello", b"", 0),
        (b"hello", b"x*$", -2),
        (b"(a)(b)", b"%b()", 2),
    ],
)
def test_init(subject: bytes, pattern: bytes, init: int) -> None:
    check(subject, pattern, init)


@pytest.mark.parametrize("pattern", [b"a.", b"(", b"%", b"[", b"^a", b"a$", b"", b"\0"])
def test_plain(pattern: bytes) -> None:
    for subject in [b"", b"xa.y", b"(%[", b"^a$", b"a\0"]:
        check(subject, pattern, plain=True)
        check(subject, pattern, 2, plain=True)


def test_paths() -> None:
    """The common matcher constructs take the fast paths."""
    assert _describe(b"foo")[0] == "plain"
    assert _describe(b"a)")[0] == "plain"
    assert _describe(b"^TE")[0] == "literal"
    assert _describe(b"^TEST$")[0] == "literal"
    assert _describe(b"%.log$")[0] == "literal"
    for p in [b"name=%w+", b"^[%w_]+$", b"%f[%w]x", b"(a)%1", b"%b\"\"", b".-x", b"^%s*$"]:
        assert _describe(p)[0] == "regex", p
    assert _describe(b"%b()")[0] == "interpreter"
    assert _describe(b"a%")[0] == "error"


def test_compile_find_rejects_lazy_errors() -> None:
    # Lua only complains when the matcher reaches the bad item...
    assert lua_find(b"b", b"a%") == ("ok", None)
    assert find(b"b", b"a%") is None
    assert lua_find(b"x", b"(a") == ("ok", None)
    assert find(b"x", b"(a") is None
    # ...but a matcher must fail at configuration time.
    with pytest.raises(LuaPatternError, match=r"malformed pattern \(ends with '%'\)"):
        compile_find(b"a%")
    with pytest.raises(LuaPatternError, match="unfinished capture"):
        compile_find(b"(a")
    with pytest.raises(LuaPatternError, match="invalid capture index"):
        compile_find(b"x%1")


def test_predicate_returns_bool() -> None:
    for p in [b"abc", b"^TE", b"^TE$", b"ST$", b"name=%w+", b"%b()", b"^", b"$"]:
        pred = compile_find(p)
        for s in [b"", b"TEST", b"name=x (y)", b"abc"]:
            assert isinstance(pred(s), bool)
            assert pred(s) is (lua_find(s, p)[1] is not None), (p, s)


def test_deep_interpreter_recursion_is_an_error_not_a_crash() -> None:
    pattern = b"%b()" + b"a-" * 5000
    with pytest.raises(LuaPatternError, match="pattern too complex"):
        find(b"()" + b"a" * 10, pattern)
    # The regex path has no Python recursion: same length, no %b, is fine.
    assert find(b"a" * 10, b"a-" * 5000 + b"$") == (1, 10)


# --- hypothesis -----------------------------------------------------------------------------

_PATTERN_ALPHABET = b"ab()%[]^$*+-?.zfw1\0"
_SUBJECT_ALPHABET = b"ab()[]%^$-. z\0\xff\n"

raw_patterns = st.binary(max_size=10).map(lambda b: bytes(_PATTERN_ALPHABET[x % len(_PATTERN_ALPHABET)] for x in b))
subjects = st.binary(max_size=12).map(lambda b: bytes(_SUBJECT_ALPHABET[x % len(_SUBJECT_ALPHABET)] for x in b))


@st.composite
def structured_patterns(draw: st.DrawFn) -> bytes:
    """Mostly well-formed patterns, so that the regex path is exercised, not just error paths."""
    single = st.sampled_from(
        [b"a", b"b", b".", b"%a", b"%A", b"%z", b"%Z", b"%s", b"%p", b"%%", b"%(", b"(", b")",
         b"[ab]", b"[^a]", b"[]]", b"[^]]", b"[a-]", b"[%a-z]", b"[%z]", b"[(-a]", b"$", b"^", b"-"]
    )
    items: list[bytes] = []
    open_caps = 0
    n_caps = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 4:
            items.append(draw(single) + draw(st.sampled_from([b"", b"", b"*", b"-", b"+", b"?"])))
        elif kind == 5:
            items.append(draw(st.sampled_from([b"(", b"()"])))
            if items[-1] == b"(":
                open_caps += 1
            n_caps += 1
        elif kind == 6 and open_caps:
            items.append(b")")
            open_caps -= 1
        elif kind == 7:
            items.append(draw(st.sampled_from([b"%b()", b"%b[]", b"%baa", b"%b()*"])))
        elif kind == 8:
            items.append(draw(st.sampled_from([b"%f[a]", b"%f[%z]", b"%f[^a]", b"%f[^%z]", b"%f[%a]"])))
        elif n_caps:
            items.append(b"%" + str(draw(st.integers(1, n_caps))).encode())
    items.extend([b")"] * open_caps)
    prefix = draw(st.sampled_from([b"", b"", b"^"]))
    suffix = draw(st.sampled_from([b"", b"", b"$"]))
    return prefix + b"".join(items) + suffix


_SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(raw_patterns, subjects)
def test_hypothesis_raw(pattern: bytes, subject: bytes) -> None:
    check(subject, pattern)


@_SETTINGS
@given(structured_patterns(), subjects)
def test_hypothesis_structured(pattern: bytes, subject: bytes) -> None:
    check(subject, pattern)


@settings(max_examples=300, deadline=None)
@given(structured_patterns() | raw_patterns, subjects, st.integers(-15, 15), st.booleans())
def test_hypothesis_init_plain(pattern: bytes, subject: bytes, init: int, plain: bool) -> None:
    check(subject, pattern, init, plain)
