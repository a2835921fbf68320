"""Compile a parsed message_matcher into one Python predicate over `Message`.

Every message that reaches a plugin goes through its matcher, so evaluation must not walk the
tree or re-dispatch on operator/type per message.  Each comparison becomes a closure specialised
for its variable, operator and literal kind (built from small source templates, once per shape),
`&&`/`||` chains become flat short-circuiting closures, and TRUE/FALSE are folded away.

Semantics follow lua_sandbox's `heka_message_matcher.c` (checked against the C code, not just
the spec):

- Strings compare with `strncmp` plus a length tie-break.  That equals Python `bytes` ordering
  except for `<=`, where a value consisting of the literal, a NUL byte and anything after it also
  compares "<=" (strncmp stops at the NUL).  Uuids often contain NUL bytes, so this is kept.
- Absent string headers: `==` false, `!=` true, `<`/`<=` true, `>`/`>=` false, `=~` false,
  `!~` true.  Severity defaults to 7.  Severity and Pid are C ints (values are wrapped to
  int32).  An absent Pid is stored as INT_MIN, so numeric tests see -2147483648 (`Pid < 0` is
  true for a message without Pid) and a Pid equal to INT_MIN counts as NIL.
- Numbers are doubles: Timestamp, integer fields etc. are converted to double *before*
  comparing, exactly like C (matters above 2**53).
- Fields: a missing field/element, or a field with an unknown value_type, only satisfies
  `== NIL`; a type mismatch is false for every operator including `!=`; TRUE/FALSE compare BOOL,
  INTEGER and DOUBLE values with 1/0.
- `=~`/`!~` run lua_sandbox's trimmed copy of the Lua 5.1 matcher, which differs from
  `string.find`: no captures (`(`, `)` are literal characters, `%1` is a literal `1`), and a
  malformed pattern simply never matches instead of raising.  `_lua_equivalent` rewrites such
  patterns into a Lua 5.1 pattern with the same meaning for `lua_pattern.compile_find`.  (One
  thing is not reproduced: at the end of a value the C `%f[set]` and `%b` read the byte that
  follows the value in the protobuf buffer; we use Lua's NUL instead.)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from hindsight_py.matcher import lua_pattern
from hindsight_py.matcher.parser import (
    And,
    Comparison,
    Constant,
    FieldRef,
    Header,
    Node,
    Op,
    Or,
    Parsed,
    Pattern,
    parse,
)
from hindsight_py.message.model import Message

__all__ = ["Matcher", "Predicate", "compile_matcher", "compile_tree"]

Predicate = Callable[[Message], bool]

_FIELDS = Message._fields
_I_UUID = _FIELDS.index("uuid")
_I_TIMESTAMP = _FIELDS.index("timestamp")
_I_SEVERITY = _FIELDS.index("severity")
_I_PID = _FIELDS.index("pid")
_I_FIELDS = _FIELDS.index("fields")
_HEADER_INDEX = {
    Header.UUID: _I_UUID,
    Header.TYPE: _FIELDS.index("type"),
    Header.LOGGER: _FIELDS.index("logger"),
    Header.PAYLOAD: _FIELDS.index("payload"),
    Header.ENV_VERSION: _FIELDS.index("env_version"),
    Header.HOSTNAME: _FIELDS.index("hostname"),
}

INT_MIN = -2147483648
SEVERITY_DEFAULT = 7
_EXACT_LIMIT = 2.0**53


def _i32(value: int) -> int:
    """C's `(int)` of a wider integer (two's complement wrap), as lua_sandbox stores Severity/Pid."""
    return ((int(value) + 2147483648) & 0xFFFFFFFF) - 2147483648


# Field value types (None = absent on the wire = STRING).  Anything else is "no such field" to C.
_STR_TYPES = frozenset({None, 0, 1})
_NUM_TYPES = frozenset({2, 3})
_BOOL_TYPES = frozenset({2, 3, 4})
_KNOWN_TYPES = frozenset({None, 0, 1, 2, 3, 4})

_PY_OP = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_PY_FUNC = {
    Op.EQ: lambda a, b: a == b,
    Op.NE: lambda a, b: a != b,
    Op.LT: lambda a, b: a < b,
    Op.LE: lambda a, b: a <= b,
    Op.GT: lambda a, b: a > b,
    Op.GE: lambda a, b: a >= b,
}
# Result of a string test against an absent header (C: `val->s == NULL`).
_ABSENT_STRING = {
    Op.EQ: False,
    Op.NE: True,
    Op.LT: True,
    Op.LE: True,
    Op.GT: False,
    Op.GE: False,
    Op.MATCH: False,
    Op.NOT_MATCH: True,
}

_TEMPLATE_GLOBALS: dict[str, Any] = {
    "_i32": _i32,
    "_STR": _STR_TYPES,
    "_NUM": _NUM_TYPES,
    "_BOOL": _BOOL_TYPES,
    "_KNOWN": _KNOWN_TYPES,
}


@functools.lru_cache(maxsize=None)
def _factory(source: str) -> Callable[..., Predicate]:
    """Turn a template into a closure factory; cached so each shape is compiled only once."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<message_matcher>", "exec"), dict(_TEMPLATE_GLOBALS), namespace)
    return namespace["make"]  # type: ignore[no-any-return]


def _string_expr(op: Op) -> str:
    """Python expression for C `string_test` on a present value `v` against `lit`."""
    if op is Op.LE:
        return "v <= lit or v.startswith(lit_nul)"  # strncmp stops at a NUL in the value
    return f"v {_PY_OP[op]} lit"


def _match_expr(pattern: Pattern, negate: bool) -> str:
    if pattern.plain:
        return "lit not in v" if negate else "lit in v"
    return "not find(v)" if negate else "find(v)"


# ---------------------------------------------------------------------------------------------
# Patterns


def _class_end(p: bytes, i: int) -> int | None:
    """End of the `[...]` set starting at p[i], or None where lua_sandbox's classend fails."""
    n = len(p)
    j = i + 1
    if j < n and p[j] == 0x5E:
        j += 1
    while True:  # the first character is always part of the set, even a ']'
        if j >= n:
            return None
        c = p[j]
        j += 1
        if c == 0x25 and j < n:
            j += 1
        if j < n and p[j] == 0x5D:
            return j + 1


def _lua_equivalent(source: bytes) -> bytes | None:
    """Rewrite a lua_sandbox matcher pattern as a Lua 5.1 pattern; None if it can never match.

    The pattern items are fixed by the pattern text alone, and a match has to pass through all
    of them, so an item that lua_sandbox considers malformed (trailing '%', unclosed '[',
    '%b' without two characters, '%f' without a set) makes the whole pattern match nothing.
    """
    n = len(source)
    out = bytearray()
    i = 0
    if n and source[0] == 0x5E:  # '^' anchors only at the very start
        out.append(0x5E)
        i = 1
    while i < n:
        c = source[i]
        if c == 0x25:  # '%'
            if i + 1 >= n:
                return None
            d = source[i + 1]
            if d == 0x62:  # %bxy: exactly two raw characters, no quantifier
                if i + 3 >= n:
                    return None
                out += source[i : i + 4]
                i += 4
                continue
            if d == 0x66:  # %f[set]: no quantifier
                if i + 2 >= n or source[i + 2] != 0x5B:
                    return None
                end = _class_end(source, i + 2)
                if end is None:
                    return None
                out += source[i:end]
                i = end
                continue
            # `%<digit>` is a back-reference in Lua but a literal digit in lua_sandbox
            out += source[i + 1 : i + 2] if 0x30 <= d <= 0x39 else source[i : i + 2]
            i += 2
        elif c == 0x5B:  # '['
            end = _class_end(source, i)
            if end is None:
                return None
            out += source[i:end]
            i = end
        elif c == 0x28 or c == 0x29:  # '(' ')' are plain characters in lua_sandbox
            out += b"%" + source[i : i + 1]
            i += 1
        else:
            out.append(c)
            i += 1
        if i < n and source[i] in b"?*+-":
            out.append(source[i])
            i += 1
    return bytes(out)


def _never(subject: bytes) -> bool:
    return False


@functools.lru_cache(maxsize=1024)
def _pattern_finder(source: bytes) -> Callable[[bytes], bool]:
    lua = _lua_equivalent(source)
    if lua is None:
        return _never
    try:
        return lua_pattern.compile_find(lua, False)
    except lua_pattern.LuaPatternError:  # cannot happen for a rewritten pattern; never match
        return _never


# ---------------------------------------------------------------------------------------------
# Comparisons


def _header_string(index: int, op: Op, value: bytes | Pattern) -> Predicate:
    if isinstance(value, Pattern):
        find = _pattern_finder(value.source) if not value.plain else None
        lit = value.source
        absent = _ABSENT_STRING[op]
        expr = _match_expr(value, op is Op.NOT_MATCH)
        make = _factory(
            "def make(i, lit, lit_nul, find):\n"
            "    def test(m):\n"
            "        v = m[i]\n"
            "        if v is None:\n"
            f"            return {absent}\n"
            f"        return {expr}\n"
            "    return test\n"
        )
        return make(index, lit, lit + b"\x00", find)
    if op is Op.EQ or op is Op.NE:  # None compares unequal to any bytes: no test needed
        make = _factory(
            "def make(i, lit, lit_nul, find):\n"
            f"    return lambda m: m[i] {_PY_OP[op]} lit\n"
        )
        return make(index, value, value + b"\x00", None)
    absent = _ABSENT_STRING[op]
    make = _factory(
        "def make(i, lit, lit_nul, find):\n"
        "    def test(m):\n"
        "        v = m[i]\n"
        "        if v is None:\n"
        f"            return {absent}\n"
        f"        return {_string_expr(op)}\n"
        "    return test\n"
    )
    return make(index, value, value + b"\x00", None)


def _header_nil(index: int, op: Op) -> Predicate:
    if op is Op.EQ:
        return lambda m: m[index] is None
    return lambda m: m[index] is not None


def _numeric_cmp(var: str, op: Op, d: float) -> str:
    """`var OP d` with C's int-to-double conversion, which is only observable when |d| >= 2**53."""
    if abs(d) < _EXACT_LIMIT:  # (a literal is never NaN; inf takes the float() path, harmlessly)
        return f"{var} {_PY_OP[op]} d"
    return f"float({var}) {_PY_OP[op]} d"


def _timestamp(op: Op, d: float) -> Predicate:
    make = _factory(
        "def make(i, d):\n"
        f"    return lambda m: {_numeric_cmp('m[i]', op, d)}\n"
    )
    return make(_I_TIMESTAMP, d)


def _int32_header(index: int, op: Op, d: float, absent_value: int) -> Predicate:
    """Severity / Pid: C ints; `absent_value` is what lua_sandbox stores when the header is absent."""
    absent = _PY_FUNC[op](absent_value, d)
    make = _factory(
        "def make(i, d, absent):\n"
        "    def test(m):\n"
        "        x = m[i]\n"
        "        if x is None:\n"
        "            return absent\n"
        "        if -2147483648 <= x <= 2147483647:\n"
        f"            return x {_PY_OP[op]} d\n"
        f"        return _i32(x) {_PY_OP[op]} d\n"
        "    return test\n"
    )
    return make(index, d, absent)


def _pid_nil(op: Op) -> Predicate:
    def is_nil(m: Message) -> bool:
        x = m.pid
        return x is None or x == INT_MIN or (not -2147483648 <= x <= 2147483647 and _i32(x) == INT_MIN)

    if op is Op.EQ:
        return is_nil
    return lambda m: not is_nil(m)


def _field(ref: FieldRef, op: Op, value: bytes | float | bool | None | Pattern) -> Predicate:
    missing = "False"
    find = None
    lit = b""
    d = 0.0
    if value is None:  # NIL: found => `!=`, missing or unknown type => `==`
        types = "_KNOWN"
        expr = "True" if op is Op.NE else "False"
        missing = "True" if op is Op.EQ else "False"
    elif isinstance(value, Pattern):
        types = "_STR"
        lit = value.source
        if not value.plain:
            find = _pattern_finder(value.source)
        expr = _match_expr(value, op is Op.NOT_MATCH)
    elif isinstance(value, bool):  # before float: bool is an int subclass
        types = "_BOOL"
        d = 1.0 if value else 0.0
        expr = f"v {_PY_OP[op]} d"
    elif isinstance(value, bytes):
        types = "_STR"
        lit = value
        expr = _string_expr(op)
    else:
        types = "_NUM"
        d = value
        expr = _numeric_cmp("v", op, d)
    if ref.fi == 0:
        count_init, count_check = "", ""
    else:
        count_init = "        n = fi\n"
        count_check = "                if n:\n                    n -= 1\n                    continue\n"
    if ref.ai == 0:
        fetch = "                    if vals:\n                        v = vals[0]\n"
    else:
        fetch = "                    if ai < len(vals):\n                        v = vals[ai]\n"
    make = _factory(
        "def make(name, fi, ai, lit, lit_nul, d, find, fx):\n"
        "    def test(m):\n"
        f"{count_init}"
        "        for f in m[fx]:\n"
        "            if f[0] == name:\n"
        f"{count_check}"
        f"                if f[1] in {types}:\n"
        "                    vals = f[3]\n"
        f"{fetch}"
        f"                        return {expr}\n"
        f"                return {missing}\n"
        f"        return {missing}\n"
        "    return test\n"
    )
    return make(ref.name, ref.fi, ref.ai, lit, lit + b"\x00", d, find, _I_FIELDS)


def _comparison(node: Comparison) -> Predicate:
    var, op, value = node.variable, node.op, node.value
    if isinstance(var, FieldRef):
        return _field(var, op, value)
    if var is Header.TIMESTAMP:
        assert isinstance(value, float)
        return _timestamp(op, value)
    if var is Header.SEVERITY:
        assert isinstance(value, float)
        return _int32_header(_I_SEVERITY, op, value, SEVERITY_DEFAULT)
    if var is Header.PID:
        if value is None:
            return _pid_nil(op)
        assert isinstance(value, float)
        return _int32_header(_I_PID, op, value, INT_MIN)
    index = _HEADER_INDEX[var]
    if value is None:
        return _header_nil(index, op)
    assert isinstance(value, (bytes, Pattern))
    return _header_string(index, op, value)


# ---------------------------------------------------------------------------------------------
# Boolean structure


def _chain(node: Node, kind: type) -> list[Node]:
    """Operands of a maximal same-operator chain, in evaluation order (iterative: no recursion limit)."""
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is kind:
            stack.append(n.right)  # type: ignore[union-attr]
            stack.append(n.left)  # type: ignore[union-attr]
        else:
            out.append(n)
    return out


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda m: a(m) and b(m)
    if len(parts) == 3:
        a, b, c = parts
        return lambda m: a(m) and b(m) and c(m)
    tests = tuple(parts)

    def all_of(m: Message) -> bool:
        for t in tests:
            if not t(m):
                return False
        return True

    return all_of


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda m: a(m) or b(m)
    if len(parts) == 3:
        a, b, c = parts
        return lambda m: a(m) or b(m) or c(m)
    tests = tuple(parts)

    def any_of(m: Message) -> bool:
        for t in tests:
            if t(m):
                return True
        return False

    return any_of


def _build(node: Node) -> Predicate | bool:
    """A predicate, or a bool when the (sub)expression is constant."""
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, Comparison):
        return _comparison(node)
    is_and = isinstance(node, And)
    parts: list[Predicate] = []
    for operand in _chain(node, And if is_and else Or):
        built = _build(operand)
        if built is True or built is False:
            # Tests have no side effects, so a constant decides or vanishes wherever it stands.
            if built is (not is_and):
                return built
            continue
        parts.append(built)
    if not parts:
        return is_and
    return _all(parts) if is_and else _any(parts)


def _always(m: Message) -> bool:
    return True


def _never_matches(m: Message) -> bool:
    return False


def compile_tree(tree: Node) -> Predicate:
    built = _build(tree)
    if built is True:
        return _always
    if built is False:
        return _never_matches
    return built


def _uses_fields(tree: Node) -> bool:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack += (node.left, node.right)
        elif isinstance(node, Comparison) and isinstance(node.variable, FieldRef):
            return True
    return False


class Matcher(functools.partial[bool]):
    """A compiled message_matcher: call it with a Message.

    It is a `functools.partial` so that calling it costs no extra Python frame (partial's C
    `__call__` forwards straight to the compiled predicate; a Python `__call__` would roughly
    double the cost of a simple test).  `.match` is the bare predicate.
    """

    expression: str | bytes
    match: Predicate
    tree: Node
    tests: int
    warnings: tuple[str, ...]
    # Whether any test reads Fields[...]: if not, the matcher sees only a message's headers, and
    # a caller may give it a Message decoded without its fields (cheaper to build).
    uses_fields: bool

    def __new__(cls, expression: str | bytes, parsed: Parsed) -> Matcher:
        predicate = compile_tree(parsed.tree)
        self = super().__new__(cls, predicate)
        self.expression = expression
        self.match = predicate
        self.tree = parsed.tree
        self.tests = parsed.tests
        self.warnings = parsed.warnings
        self.uses_fields = _uses_fields(parsed.tree)
        return self

    def __repr__(self) -> str:
        return f"Matcher({self.expression!r})"


def compile_matcher(expression: str | bytes) -> Matcher:
    """Parse and compile; raises MatcherSyntaxError for anything lua_sandbox would reject."""
    return Matcher(expression, parse(expression))
