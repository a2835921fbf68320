"""message_matcher: lua_sandbox's own test vectors, C-verified quirks, error reporting, and
property tests (robustness, and agreement with a slow reference evaluator)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight_py.matcher import MatcherSyntaxError, compile_matcher, parse
from hindsight_py.matcher.compile import _lua_equivalent
from hindsight_py.matcher.parser import (
    And,
    Comparison,
    Constant,
    FieldRef,
    Header,
    Node,
    Op,
    Or,
    Pattern,
)
from hindsight_py.message.model import Field, Message

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "matcher_vectors.json").read_text())


def _b(value: Any) -> Any:
    """Vector text: plain ASCII strings or {"hex": ...} for arbitrary bytes."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    if isinstance(value, str):
        return value.encode()
    return value


def _message(spec: dict[str, Any]) -> Message:
    fields = tuple(
        Field(_b(f["name"]), f["value_type"], _b(f.get("representation")), tuple(_b(v) for v in f["values"]))
        for f in spec["fields"]
    )
    headers = {k: _b(spec.get(k)) for k in ("type", "logger", "severity", "payload", "env_version", "pid", "hostname")}
    return Message(uuid=bytes.fromhex(spec["uuid"]), timestamp=spec["timestamp"], fields=fields, **headers)


MESSAGES = {name: _message(spec) for name, spec in VECTORS["messages"].items()}


def _id(case: dict[str, Any]) -> str:
    expr = case["expr"]
    return repr(expr if len(expr) < 60 else expr[:57] + "...")


# ---------------------------------------------------------------------------------------------
# Vectors


@pytest.mark.parametrize("case", VECTORS["reference"], ids=_id)
def test_reference_vectors(case: dict[str, Any]) -> None:
    matcher = compile_matcher(case["expr"])
    assert matcher(MESSAGES[case["message"]]) is case["expect"]


@pytest.mark.parametrize("case", VECTORS["quirks"], ids=_id)
def test_c_verified_quirks(case: dict[str, Any]) -> None:
    matcher = compile_matcher(case["expr"])
    assert matcher(MESSAGES[case["message"]]) is case["expect"], case["topic"]


@pytest.mark.parametrize("case", VECTORS["rejected"], ids=_id)
def test_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(MatcherSyntaxError):
        compile_matcher(case["expr"])


def test_vectors_cover_the_c_suite() -> None:
    sources = [c["source"] for c in VECTORS["reference"] + VECTORS["rejected"]]
    # counts of test_heka_message_matcher.c's arrays
    assert sources.count("test_true_matcher") == 80
    assert sources.count("test_false_matcher") == 50
    assert sources.count("test_nil_header_true_matcher") == 11
    assert sources.count("test_nil_header_false_matcher") == 16
    assert sources.count("test_malformed_matcher") == 32


def test_bytes_and_str_expressions_agree() -> None:
    msg = MESSAGES["test"]
    for case in VECTORS["reference"][:40]:
        if case["message"] == "test":
            assert compile_matcher(case["expr"].encode())(msg) is compile_matcher(case["expr"])(msg)


def test_matcher_api() -> None:
    m = compile_matcher("Type == 'TEST'")
    assert m.expression == "Type == 'TEST'"
    assert m.match(MESSAGES["test"]) is True
    assert m(MESSAGES["min"]) is False
    assert m.warnings == ()
    assert m.tests == 1


def test_warnings_for_c_quirks() -> None:
    assert compile_matcher("FALSE && (TRUE) || TRUE").warnings
    assert not compile_matcher("(FALSE && TRUE) || TRUE").warnings
    assert not compile_matcher("Pid == 1 || (TRUE) && TRUE").warnings  # same grouping either way
    carried = compile_matcher("Fields[a][1] == 1 || Fields[b] == 2")
    assert carried.warnings and "Fields[b]" in carried.warnings[0]
    assert not compile_matcher("Fields[a][0] == 1 || Fields[b] == 2").warnings


def test_tree_shapes() -> None:
    t = parse("Fields[x][2][3] != NIL && Timestamp < '1970-01-01T00:00:01.5Z'").tree
    assert isinstance(t, And)
    assert t.left == Comparison(FieldRef(b"x", 2, 3), Op.NE, None, 1)
    assert isinstance(t.right, Comparison) and t.right.value == 1.5e9
    p = parse("Payload =~ 'a.b' || Payload !~ 'ab' || Payload =~ 'a.b'%").tree
    assert isinstance(p, Or)
    values = [n.value for n in (p.left.left, p.left.right, p.right)]  # type: ignore[union-attr]
    assert values == [Pattern(b"a.b", False), Pattern(b"ab", True), Pattern(b"a.b", True)]
    assert _literal("Type == 'it\\'s \\\\ \\x'") == b"it's \\ \\x"
    assert _literal('Type == "it\\\'s"') == b"it's"  # \' is unescaped in "..." too


def _literal(expression: str) -> object:
    tree = parse(expression).tree
    assert isinstance(tree, Comparison)
    return tree.value


# ---------------------------------------------------------------------------------------------
# Error reporting


@pytest.mark.parametrize(
    ("expression", "column", "expected"),
    [
        ("Type = 'test'", 6, "a relational operator (==, !=, <, <=, >, >=, =~, !~)"),
        ("", 1, "a test (Uuid, Timestamp, Type, Logger, Hostname, EnvVersion, Payload, Severity, Pid, Fields[name], TRUE or FALSE) or '('"),
        ("bogus", 1, "a test (Uuid, Timestamp, Type, Logger, Hostname, EnvVersion, Payload, Severity, Pid, Fields[name], TRUE or FALSE) or '('"),
        ("Severity =~ 6", 10, "a relational operator (==, !=, <, <=, >, >=)"),
        ("Pid == 'test='", 8, "a number or NIL"),
        ("Severity > NIL", 12, "a number"),
        ("Type > NIL", 8, "a quoted string"),
        ("Type == 'a' && (Severity == 7", 30, "'&&', '||' or ')'"),
        ("TRUE FALSE", 6, "'&&', '||' or the end of the expression"),
        ("Payload =~ 'foo'i", 17, "'%', '&&', '||' or the end of the expression"),
        ("Fields[test][256] == 1", 14, "an index from 0-199 or 2[0-5][0-5] (no leading zeros) followed by ']'"),
        ("Fields[test", 12, "']' closing the field name"),
        ("Fields[a] < TRUE", 13, "a quoted string or a number"),
        ("Timestamp == '2015-13-01T00:00:00Z'", 20, "a month (01-12)"),
        ("Timestamp == '2015-04-11T17:30:26+01:00'", 37, "offset minutes (00-59, no ':')"),
        ("Type == 'é' && TRUE FALSE", 21, "'&&', '||' or the end of the expression"),  # columns count characters
        (b"Type == '\xc3\xa9' && TRUE FALSE", 22, "'&&', '||' or the end of the expression"),  # ... or bytes
    ],
)
def test_error_column_and_expectation(expression: str | bytes, column: int, expected: str) -> None:
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher(expression)
    err = info.value
    assert (err.column, err.expected) == (column, expected)
    assert str(err) == f"column {column}: expected {expected}"


def test_limit_errors() -> None:
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher("Type =~ 'test")
    assert info.value.column == 14 and "unterminated" in str(info.value)
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher("Type == '" + "x" * 256 + "'")
    assert info.value.column == 9 and "longer than 255" in str(info.value)
    compile_matcher(" && ".join(["TRUE"] * 128))
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher(" || ".join(["TRUE"] * 129))
    assert info.value.column == len(" || ".join(["TRUE"] * 128)) + 2 and "too many tests" in str(info.value)
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher("TRUE\x00 && FALSE")
    assert info.value.column == 5 and "NUL" in str(info.value)


def test_deep_parentheses_do_not_recurse() -> None:
    assert compile_matcher("(" * 50000 + "TRUE" + ")" * 50000)(MESSAGES["min"]) is True
    with pytest.raises(MatcherSyntaxError):
        compile_matcher("(" * 50000 + "TRUE" + ")" * 49999)


# ---------------------------------------------------------------------------------------------
# Property tests

_TOKENS = [
    "Uuid", "Timestamp", "Type", "Logger", "Hostname", "EnvVersion", "Payload", "Severity", "Pid",
    "Fields[", "Fields[a]", "[0]", "[1]", "[255]", "[256]", "]", "[", "==", "!=", "<", "<=", ">", ">=",
    "=~", "!~", "=", "!", "&&", "||", "&", "|", "(", ")", "TRUE", "FALSE", "NIL", "'", '"', "\\", "%",
    "'a'", '"b"', "'%d+'", "'^a$'", "'[a'", "0", "1", "-1", "1.5", "1e3", "01", ".", "e", "+",
    "'2015-04-11T17:30:26Z'", "'2015-04-11T17:30:26.5+0100'", "'2015-13-11T17:30:26Z'", " ", "\t", "\n", "\x00", "é",
]  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.binary(), st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join)))
def test_only_syntax_errors_escape(expression: str | bytes) -> None:
    try:
        matcher = compile_matcher(expression)
    except MatcherSyntaxError as err:
        assert err.column >= 1 and err.expected
        return
    assert matcher(MESSAGES["test"]) in (True, False)
    assert matcher(MESSAGES["min"]) in (True, False)


# -- a slow, independent evaluator of the AST (a direct reading of heka_message_matcher.c) --------


def _strncmp(a: bytes, b: bytes, n: int) -> int:
    """C strncmp; `b` is NUL-terminated in C, `a` is read up to n bytes or its first NUL."""
    for i in range(n):
        ca = a[i] if i < len(a) else 0
        cb = b[i] if i < len(b) else 0
        if ca != cb:
            return ca - cb
        if ca == 0:
            return 0
    return 0


def _c_string_test(op: Op, val: bytes | None, lit: bytes | Pattern) -> bool:
    if isinstance(lit, Pattern):
        if val is None:
            found = False
        elif lit.plain:
            found = lit.source in val
        else:
            found = _c_pattern_match(val, lit.source)
        return found if op is Op.MATCH else not found
    if op is Op.EQ:
        return val is not None and len(val) == len(lit) and _strncmp(val, lit, len(val)) == 0
    if op is Op.NE:
        return val is None or len(val) != len(lit) or _strncmp(val, lit, len(val)) != 0
    if val is None:
        return op in (Op.LT, Op.LE)
    cmp = _strncmp(val, lit, len(val))
    if op is Op.LT:
        return len(val) < len(lit) if cmp == 0 else cmp < 0
    if op is Op.LE:
        return cmp <= 0
    if op is Op.GT:
        return len(val) > len(lit) if cmp == 0 else cmp > 0
    return len(val) >= len(lit) if cmp == 0 else cmp > 0


def _c_numeric_test(op: Op, val: float, d: float) -> bool:
    return {
        Op.EQ: val == d, Op.NE: val != d, Op.LT: val < d, Op.LE: val <= d, Op.GT: val > d, Op.GE: val >= d,
    }[op]  # fmt: skip


def _int(v: int) -> int:
    return int(struct.unpack("<i", struct.pack("<I", v & 0xFFFFFFFF))[0])


def _reference_eval(node: Node, m: Message) -> bool:
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, And):
        return _reference_eval(node.left, m) and _reference_eval(node.right, m)
    if isinstance(node, Or):
        return _reference_eval(node.left, m) or _reference_eval(node.right, m)
    var, op, value = node.variable, node.op, node.value
    if isinstance(var, FieldRef):
        same = [f for f in m.fields if f.name == var.name]
        if var.fi >= len(same) or same[var.fi].type not in (0, 1, 2, 3, 4) or var.ai >= len(same[var.fi].values):
            return value is None and op is Op.EQ
        f = same[var.fi]
        v = f.values[var.ai]
        kind = {0: "s", 1: "s", 2: "n", 3: "n", 4: "b"}[f.type]
        if value is None:
            return op is Op.NE
        if isinstance(value, bool):
            if kind == "s":
                return False
            return (float(v) == float(value)) == (op is Op.EQ)
        if isinstance(value, (bytes, Pattern)):
            return kind == "s" and _c_string_test(op, v, value)  # type: ignore[arg-type]
        return kind == "n" and _c_numeric_test(op, float(v), value)
    if var is Header.TIMESTAMP:
        return _c_numeric_test(op, float(m.timestamp), value)  # type: ignore[arg-type]
    if var is Header.SEVERITY:
        return _c_numeric_test(op, _int(7 if m.severity is None else m.severity), value)  # type: ignore[arg-type]
    if var is Header.PID:
        pid = -(2**31) if m.pid is None else _int(m.pid)
        if value is None:
            return (pid == -(2**31)) == (op is Op.EQ)
        return _c_numeric_test(op, pid, value)  # type: ignore[arg-type]
    attr = {
        Header.UUID: "uuid", Header.TYPE: "type", Header.LOGGER: "logger", Header.PAYLOAD: "payload",
        Header.ENV_VERSION: "env_version", Header.HOSTNAME: "hostname",
    }[var]  # fmt: skip
    hv = getattr(m, attr)
    if value is None:
        return (hv is None) == (op is Op.EQ)
    return _c_string_test(op, hv, value)  # type: ignore[arg-type]


# A port of lua_sandbox's string_matcher.c (not of Lua's lstrlib), to check _lua_equivalent.


def _c_pattern_match(s: bytes, p: bytes) -> bool:
    n, pn = len(s), len(p)

    def pc(i: int) -> int:
        return p[i] if i < pn else 0

    def class_end(i: int) -> int | None:
        c = pc(i)
        i += 1
        if c == 0x25:
            return None if i >= pn else i + 1
        if c == 0x5B:
            if pc(i) == 0x5E:
                i += 1
            while True:
                if i >= pn:
                    return None
                c2 = p[i]
                i += 1
                if c2 == 0x25 and i < pn:
                    i += 1
                if pc(i) == 0x5D:
                    return i + 1
        return i

    def match_class(c: int, cl: int) -> bool:
        lower = chr(cl).lower()
        ch = chr(c) if c < 128 else ""
        tests: dict[str, Callable[[], bool]] = {
            "a": lambda: ch.isalpha(), "c": lambda: c < 32 or c == 127, "d": lambda: ch.isdigit(),
            "l": lambda: ch.islower(), "p": lambda: 33 <= c <= 126 and not ch.isalnum(),
            "s": lambda: c in b" \t\n\r\f\v", "u": lambda: ch.isupper(), "w": lambda: ch.isalnum(),
            "x": lambda: ch in "0123456789abcdefABCDEF", "z": lambda: c == 0,
        }  # fmt: skip
        if cl < 128 and lower in tests and chr(cl).isalpha():
            res = bool(ch and tests[lower]()) if lower not in "cspz" else tests[lower]()
            return res if chr(cl).islower() else not res
        return cl == c

    def bracket(c: int, i: int, ec: int) -> bool:
        sig = True
        if pc(i + 1) == 0x5E:
            sig = False
            i += 1
        i += 1
        while i < ec:
            if p[i] == 0x25:
                i += 1
                if match_class(c, pc(i)):
                    return sig
            elif pc(i + 1) == 0x2D and i + 2 < ec:
                if p[i] <= c <= p[i + 2]:
                    return sig
                i += 2
            elif p[i] == c:
                return sig
            i += 1
        return not sig

    def single(si: int, i: int, ep: int) -> bool:
        if si >= n:
            return False
        c = s[si]
        k = pc(i)
        if k == 0x2E:
            return True
        if k == 0x25:
            return match_class(c, pc(i + 1))
        if k == 0x5B:
            return bracket(c, i, ep - 1)
        return k == c

    def do_match(si: int, i: int) -> int | None:
        while True:
            if i >= pn:
                return si
            k = p[i]
            if k == 0x25 and pc(i + 1) == 0x62:
                if i + 3 >= pn or si >= n or s[si] != p[i + 2]:
                    return None
                b, e, cont = p[i + 2], p[i + 3], 1
                si += 1
                while si < n:
                    if s[si] == e:
                        cont -= 1
                        if cont == 0:
                            break
                    elif s[si] == b:
                        cont += 1
                    si += 1
                else:
                    return None
                si += 1
                i += 4
                continue
            if k == 0x25 and pc(i + 1) == 0x66:
                i += 2
                if pc(i) != 0x5B:
                    return None
                ep = class_end(i)
                if ep is None:
                    return None
                prev = s[si - 1] if si > 0 else 0
                cur = s[si] if si < n else 0
                if bracket(prev, i, ep - 1) or not bracket(cur, i, ep - 1):
                    return None
                i = ep
                continue
            if k == 0x24 and i + 1 == pn:
                return si if si == n else None
            ep = class_end(i)
            if ep is None:
                return None
            m = single(si, i, ep)
            q = pc(ep)
            if q == 0x3F:
                if m:
                    r = do_match(si + 1, ep + 1)
                    if r is not None:
                        return r
                i = ep + 1
                continue
            if q == 0x2A or (q == 0x2B and m):
                start = si + 1 if q == 0x2B else si
                j = 0
                while single(start + j, i, ep):
                    j += 1
                while j >= 0:
                    r = do_match(start + j, ep + 1)
                    if r is not None:
                        return r
                    j -= 1
                return None
            if q == 0x2B:
                return None
            if q == 0x2D:
                while True:
                    r = do_match(si, ep + 1)
                    if r is not None:
                        return r
                    if single(si, i, ep):
                        si += 1
                    else:
                        return None
            if not m:
                return None
            si += 1
            i = ep

    anchor = pn > 0 and p[0] == 0x5E
    start_p = 1 if anchor else 0
    for start in range(n + 1):
        if do_match(start, start_p) is not None:
            return True
        if anchor:
            break
    return False


_ALPHABET = [b"", b"a", b"b", b"ab", b"abc", b"a\x00", b"a\x00b", b"(", b"x)", b"1+1", b"%", b".", b"\xff", b"A-B", b"(a)1", b"ba1"]
_PATTERN_ITEMS = [
    b"a", b"b", b"1", b"(", b")", b".", b"%", b"%1", b"%0", b"%a", b"%d", b"%W", b"%z", b"%(", b"%%", b"[ab]", b"[^a]",
    b"[]", b"[a-", b"[%a-]", b"%b()", b"%bab", b"%b", b"%f[a]", b"%f[^%z]", b"%f", b"^", b"$", b"*", b"+", b"-", b"?",
    b"\\", b"\xff", b"\x00",
]  # fmt: skip

_text = st.one_of(st.sampled_from(_ALPHABET), st.binary(max_size=5))
_pattern_text = st.one_of(st.sampled_from(_ALPHABET), st.lists(st.sampled_from(_PATTERN_ITEMS), max_size=6).map(b"".join))


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    def header() -> bytes | None:
        return draw(st.one_of(st.none(), _text))

    fields = []
    for _ in range(draw(st.integers(0, 5))):
        vt = draw(st.sampled_from([None, 0, 1, 2, 3, 4, 7]))
        if vt in (None, 0, 1, 7):
            vals: list[Any] = draw(st.lists(_text, max_size=3))
        elif vt == 2:
            vals = draw(st.lists(st.sampled_from([0, 1, -1, 5, 500, 2**53 + 1, -(2**63)]), max_size=3))
        elif vt == 3:
            vals = draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, 500.0, 2.0**53, math.inf]), max_size=3))
        else:
            vals = draw(st.lists(st.booleans(), max_size=3))
        fields.append(Field(draw(st.sampled_from([b"a", b"b", b""])), vt, None, tuple(vals)))
    return Message(
        uuid=draw(st.binary(min_size=16, max_size=16)),
        timestamp=draw(st.sampled_from([0, 1, 2**53 + 1, 1428773426113040228, -5])),
        type=header(), logger=header(), payload=header(), env_version=header(), hostname=header(),
        severity=draw(st.sampled_from([None, 0, 6, 7, -1, 2**32 + 3, 2**31])),
        pid=draw(st.sampled_from([None, 0, 5, -(2**31), 2**31, -1])),
        fields=tuple(fields),
    )  # fmt: skip


def _quote(s: bytes) -> str:
    """A single-quoted literal for `s`; bytes that are not UTF-8 travel as surrogate escapes."""
    body = s.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\x00", b"")
    return "'" + body.decode("utf-8", "surrogateescape") + "'"


@st.composite
def _tests(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 6))
    rel = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    number = st.sampled_from(["0", "1", "-1", "6", "7", "500", "1.5", "9007199254740992", "1e400", "-2147483648"])
    if kind == 0:
        return draw(st.sampled_from(["TRUE", "FALSE"]))
    if kind == 1:
        h = draw(st.sampled_from(["Uuid", "Type", "Logger", "Hostname", "EnvVersion", "Payload"]))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "=~", "!~"]))
        if op in ("=~", "!~"):
            return f"{h} {op} {_quote(draw(_pattern_text))}{draw(st.sampled_from(['', '%']))}"
        if h != "Uuid" and op in ("==", "!=") and draw(st.booleans()):
            return f"{h} {op} NIL"
        return f"{h} {op} {_quote(draw(_text))}"
    if kind == 2:
        return f"{draw(st.sampled_from(['Severity', 'Pid', 'Timestamp']))} {draw(rel)} {draw(number)}"
    if kind == 3:
        return f"Pid {draw(st.sampled_from(['==', '!=']))} NIL"
    if kind == 4:
        return f"Timestamp {draw(rel)} '1970-01-01T00:00:0{draw(st.integers(0, 9))}.5{draw(st.sampled_from(['Z', '+0001', '-0100']))}'"
    ref = "Fields[" + draw(st.sampled_from(["a", "b", ""])) + "]" + draw(st.sampled_from(["", "", "[0]", "[1]", "[1][1]", "[0][2]"]))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "=~", "!~"]))
    if op in ("=~", "!~"):
        return f"{ref} {op} {_quote(draw(_pattern_text))}{draw(st.sampled_from(['', '%']))}"
    choices = [_quote(draw(_text)), draw(number)]
    if op in ("==", "!="):
        choices += ["TRUE", "FALSE", "NIL"]
    return f"{ref} {op} {draw(st.sampled_from(choices))}"


_expressions = st.recursive(
    _tests(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" && ", " || ", "&&", "||"]), inner).map("".join),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=8,
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions, st.lists(_messages(), min_size=1, max_size=4))
def test_compiled_predicate_agrees_with_reference_evaluator(expression: str, messages: list[Message]) -> None:
    parsed = parse(expression)
    matcher = compile_matcher(expression)
    for m in messages:
        assert matcher(m) is _reference_eval(parsed.tree, m), (expression, m)


@settings(max_examples=500)
@given(_pattern_text, st.lists(_text, min_size=1, max_size=6))
def test_pattern_rewrite_agrees_with_lua_sandbox_engine(pattern: bytes, subjects: list[bytes]) -> None:
    expression = "Payload =~ " + _quote(pattern)
    matcher = compile_matcher(expression)
    value = parse(expression).tree.value  # type: ignore[union-attr]
    assert isinstance(value, Pattern)
    # subjects resembling the pattern text make matches (and thus disagreements) likely
    for s in [*subjects, pattern, pattern.replace(b"%", b""), pattern.translate(None, b"%[]^$*+-?.")]:
        expected = (value.source in s) if value.plain else _c_pattern_match(s, value.source)
        assert matcher(Message(b"u" * 16, 0, payload=s)) is expected, (pattern, s, _lua_equivalent(pattern))
