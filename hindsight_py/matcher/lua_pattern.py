"""Lua 5.1 patterns with the exact semantics of ``string.find``, for the matcher's ``=~`` / ``!~``.

Hindsight evaluates ``Payload =~ "^TE"`` with Lua 5.1's pattern matcher (``lstrlib.c``), and hsp
evaluates matchers in Python on every message, so this module must be *exact* (same match, same
positions, same captures, same errors) and *fast*.

Strategy
--------
Every pattern is first scanned once by :func:`_compile`, which walks it exactly the way Lua's
``match()`` walks it (same item boundaries, same quirks) and produces a :class:`_Program`:

* **plain** -- ``plain=True``, or the pattern contains none of Lua's ``SPECIALS`` (``^$*+?.([%-``)
  before its first NUL byte.  Lua then does a plain ``memchr``/``memcmp`` search (``lmemfind``),
  which is ``bytes.find`` / ``in`` in Python.  Note that ``)`` and ``]`` are *not* special:
  ``string.find(s, "a)")`` is a plain search and never raises.
* **regex** -- the pattern is translated to an equivalent Python ``re`` bytes regex.  This is exact
  because Lua's matcher is a backtracking matcher whose quantifiers only apply to single-byte
  items, so greedy ``*``/``+``/``?`` and lazy ``-`` (``*?``) explore candidates in the same order as
  ``re``; every single-byte item (``.``, ``%a``, ``[...]``, literal) is turned into an explicit set
  of the 256 byte values computed by a port of ``matchbracketclass``/``match_class`` (C locale,
  ASCII only), so all set quirks (``[]]``, ``[^]]``, ``[a-]``, ``[%a-z]``, ranges ending in ``%``)
  are reproduced by construction.  ``^`` is an anchor only as the first byte, ``$`` only as the
  last byte (translated to ``\\Z``, never to ``re``'s ``$`` which also matches before a trailing
  newline); elsewhere both are literals.  Back-references ``%1``..``%9`` become ``(?:\\N)`` (or
  ``(?!)`` when they refer to a position capture ``()``, which Lua can never match).  The frontier
  ``%f[set]`` becomes a pair of look-arounds that treat "before the start" and "at the end" as a
  NUL byte, exactly as Lua does.  ``%bxx`` with identical delimiters is ``x[^x]*x``.
* **interpreter** -- a faithful pure-Python port of ``lstrlib.c``'s matcher, used for the one
  construct a regex cannot express (``%bxy`` with ``x != y``, which needs counting) and, in
  :func:`find`, for malformed patterns so that errors surface lazily exactly where Lua raises them.

Patterns are truncated at their first NUL byte for matching, because Lua's matcher walks the
pattern as a C string (``string.find("a", "a\\0b")`` matches); the plain-search decision also
only looks before the first NUL (``strpbrk``), but a plain search uses the full pattern.

Errors
------
Lua raises pattern errors *lazily*, only when the matcher reaches the bad part of the pattern:
``string.find("b", "a%")`` returns nil, ``string.find("a", "a%")`` raises
``malformed pattern (ends with '%')``, and ``unfinished capture`` is only raised once a match
succeeds.  :func:`find` reproduces that laziness exactly.  :func:`compile_find`, which builds a
matcher predicate, instead rejects up front every pattern for which *some* subject would make Lua
raise, so a bad matcher fails at configuration time rather than on some message in production.  The
message is the one Lua would give (the static scan meets errors in the same left-to-right order as
the matcher does).

Lua 5.1's matcher has no ``MAXCCALLS`` limit (that arrived in 5.2; "pattern too complex" is a 5.2+
message): it recurses on the C stack once per quantified item / capture, i.e. proportionally to the
pattern length, not the subject length.  The regex path has no Python recursion at all; the
interpreter recurses like Lua does, and if a (very long) pattern exhausts Python's recursion limit
it raises ``LuaPatternError("pattern too complex")`` instead of crashing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LuaPatternError", "compile_find", "find"]

Capture = bytes | int
"""A capture value: the captured bytes, or a 1-based position for a position capture ``()``."""


class LuaPatternError(ValueError):
    """A malformed pattern, with Lua 5.1's own error text (e.g. "malformed pattern (ends with '%')")."""


# --- constants mirroring lstrlib.c ------------------------------------------------------------

_SPECIALS = frozenset(b"^$*+?.([%-")
_MAXCAPTURES = 32  # LUA_MAXCAPTURES in luaconf.h
_CAP_UNFINISHED = -1
_CAP_POSITION = -2

_ERR_ENDS_PERCENT = "malformed pattern (ends with '%')"
_ERR_MISSING_BRACKET = "malformed pattern (missing ']')"
_ERR_FRONTIER = "missing '[' after '%f' in pattern"
_ERR_UNBALANCED = "unbalanced pattern"
_ERR_CAPTURE_INDEX = "invalid capture index"
_ERR_PATTERN_CAPTURE = "invalid pattern capture"
_ERR_UNFINISHED = "unfinished capture"
_ERR_TOO_MANY = "too many captures"
_ERR_TOO_COMPLEX = "pattern too complex"

_PCT, _LBRACKET, _RBRACKET, _CARET, _DOLLAR = 0x25, 0x5B, 0x5D, 0x5E, 0x24
_LPAREN, _RPAREN, _DASH, _DOT = 0x28, 0x29, 0x2D, 0x2E
_STAR, _PLUS, _QMARK = 0x2A, 0x2B, 0x3F

# A byte set is represented as a 256-byte ``bytes`` mask (mask[c] == 1 iff c is a member), which
# makes membership a single index in the interpreter and is easy to turn into a regex class.
Mask = bytes


def _mask_of(pred: Callable[[int], bool]) -> Mask:
    return bytes(1 if pred(c) else 0 for c in range(256))


def _complement(mask: Mask) -> Mask:
    return bytes(1 - v for v in mask)


# C-locale <ctype.h> classes, which is what Hindsight's Lua runs with: ASCII only, so e.g. %a never
# matches a byte >= 0x80.
_CLASS_MASKS: dict[int, Mask] = {
    ord("a"): _mask_of(lambda c: 65 <= c <= 90 or 97 <= c <= 122),
    ord("c"): _mask_of(lambda c: c < 32 or c == 127),
    ord("d"): _mask_of(lambda c: 48 <= c <= 57),
    ord("l"): _mask_of(lambda c: 97 <= c <= 122),
    ord("p"): _mask_of(lambda c: 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126),
    ord("s"): _mask_of(lambda c: c == 32 or 9 <= c <= 13),
    ord("u"): _mask_of(lambda c: 65 <= c <= 90),
    ord("w"): _mask_of(lambda c: 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122),
    ord("x"): _mask_of(lambda c: 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102),
    ord("z"): _mask_of(lambda c: c == 0),
}
_ALL = bytes([1]) * 256
_NONE = bytes(256)


def _class_mask(cl: int) -> Mask:
    """Bytes matched by ``%<cl>`` (``match_class``): a class letter, its complement, or ``cl`` itself."""
    low = cl + 32 if 65 <= cl <= 90 else cl  # C-locale tolower()
    base = _CLASS_MASKS.get(low)
    if base is None:
        return _mask_of(lambda c: c == cl)
    return base if cl == low else _complement(base)


def _classend(pat: bytes, p: int) -> int:
    """Index just past the single-byte item starting at ``pat[p]`` (``classend``).

    ``pat`` carries a NUL sentinel at its end, standing for C's string terminator.
    """
    c = pat[p]
    p += 1
    if c == _PCT:
        if pat[p] == 0:
            raise LuaPatternError(_ERR_ENDS_PERCENT)
        return p + 1
    if c == _LBRACKET:
        if pat[p] == _CARET:
            p += 1
        while True:  # the first byte is always consumed, hence "[]]" and "[^]]"
            if pat[p] == 0:
                raise LuaPatternError(_ERR_MISSING_BRACKET)
            c = pat[p]
            p += 1
            if c == _PCT and pat[p] != 0:
                p += 1  # skip escapes such as "%]"
            if pat[p] == _RBRACKET:
                return p + 1
    return p


def _bracket_mask(pat: bytes, p: int, ec: int) -> Mask:
    """Bytes matched by the set ``pat[p] == '['`` .. ``pat[ec] == ']'`` (``matchbracketclass``)."""
    members = bytearray(256)
    negate = pat[p + 1] == _CARET
    if negate:
        p += 1
    p += 1
    while p < ec:
        c = pat[p]
        if c == _PCT:
            p += 1
            cm = _class_mask(pat[p])
            for i in range(256):
                if cm[i]:
                    members[i] = 1
        elif pat[p + 1] == _DASH and p + 2 < ec:
            # A range; its upper end is taken raw, so "[a-%]]" is 'a'..'%' (empty) then ']'.
            for i in range(c, pat[p + 2] + 1):
                members[i] = 1
            p += 2
        else:
            members[c] = 1
        p += 1
    return _complement(bytes(members)) if negate else bytes(members)


def _item_mask(pat: bytes, p: int, ep: int) -> Mask:
    """Bytes matched by the single-byte item ``pat[p:ep]`` (``singlematch``)."""
    c = pat[p]
    if c == _DOT:
        return _ALL
    if c == _PCT:
        return _class_mask(pat[p + 1])
    if c == _LBRACKET:
        return _bracket_mask(pat, p, ep - 1)
    return _mask_of(lambda x: x == c)


# --- regex emission ---------------------------------------------------------------------------


def _esc(c: int) -> bytes:
    """A regex atom for the literal byte ``c`` (works inside and outside a class)."""
    if 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122:
        return bytes([c])
    return b"\\x%02x" % c


def _class_regex(mask: Mask) -> bytes:
    """A regex matching exactly one byte of ``mask``; never empty, so look-behinds stay fixed-width."""
    n = sum(mask)
    if n == 256:
        return b"."  # compiled with DOTALL: Lua's '.' matches every byte, newline included
    if n == 0:
        return b"[^\\x00-\\xff]"  # matches nothing, but is still a one-byte-wide atom
    if n == 1:
        return _esc(mask.index(1))
    negate = n > 128
    want = 0 if negate else 1
    parts: list[bytes] = []
    i = 0
    while i < 256:
        if mask[i] == want:
            j = i
            while j + 1 < 256 and mask[j + 1] == want:
                j += 1
            if j == i:
                parts.append(_esc(i))
            elif j == i + 1:
                parts.append(_esc(i) + _esc(j))
            else:
                parts.append(_esc(i) + b"-" + _esc(j))
            i = j + 1
        else:
            i += 1
    return b"[" + (b"^" if negate else b"") + b"".join(parts) + b"]"


def _frontier_regex(mask: Mask) -> bytes:
    """``%f[set]``: previous byte not in set and current byte in set, NUL standing for both ends."""
    if mask[0]:
        # At the start the "previous byte" is NUL, which is in the set: fail.  At the end the
        # "current byte" is NUL, which is in the set: succeed.
        return b"(?<=" + _class_regex(_complement(mask)) + b")(?!" + _class_regex(_complement(mask)) + b")"
    return b"(?<!" + _class_regex(mask) + b")(?=" + _class_regex(mask) + b")"


_QUANTIFIERS = {_STAR: b"*", _PLUS: b"+", _QMARK: b"?", _DASH: b"*?"}


# --- compilation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Program:
    """Everything derived from one pattern; cached so a matcher compiles each pattern once."""

    pattern: bytes
    plain: bool
    """True when Lua would do a plain search (no SPECIALS before the first NUL)."""
    body: bytes
    """The pattern as the matcher sees it: truncated at NUL, without a leading '^', plus a NUL sentinel."""
    anchored: bool
    error: LuaPatternError | None
    """First error the matcher could raise on some subject; None if the pattern is well-formed."""
    regex: re.Pattern[bytes] | None
    """Exact regex translation, or None when the interpreter is needed (or the pattern is bad)."""
    position_groups: frozenset[int]
    """Regex group numbers that are position captures ``()``."""
    literal: bytes | None
    """For compile_find: the pattern is the literal ``literal`` (captures aside) plus anchors."""
    end_anchored: bool


@functools.lru_cache(maxsize=1024)
def _compile(pattern: bytes) -> _Program:
    """Scan ``pattern`` the way ``match()`` would, collecting the first error and a regex."""
    cstr = pattern.split(b"\0", 1)[0]
    if not any(c in _SPECIALS for c in cstr):
        return _Program(pattern, True, b"", False, None, None, frozenset(), None, False)
    anchored = cstr[:1] == b"^"
    body = (cstr[1:] if anchored else cstr) + b"\0"
    n = len(body) - 1

    out: list[bytes] = []
    caps: list[int] = []  # per capture: _CAP_UNFINISHED, _CAP_POSITION, or 0 (closed)
    regex_ok = True
    literal: bytearray | None = bytearray()
    end_anchored = False
    error: LuaPatternError | None = None
    i = 0
    try:
        while i < n:
            c = body[i]
            if c == _LPAREN:
                if len(caps) >= _MAXCAPTURES:
                    raise LuaPatternError(_ERR_TOO_MANY)
                if body[i + 1] == _RPAREN:
                    caps.append(_CAP_POSITION)
                    out.append(b"()")
                    i += 2
                else:
                    caps.append(_CAP_UNFINISHED)
                    out.append(b"(")
                    i += 1
                continue
            if c == _RPAREN:
                for lvl in range(len(caps) - 1, -1, -1):
                    if caps[lvl] == _CAP_UNFINISHED:
                        caps[lvl] = 0
                        break
                else:
                    raise LuaPatternError(_ERR_PATTERN_CAPTURE)
                out.append(b")")
                i += 1
                continue
            if c == _DOLLAR and i == n - 1:
                out.append(b"\\Z")
                end_anchored = True
                i += 1
                continue
            if c == _PCT:
                d = body[i + 1]
                if d == ord("b"):
                    if body[i + 2] == 0 or body[i + 3] == 0:
                        raise LuaPatternError(_ERR_UNBALANCED)
                    open_, close = body[i + 2], body[i + 3]
                    if open_ == close:
                        # matchbalance stops at the first closing byte: deterministic x[^x]*x.
                        out.append(_esc(open_) + b"[^" + _esc(open_) + b"]*" + _esc(open_))
                    else:
                        regex_ok = False  # nesting needs counting: interpreter
                    literal = None
                    i += 4
                    continue
                if d == ord("f"):
                    if body[i + 2] != _LBRACKET:
                        raise LuaPatternError(_ERR_FRONTIER)
                    ep = _classend(body, i + 2)
                    out.append(_frontier_regex(_bracket_mask(body, i + 2, ep - 1)))
                    literal = None
                    i = ep
                    continue
                if 0x30 <= d <= 0x39:
                    lvl = d - 0x31
                    if lvl < 0 or lvl >= len(caps) or caps[lvl] == _CAP_UNFINISHED:
                        raise LuaPatternError(_ERR_CAPTURE_INDEX)
                    # A back-reference to a position capture compares (size_t)-2 bytes: never matches.
                    out.append(b"(?!)" if caps[lvl] == _CAP_POSITION else b"(?:\\%d)" % (lvl + 1))
                    literal = None
                    i += 2
                    continue
            # A single-byte item, possibly followed by a quantifier.
            ep = _classend(body, i)
            mask = _item_mask(body, i, ep)
            atom = _class_regex(mask)
            q = body[ep]
            if q in _QUANTIFIERS:
                out.append(atom + _QUANTIFIERS[q])
                literal = None
                i = ep + 1
            else:
                out.append(atom)
                if literal is not None:
                    if sum(mask) == 1:
                        literal.append(mask.index(1))
                    else:
                        literal = None
                i = ep
        if _CAP_UNFINISHED in caps:
            raise LuaPatternError(_ERR_UNFINISHED)  # Lua raises this once a match is found
    except LuaPatternError as exc:
        error = exc

    regex: re.Pattern[bytes] | None = None
    if error is None and regex_ok:
        regex = re.compile(b"".join(out), re.DOTALL)
    pos_groups = frozenset(g + 1 for g, kind in enumerate(caps) if kind == _CAP_POSITION)
    lit = bytes(literal) if literal is not None and error is None and regex_ok else None
    return _Program(pattern, False, body, anchored, error, regex, pos_groups, lit, end_anchored)


# --- the interpreter: a port of lstrlib.c's matcher ------------------------------------------------


class _MatchState:
    """``MatchState``: the subject, the pattern (with NUL sentinel) and the capture stack."""

    __slots__ = ("src", "end", "pat", "level", "cinit", "clen", "masks")

    def __init__(self, src: bytes, pat: bytes) -> None:
        self.src = src
        self.end = len(src)
        self.pat = pat
        self.level = 0
        self.cinit = [0] * _MAXCAPTURES
        self.clen = [0] * _MAXCAPTURES
        self.masks: dict[int, Mask] = {}

    def single(self, c: int, p: int, ep: int) -> bool:
        """``singlematch`` with the item's byte set memoised per pattern position."""
        mask = self.masks.get(p)
        if mask is None:
            mask = self.masks[p] = _item_mask(self.pat, p, ep)
        return mask[c] == 1


def _do_match(ms: _MatchState, s: int, p: int) -> int | None:
    """``match``: the end of a match of ``pat[p:]`` at ``src[s:]``, or None."""
    pat = ms.pat
    src = ms.src
    end = ms.end
    while True:  # the loop stands for lstrlib.c's "goto init" tail calls
        c = pat[p]
        if c == _LPAREN:
            if pat[p + 1] == _RPAREN:
                return _start_capture(ms, s, p + 2, _CAP_POSITION)
            return _start_capture(ms, s, p + 1, _CAP_UNFINISHED)
        if c == _RPAREN:
            return _end_capture(ms, s, p + 1)
        if c == 0:
            return s
        if c == _PCT:
            d = pat[p + 1]
            if d == ord("b"):
                r = _matchbalance(ms, s, p + 2)
                if r is None:
                    return None
                s = r
                p += 4
                continue
            if d == ord("f"):
                p += 2
                if pat[p] != _LBRACKET:
                    raise LuaPatternError(_ERR_FRONTIER)
                ep = _classend(pat, p)
                key = -p - 1  # distinct from item keys
                mask = ms.masks.get(key)
                if mask is None:
                    mask = ms.masks[key] = _bracket_mask(pat, p, ep - 1)
                previous = src[s - 1] if s > 0 else 0
                current = src[s] if s < end else 0  # Lua strings end with a NUL
                if mask[previous] or not mask[current]:
                    return None
                p = ep
                continue
            if 0x30 <= d <= 0x39:
                r = _match_capture(ms, s, d)
                if r is None:
                    return None
                s = r
                p += 2
                continue
        elif c == _DOLLAR and pat[p + 1] == 0:
            return s if s == end else None
        ep = _classend(pat, p)
        m = s < end and ms.single(src[s], p, ep)
        q = pat[ep]
        if q == _QMARK:
            if m:
                r = _do_match(ms, s + 1, ep + 1)
                if r is not None:
                    return r
            p = ep + 1
            continue
        if q == _STAR:
            return _max_expand(ms, s, p, ep)
        if q == _PLUS:
            return _max_expand(ms, s + 1, p, ep) if m else None
        if q == _DASH:
            return _min_expand(ms, s, p, ep)
        if not m:
            return None
        s += 1
        p = ep


def _matchbalance(ms: _MatchState, s: int, p: int) -> int | None:
    pat = ms.pat
    if pat[p] == 0 or pat[p + 1] == 0:
        raise LuaPatternError(_ERR_UNBALANCED)
    src = ms.src
    if s >= ms.end or src[s] != pat[p]:
        return None
    open_, close = pat[p], pat[p + 1]
    depth = 1
    s += 1
    while s < ms.end:
        ch = src[s]
        if ch == close:  # tested first, so "%bxx" stops at the next x
            depth -= 1
            if depth == 0:
                return s + 1
        elif ch == open_:
            depth += 1
        s += 1
    return None


def _max_expand(ms: _MatchState, s: int, p: int, ep: int) -> int | None:
    src = ms.src
    i = 0
    while s + i < ms.end and ms.single(src[s + i], p, ep):
        i += 1
    while i >= 0:  # longest first, then give back one repetition at a time
        r = _do_match(ms, s + i, ep + 1)
        if r is not None:
            return r
        i -= 1
    return None


def _min_expand(ms: _MatchState, s: int, p: int, ep: int) -> int | None:
    while True:
        r = _do_match(ms, s, ep + 1)
        if r is not None:
            return r
        if s < ms.end and ms.single(ms.src[s], p, ep):
            s += 1
        else:
            return None


def _start_capture(ms: _MatchState, s: int, p: int, what: int) -> int | None:
    level = ms.level
    if level >= _MAXCAPTURES:
        raise LuaPatternError(_ERR_TOO_MANY)
    ms.cinit[level] = s
    ms.clen[level] = what
    ms.level = level + 1
    r = _do_match(ms, s, p)
    if r is None:
        ms.level -= 1
    return r


def _end_capture(ms: _MatchState, s: int, p: int) -> int | None:
    for lvl in range(ms.level - 1, -1, -1):
        if ms.clen[lvl] == _CAP_UNFINISHED:
            break
    else:
        raise LuaPatternError(_ERR_PATTERN_CAPTURE)
    ms.clen[lvl] = s - ms.cinit[lvl]
    r = _do_match(ms, s, p)
    if r is None:
        ms.clen[lvl] = _CAP_UNFINISHED
    return r


def _match_capture(ms: _MatchState, s: int, d: int) -> int | None:
    lvl = d - 0x31
    if lvl < 0 or lvl >= ms.level or ms.clen[lvl] == _CAP_UNFINISHED:
        raise LuaPatternError(_ERR_CAPTURE_INDEX)
    length = ms.clen[lvl]
    if length < 0:  # position capture: (size_t)-2 bytes never fit
        return None
    start = ms.cinit[lvl]
    if ms.end - s >= length and ms.src[start : start + length] == ms.src[s : s + length]:
        return s + length
    return None


def _interp_find(subject: bytes, prog: _Program, init: int) -> tuple[Capture, ...] | None:
    """The ``else`` branch of ``str_find_aux``: try each start position from ``init`` (0-based)."""
    ms = _MatchState(subject, prog.body)
    s1 = init
    try:
        while True:
            ms.level = 0
            e = _do_match(ms, s1, 0)
            if e is not None:
                caps: list[Capture] = [s1 + 1, e]
                for lvl in range(ms.level):
                    length = ms.clen[lvl]
                    if length == _CAP_UNFINISHED:
                        raise LuaPatternError(_ERR_UNFINISHED)
                    if length == _CAP_POSITION:
                        caps.append(ms.cinit[lvl] + 1)
                    else:
                        caps.append(subject[ms.cinit[lvl] : ms.cinit[lvl] + length])
                return tuple(caps)
            if prog.anchored or s1 >= ms.end:
                return None
            s1 += 1
    except RecursionError:
        raise LuaPatternError(_ERR_TOO_COMPLEX) from None


def _regex_find(subject: bytes, prog: _Program, init: int) -> tuple[Capture, ...] | None:
    assert prog.regex is not None
    m = prog.regex.match(subject, init) if prog.anchored else prog.regex.search(subject, init)
    if m is None:
        return None
    out: list[Capture] = [m.start() + 1, m.end()]
    for g in range(1, prog.regex.groups + 1):
        out.append(m.start(g) + 1 if g in prog.position_groups else m.group(g))
    return tuple(out)


# --- public API -----------------------------------------------------------------------------


def find(
    subject: bytes, pattern: bytes, init: int = 1, plain: bool = False
) -> tuple[Capture, ...] | None:
    """Lua 5.1 ``string.find(subject, pattern, init, plain)``.

    Returns ``(start, end, *captures)`` with 1-based inclusive positions (position captures are
    ints, other captures bytes), or None when there is no match.  Raises :class:`LuaPatternError`
    exactly when, and with the message with which, Lua 5.1 would raise (errors are lazy: a bad
    part of the pattern the matcher never reaches does not raise).  Like Lua 5.1 (not 5.2+), an
    ``init`` past the end is clamped, so ``find(b"abc", b"", 10) == (4, 3)``.
    """
    subject = bytes(subject)
    pattern = bytes(pattern)
    length = len(subject)
    if init < 0:
        init += length + 1
        if init < 0:
            init = 0
    init -= 1  # posrelat(...) - 1
    if init < 0:
        init = 0
    elif init > length:
        init = length
    prog = None if plain else _compile(pattern)
    if prog is None or prog.plain:
        idx = subject.find(pattern, init)  # lmemfind
        return None if idx < 0 else (idx + 1, idx + len(pattern))
    if prog.regex is not None:
        return _regex_find(subject, prog, init)
    return _interp_find(subject, prog, init)


def _contains(needle: bytes) -> Callable[[bytes], bool]:
    """Lua's plain search (``lmemfind``) reduced to a yes/no: is ``needle`` in the subject?

    Uses a compiled literal regex rather than ``needle in subject``: on CPython 3.11 ``re``'s literal
    search is about twice as fast as ``bytes.__contains__`` for typical message fields.
    """
    if not needle:
        return lambda subject: True
    probe = re.compile(re.escape(needle)).search
    return lambda subject: probe(subject) is not None


def compile_find(pattern: bytes, plain: bool = False) -> Callable[[bytes], bool]:
    """Return a predicate telling whether ``string.find(subject, pattern, 1, plain)`` finds a match.

    Unlike :func:`find`, malformed patterns are rejected here, up front, with Lua's message, even
    when Lua itself would only raise for some subjects: a matcher must not start failing on the
    first message that happens to reach the bad part of its pattern.  The predicate is the fastest
    exact form available: ``in``/``startswith``/``endswith``/``==`` for literal patterns, a compiled
    ``re`` otherwise, the interpreter only for ``%b`` with distinct delimiters.
    """
    pattern = bytes(pattern)
    if plain:
        return _contains(pattern)
    prog = _compile(pattern)
    if prog.plain:
        return _contains(pattern)
    if prog.error is not None:
        raise LuaPatternError(str(prog.error))
    lit = prog.literal
    if lit is not None:
        # Closures, not operator.methodcaller: a closure is about twice as fast per call here.
        if prog.anchored and prog.end_anchored:
            return lambda subject: subject == lit
        if prog.anchored:
            return lambda subject: subject.startswith(lit)
        if prog.end_anchored:
            return lambda subject: subject.endswith(lit)
        return _contains(lit)
    regex = prog.regex
    if regex is not None:
        probe = regex.match if prog.anchored else regex.search

        def regex_predicate(subject: bytes) -> bool:
            return probe(subject) is not None

        return regex_predicate

    def interp_predicate(subject: bytes) -> bool:
        return _interp_find(subject, prog, 0) is not None

    return interp_predicate


def _describe(pattern: bytes) -> tuple[str, bytes | None]:
    """Which path ``compile_find`` takes for ``pattern`` and its regex source; for tests and debugging."""
    prog = _compile(bytes(pattern))
    if prog.plain:
        return ("plain", None)
    if prog.error is not None:
        return ("error", None)
    if prog.literal is not None:
        return ("literal", prog.regex.pattern if prog.regex is not None else None)
    if prog.regex is not None:
        return ("regex", prog.regex.pattern)
    return ("interpreter", None)

