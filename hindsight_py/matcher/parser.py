"""Parser for Hindsight's message_matcher language (lua_sandbox `heka_message_matcher_parser.leg`).

The grammar is small enough to parse by hand, and doing so lets us report *where* and *what* was
expected, which the C parser never does (it only returns NULL).  Acceptance is meant to be
identical to lua_sandbox's PEG parser; the tree we build is identical to the one lua_sandbox
*evaluates*, including three behaviours of the C implementation that differ from its
documentation (spec §5).  They are replicated because a configuration must select the same
messages here as it does in Hindsight; each is reported through `Parsed.warnings` so that the
caller can tell the user:

1. Grouping after a parenthesised group.  lua_sandbox converts infix to postfix with an operator
   stack whose `)` handling leaves the `(` marker on the stack.  That stale marker shields the
   operators below it, so `A && (B) || C` is evaluated as `A && (B || C)`.  We run the very same
   stack algorithm (`_OpStack`) instead of ordinary precedence climbing.
2. Field indices carry over.  In `Fields[name][fi][ai]` an omitted index is not 0: the generated
   parser reads a value-stack slot that still holds whatever the previous `Fields[..][i][j]` or
   quoted Timestamp (hour, minute, or the offset's hour, minute) left there.  So
   `Fields[a][1] == 'x' || Fields[b] == 'y'` reads `Fields[b][1]`.  We track the same two slots.
3. Quoted timestamps ignore the sign of a numeric offset: the offset is always *added* (the C
   action reads the sign from the wrong capture).  `+0100` and `-0100` give the same instant.

Also mirrored: field names longer than 255 bytes are cut to `len % 256` bytes (uint8 length),
string literals are limited to 255 bytes after unescaping, and at most 128 tests are allowed.
One deliberate difference: lua_sandbox sees the expression as a C string, so a NUL byte silently
ends it; we reject NUL instead of ignoring the rest of the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Union

__all__ = [
    "And",
    "Comparison",
    "Constant",
    "FieldRef",
    "Header",
    "MatcherSyntaxError",
    "Node",
    "Op",
    "Or",
    "Parsed",
    "Pattern",
    "Value",
    "Variable",
    "MAX_STRING_LENGTH",
    "MAX_TESTS",
    "parse",
    "to_bytes",
]

MAX_TESTS = 128
"""lua_sandbox stores node indices in a uint8 and allows at most 127 `&&`/`||` operators."""

MAX_STRING_LENGTH = 255
"""String literals (after unescaping) are limited to a uint8 length."""

# Characters whose presence makes `=~`/`!~` use the pattern engine instead of a plain substring
# search (lua_sandbox `set_match_mod`; note that '(' and ')' are *not* in the set).
PATTERN_SPECIALS = frozenset(b"^$*+?.[%-")


class MatcherSyntaxError(ValueError):
    """A message_matcher expression that lua_sandbox would refuse (it returns no matcher)."""

    def __init__(
        self, column: int, expected: str, message: str | None = None, expression: str | bytes = b""
    ) -> None:
        self.column = column
        self.expected = expected
        self.expression = expression
        self.reason = message if message is not None else f"expected {expected}"
        super().__init__(f"column {column}: {self.reason}")


class Op(Enum):
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    MATCH = "=~"
    NOT_MATCH = "!~"


class Header(Enum):
    """Message headers the language can name; the value is its spelling in expressions."""

    UUID = "Uuid"
    TIMESTAMP = "Timestamp"
    TYPE = "Type"
    LOGGER = "Logger"
    SEVERITY = "Severity"
    PAYLOAD = "Payload"
    ENV_VERSION = "EnvVersion"
    PID = "Pid"
    HOSTNAME = "Hostname"


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`Fields[name][fi][ai]` with the indices lua_sandbox actually uses (see module docstring)."""

    name: bytes
    fi: int
    ai: int


@dataclass(frozen=True, slots=True)
class Pattern:
    """The right-hand side of `=~`/`!~`; `plain` means substring search (trailing `%` or no specials)."""

    source: bytes
    plain: bool


Variable = Union[Header, FieldRef]
# bytes: string literal; float: number; bool: TRUE/FALSE; None: NIL; Pattern: =~/!~ operand.
Value = Union[bytes, float, bool, None, Pattern]


@dataclass(frozen=True, slots=True)
class Comparison:
    variable: Variable
    op: Op
    value: Value
    column: int  # 1-based byte column of the variable, for diagnostics


@dataclass(frozen=True, slots=True)
class Constant:
    """The bare `TRUE` / `FALSE` tests."""

    value: bool


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


Node = Union[Comparison, Constant, And, Or]


@dataclass(frozen=True, slots=True)
class Parsed:
    tree: Node
    tests: int
    warnings: tuple[str, ...]


def to_bytes(expression: str | bytes | bytearray | memoryview) -> bytes:
    """Expressions are byte strings to lua_sandbox; text is taken as UTF-8 (lone surrogates survive)."""
    if isinstance(expression, str):
        try:
            return expression.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return expression.encode("utf-8", "surrogatepass")
    if isinstance(expression, (bytes, bytearray, memoryview)):
        return bytes(expression)
    raise TypeError(f"a message_matcher must be str or bytes, not {type(expression).__name__}")


# ---------------------------------------------------------------------------------------------
# lua_sandbox's infix -> postfix conversion, replicated operation for operation.

_OPEN, _OR, _AND = 10, 11, 12  # the C enum values; only their order matters


class _OpStack:
    """The C `push_op` / `pop_to_paren` / `pop_all_ops` trio, quirks included (see docstring)."""

    __slots__ = ("ops", "out")

    def __init__(self) -> None:
        self.ops: list[int] = []
        self.out: list[Node | int] = []

    def operand(self, node: Node) -> None:
        self.out.append(node)

    def push(self, op: int) -> None:
        ops = self.ops
        if not ops or op == _OPEN or op > ops[-1]:
            ops.append(op)
        else:  # pops exactly one operator, then takes its slot
            self.out.append(ops[-1])
            ops[-1] = op

    def close(self) -> None:
        ops = self.ops
        while ops and ops[-1] != _OPEN:
            self.out.append(ops.pop())
        # the '(' marker itself stays on the stack: that is the quirk

    def finish(self) -> Node:
        for op in reversed(self.ops):
            if op != _OPEN:
                self.out.append(op)
        stack: list[Node] = []
        for item in self.out:
            if isinstance(item, int):
                right = stack.pop()
                left = stack.pop()
                stack.append(And(left, right) if item == _AND else Or(left, right))
            else:
                stack.append(item)
        if len(stack) != 1:  # pragma: no cover - the algorithm always yields one tree
            raise AssertionError("malformed postfix expression")
        return stack[0]


def _conventional_tree(items: list[Node | str]) -> Node:
    """Usual precedence (&& over ||, left to right); only used to detect quirk 1."""
    output: list[Node] = []
    ops: list[str] = []
    prec = {"||": 1, "&&": 2}

    def reduce() -> None:
        op = ops.pop()
        right = output.pop()
        left = output.pop()
        output.append(And(left, right) if op == "&&" else Or(left, right))

    for item in items:
        if isinstance(item, str):
            if item == "(":
                ops.append(item)
            elif item == ")":
                while ops[-1] != "(":
                    reduce()
                ops.pop()
            else:
                while ops and ops[-1] != "(" and prec[ops[-1]] >= prec[item]:
                    reduce()
                ops.append(item)
        else:
            output.append(item)
    while ops:
        reduce()
    return output[0]


def _flatten(node: Node) -> object:
    """Shape of a tree with associative chains flattened, to compare groupings."""
    if isinstance(node, (And, Or)):
        kind = type(node)
        parts: list[object] = []
        stack: list[Node] = [node]
        while stack:
            n = stack.pop()
            if type(n) is kind:
                stack.append(n.right)
                stack.append(n.left)
            else:
                parts.append(_flatten(n))
        return (kind.__name__, tuple(parts))
    return id(node)


# ---------------------------------------------------------------------------------------------

_WS = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")

_STRING_HEADERS: tuple[tuple[bytes, Header], ...] = (
    (b"Type", Header.TYPE),
    (b"Logger", Header.LOGGER),
    (b"Hostname", Header.HOSTNAME),
    (b"EnvVersion", Header.ENV_VERSION),
    (b"Payload", Header.PAYLOAD),
)

_EXPECT_TEST = (
    "a test (Uuid, Timestamp, Type, Logger, Hostname, EnvVersion, Payload, Severity, Pid, "
    "Fields[name], TRUE or FALSE) or '('"
)
_EXPECT_ALL_OPS = "a relational operator (==, !=, <, <=, >, >=, =~, !~)"
_EXPECT_NUM_OPS = "a relational operator (==, !=, <, <=, >, >=)"

_RELATIONAL: tuple[tuple[bytes, Op], ...] = (
    (b"==", Op.EQ),
    (b"!=", Op.NE),
    (b">=", Op.GE),
    (b">", Op.GT),
    (b"<=", Op.LE),
    (b"<", Op.LT),
)
_MATCH_OPS: tuple[tuple[bytes, Op], ...] = ((b"=~", Op.MATCH), (b"!~", Op.NOT_MATCH))


def _unescape(raw: bytes) -> bytes:
    r"""lua_sandbox's `set_string_value`: `\` before any of `"`, `'`, `\` is dropped, else kept."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 1 < n and raw[i + 1] in b"\"'\\":
            i += 1
            c = raw[i]
        out.append(c)
        i += 1
    return bytes(out)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (day may overflow, like mktime)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class _Parser:
    __slots__ = ("src", "n", "pos", "expression", "slot0", "slot1", "carried", "tests")

    def __init__(self, src: bytes, expression: str | bytes) -> None:
        self.src = src
        self.n = len(src)
        self.pos = 0
        self.expression = expression
        # The two generated-parser value-stack slots that omitted Fields indices read (quirk 2).
        self.slot0 = 0
        self.slot1 = 0
        self.carried: list[str] = []
        self.tests = 0

    # -- helpers -------------------------------------------------------------------------------

    def error(self, expected: str, pos: int | None = None, message: str | None = None) -> MatcherSyntaxError:
        p = self.pos if pos is None else pos
        return MatcherSyntaxError(_column(self.expression, self.src, p), expected, message, self.expression)

    def sp(self) -> None:
        src, n, p = self.src, self.n, self.pos
        while p < n and src[p] in _WS:
            p += 1
        self.pos = p

    def peek(self, token: bytes) -> bool:
        return self.src.startswith(token, self.pos)

    def take(self, token: bytes) -> bool:
        if self.src.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    # -- expression structure ------------------------------------------------------------------

    def parse(self) -> Parsed:
        stack = _OpStack()
        items: list[Node | str] = []
        depth = 0
        operators = 0
        self.sp()
        while True:
            while self.take(b"("):
                stack.push(_OPEN)
                items.append("(")
                depth += 1
                self.sp()
            node = self.test()
            self.tests += 1
            stack.operand(node)
            items.append(node)
            self.sp()
            while depth and self.take(b")"):
                stack.close()
                items.append(")")
                depth -= 1
                self.sp()
            if self.peek(b"&&") or self.peek(b"||"):
                operators += 1
                if operators >= MAX_TESTS:
                    raise self.error(
                        f"at most {MAX_TESTS} tests",
                        message=f"too many tests (lua_sandbox allows at most {MAX_TESTS})",
                    )
                if self.take(b"&&"):
                    stack.push(_AND)
                    items.append("&&")
                else:
                    self.pos += 2
                    stack.push(_OR)
                    items.append("||")
                self.sp()
                continue
            if self.pos == self.n and depth == 0:
                break
            raise self.error(self.after_test_expectation(node, depth))

        tree = stack.finish()
        warnings = list(self.carried)
        if _flatten(tree) != _flatten(_conventional_tree(items)):
            warnings.append(
                "operators following a parenthesised group are grouped the way lua_sandbox "
                "does it (e.g. 'A && (B) || C' means 'A && (B || C)'); add parentheses to make "
                "the intended grouping explicit"
            )
        return Parsed(tree, self.tests, tuple(warnings))

    def after_test_expectation(self, node: Node, depth: int) -> str:
        options = []
        if (
            isinstance(node, Comparison)
            and isinstance(node.value, Pattern)
            and self.src[self.pos - 1 : self.pos] in (b"'", b'"')  # '%' must follow the quote
        ):
            options.append("'%'")
        options += ["'&&'", "'||'"]
        options.append("')'" if depth else "the end of the expression")
        return ", ".join(options[:-1]) + " or " + options[-1]

    # -- tests ---------------------------------------------------------------------------------

    def test(self) -> Node:
        start = self.pos
        column = start + 1
        if self.take(b"Uuid"):
            self.sp()
            op = self.operator(_EXPECT_ALL_OPS, match_ops=True)
            return Comparison(Header.UUID, op, self.string_operand(op, "a quoted string"), column)
        if self.take(b"Timestamp"):
            self.sp()
            op = self.operator(_EXPECT_NUM_OPS, match_ops=False)
            if self.peek(b"'") or self.peek(b'"'):
                value = self.timestamp_literal()
            else:
                value = self.number("a number or a quoted RFC 3339 timestamp")
            return Comparison(Header.TIMESTAMP, op, value, column)
        for keyword, header in _STRING_HEADERS:
            if self.take(keyword):
                self.sp()
                op = self.operator(_EXPECT_ALL_OPS, match_ops=True)
                if op in (Op.EQ, Op.NE) and self.take(b"NIL"):
                    return Comparison(header, op, None, column)
                expected = "a quoted string or NIL" if op in (Op.EQ, Op.NE) else "a quoted string"
                return Comparison(header, op, self.string_operand(op, expected), column)
        if self.take(b"Severity"):
            self.sp()
            op = self.operator(_EXPECT_NUM_OPS, match_ops=False)
            return Comparison(Header.SEVERITY, op, self.number("a number"), column)
        if self.take(b"Pid"):
            self.sp()
            op = self.operator(_EXPECT_NUM_OPS, match_ops=False)
            if op in (Op.EQ, Op.NE):
                if self.take(b"NIL"):
                    return Comparison(Header.PID, op, None, column)
                return Comparison(Header.PID, op, self.number("a number or NIL"), column)
            return Comparison(Header.PID, op, self.number("a number"), column)
        if self.take(b"Fields"):
            return self.field_test(column)
        if self.take(b"TRUE"):
            return Constant(True)
        if self.take(b"FALSE"):
            return Constant(False)
        raise self.error(_EXPECT_TEST)

    def operator(self, expected: str, match_ops: bool) -> Op:
        for token, op in _RELATIONAL:
            if self.take(token):
                self.sp()
                return op
        if match_ops:
            for token, op in _MATCH_OPS:
                if self.take(token):
                    self.sp()
                    return op
        raise self.error(expected)

    def string_operand(self, op: Op, expected: str) -> bytes | Pattern:
        text = self.string_literal(expected)
        if op in (Op.MATCH, Op.NOT_MATCH):
            plain = self.take(b"%") or not PATTERN_SPECIALS.intersection(text)
            return Pattern(text, plain)
        return text

    def string_literal(self, expected: str) -> bytes:
        src, n = self.src, self.n
        start = self.pos
        if start >= n or src[start] not in b"'\"":
            raise self.error(expected)
        quote = src[start]
        p = start + 1
        while True:
            if p >= n:
                q = chr(quote)
                raise self.error(
                    f"a closing {q}",
                    pos=p,
                    message=f"unterminated string (expected a closing {q} for the string at "
                    f"column {_column(self.expression, src, start)})",
                )
            c = src[p]
            if c == 0x5C and p + 1 < n and (src[p + 1] == quote or src[p + 1] == 0x5C):
                p += 2
            elif c == quote:
                break
            else:
                p += 1
        text = _unescape(src[start + 1 : p])
        if len(text) > MAX_STRING_LENGTH:
            raise self.error(
                f"a string of at most {MAX_STRING_LENGTH} bytes",
                pos=start,
                message=f"string literal longer than {MAX_STRING_LENGTH} bytes ({len(text)})",
            )
        self.pos = p + 1
        return text

    def number(self, expected: str) -> float:
        """`[+-]? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, converted like strtod."""
        src, n = self.src, self.n
        start = p = self.pos
        if p < n and src[p] in b"+-":
            p += 1
        if p < n and src[p] == 0x30:
            p += 1
        elif p < n and src[p] in b"123456789":
            p += 1
            while p < n and src[p] in _DIGITS:
                p += 1
        else:
            raise self.error(expected)
        if p + 1 < n and src[p] == 0x2E and src[p + 1] in _DIGITS:
            p += 2
            while p < n and src[p] in _DIGITS:
                p += 1
        if p < n and src[p] in b"eE":
            q = p + 1
            if q < n and src[q] in b"+-":
                q += 1
            if q < n and src[q] in _DIGITS:
                while q < n and src[q] in _DIGITS:
                    q += 1
                p = q
        self.pos = p
        return float(src[start:p])

    def field_test(self, column: int) -> Comparison:
        src = self.src
        if not self.take(b"["):
            raise self.error("'[' (Fields[name])")
        end = src.find(b"]", self.pos)
        if end < 0:
            raise self.error("']' closing the field name", pos=self.n)
        name = src[self.pos : end]
        name = name[: len(name) & 0xFF]  # the C node keeps a uint8 name length
        self.pos = end + 1
        fi = self.index()
        ai = self.index() if fi is not None else None
        if fi is not None:
            self.slot0 = fi
        if ai is not None:
            self.slot1 = ai
        eff_fi = self.slot0 if fi is None else fi
        eff_ai = self.slot1 if ai is None else ai
        if (fi is None and eff_fi) or (ai is None and eff_ai):
            self.carried.append(
                f"column {_column(self.expression, src, column - 1)}: "
                f"Fields[{name.decode('utf-8', 'backslashreplace')}] uses field index {eff_fi} "
                f"and array index {eff_ai}: lua_sandbox reuses indices left over from an earlier "
                "test when they are omitted; write them explicitly"
            )
        ref = FieldRef(name, eff_fi, eff_ai)
        self.sp()
        op = self.operator(_EXPECT_ALL_OPS, match_ops=True)
        if op in (Op.MATCH, Op.NOT_MATCH):
            return Comparison(ref, op, self.string_operand(op, "a quoted string"), column)
        if self.peek(b"'") or self.peek(b'"'):
            return Comparison(ref, op, self.string_literal("a quoted string"), column)
        if op in (Op.EQ, Op.NE):
            if self.take(b"TRUE"):
                return Comparison(ref, op, True, column)
            if self.take(b"FALSE"):
                return Comparison(ref, op, False, column)
            if self.take(b"NIL"):
                return Comparison(ref, op, None, column)
            expected = "a quoted string, a number, TRUE, FALSE or NIL"
        else:
            expected = "a quoted string or a number"
        return Comparison(ref, op, self.number(expected), column)

    def index(self) -> int | None:
        """`[0-199]` or `[2[0-5][0-5]]`; anything else means "no index here" (PEG `index?`)."""
        src, n, p = self.src, self.n, self.pos
        if p >= n or src[p] != 0x5B:
            return None
        digits = 0
        q = p + 1
        while q < n and src[q] in _DIGITS and digits < 4:
            q += 1
            digits += 1
        text = src[p + 1 : q]
        ok = q < n and src[q] == 0x5D and (
            (len(text) == 1)
            or (len(text) == 2 and text[0] != 0x30)
            or (len(text) == 3 and (text[0] == 0x31 or (text[0] == 0x32 and text[1] <= 0x35 and text[2] <= 0x35)))
        )
        if not ok:
            raise self.error(
                "an index from 0-199 or 2[0-5][0-5] (no leading zeros) followed by ']'", pos=p + 1
            )
        self.pos = q + 1
        return int(text)

    # -- RFC 3339 --------------------------------------------------------------------------------

    def digits(self, count: int, what: str) -> int:
        src, p = self.src, self.pos
        chunk = src[p : p + count]
        if len(chunk) != count or not all(c in _DIGITS for c in chunk):
            raise self.error(what)
        self.pos = p + count
        return int(chunk)

    def expect(self, token: bytes, what: str) -> None:
        if not self.take(token):
            raise self.error(what)

    def timestamp_literal(self) -> float:
        """Quoted `YYYY-MM-DDThh:mm:ss[.frac](Z|[+-]hhmm)`, computed as lua_sandbox does it."""
        quote = self.src[self.pos : self.pos + 1]
        self.pos += 1
        year = self.digits(4, "a four digit year")
        self.expect(b"-", "'-'")
        month = self.digits(2, "a month (01-12)")
        if not 1 <= month <= 12:
            raise self.error("a month (01-12)", pos=self.pos - 2)
        self.expect(b"-", "'-'")
        day = self.digits(2, "a day of the month (01-31)")
        if not 1 <= day <= 31:
            raise self.error("a day of the month (01-31)", pos=self.pos - 2)
        self.expect(b"T", "'T'")
        hour = self.digits(2, "an hour (00-23)")
        if hour > 23:
            raise self.error("an hour (00-23)", pos=self.pos - 2)
        self.expect(b":", "':'")
        minute = self.digits(2, "minutes (00-59)")
        if minute > 59:
            raise self.error("minutes (00-59)", pos=self.pos - 2)
        self.expect(b":", "':'")
        second = self.digits(2, "seconds (00-60)")
        if second > 60:
            raise self.error("seconds (00-60)", pos=self.pos - 2)
        value = 0.0
        src, n = self.src, self.n
        p = self.pos
        if p + 1 < n and src[p] == 0x2E and src[p + 1] in _DIGITS:
            q = p + 2
            while q < n and src[q] in _DIGITS:
                q += 1
            value += float(src[p:q])
            self.pos = q
        # The generated parser's value slots now hold hour/minute (quirk 2).
        self.slot0, self.slot1 = hour, minute
        if not self.take(b"Z"):
            if not (self.take(b"+") or self.take(b"-")):
                raise self.error("a fraction of a second, 'Z' or a '+hhmm'/'-hhmm' offset")
            off_h = self.digits(2, "an offset hour (00-23)")
            if off_h > 23:
                raise self.error("an offset hour (00-23)", pos=self.pos - 2)
            off_m = self.digits(2, "offset minutes (00-59, no ':')")
            if off_m > 59:
                raise self.error("offset minutes (00-59, no ':')", pos=self.pos - 2)
            self.slot0, self.slot1 = off_h, off_m
            value += off_h * 3600 + off_m * 60  # always added: quirk 3
        self.expect(quote, f"a closing {quote.decode()} after the timestamp")
        seconds = _days_from_civil(year, month, 1) + day - 1
        seconds = seconds * 86400 + hour * 3600 + minute * 60 + second
        value += seconds  # mktime() in UTC, normalising e.g. Feb 31 or second 60
        return value * 1e9


def _column(expression: str | bytes, src: bytes, pos: int) -> int:
    """1-based column: characters for text expressions, bytes for byte expressions."""
    if isinstance(expression, str):
        prefix = src[:pos]
        for errors in ("surrogatepass", "surrogateescape"):
            try:
                return len(prefix.decode("utf-8", errors)) + 1
            except UnicodeDecodeError:
                continue
    return pos + 1


def parse(expression: str | bytes) -> Parsed:
    """Parse a message_matcher expression; raises only MatcherSyntaxError (and TypeError for non-text)."""
    src = to_bytes(expression)
    nul = src.find(b"\x00")
    if nul >= 0:
        raise MatcherSyntaxError(
            _column(expression, src, nul),
            "no NUL byte",
            "NUL byte not allowed in a message_matcher",
            expression,
        )
    return _Parser(src, expression).parse()
