"""Token layer: rewrite con syntax into plain Python that carries markers.

    f@(a, b)            ->  f(a, b).__con_await__
    sibling g@(x)       ->  __con_sibling__@g(x)

The text is edited at token positions (never re-assembled with ``untokenize``), no
line is added or removed, and every edit is recorded in a ``ColumnMap`` so that the
later stages can translate columns of the rewritten text back to the original.
Source without con syntax comes back as the very same string.

A non-atomic call is an ``@`` whose left neighbour ends a primary (a name that is
not a keyword, a number, a string, ``)`` or ``]``) with nothing in between, and
whose right neighbour is ``(``, again with nothing in between.  Every other ``@``
(spaced matrix multiplication, ``@=``, decorators) is left alone.
"""
from __future__ import annotations

import io
import keyword
import re
import sys
import tokenize
from dataclasses import dataclass, field
from tokenize import NAME, NEWLINE, NL, NUMBER, OP, STRING, COMMENT, INDENT, DEDENT, ENDMARKER

AWAIT_MARKER = "__con_await__"
SIBLING_MARKER = "__con_sibling__"
RESERVED_PREFIX = "__con_"

FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # 3.12+
FSTRING_END = getattr(tokenize, "FSTRING_END", None)

_PRIMARY_END_TYPES = {NUMBER, STRING} | ({FSTRING_END} if FSTRING_END is not None else set())
_PRIMARY_START_TYPES = {NAME, NUMBER, STRING} | ({FSTRING_START} if FSTRING_START is not None else set())
_STATEMENT_START_TYPES = {NEWLINE, NL, INDENT, DEDENT}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
# A cheap pre-check: every non-atomic call contains '@(' (what stands left of the '@' is
# for the tokens to judge: '1.', 'x\u00b7' and 'e\u0301' end primaries too, and no regex
# class says so reliably).
_CON_SYNTAX_HINT = re.compile(r"@\(|\bsibling\b|__con_")
_TIGHT_CALL_IN_TEXT = re.compile(r"[\w)\]'\"]@\(")


@dataclass
class _Edit:
    col: int        # character column in the original line
    length: int     # characters of the original replaced
    text: str       # replacement


@dataclass
class ColumnMap:
    """Per-line record of the token edits, to map rewritten columns back."""

    edits: dict[int, list[_Edit]] = field(default_factory=dict)
    original_lines: list[str] = field(default_factory=list)
    rewritten_lines: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.edits)

    def char_to_original(self, lineno: int, col: int) -> int:
        """Map a character column of rewritten line ``lineno`` (1-based) to the original."""
        shift = 0
        for edit in self.edits.get(lineno, ()):
            start = edit.col + shift
            if col < start:
                break
            if col < start + len(edit.text):
                return edit.col  # inside inserted text: point at the edit's place
            shift += len(edit.text) - edit.length
        return col - shift

    def byte_to_original(self, lineno: int, col: int) -> int:
        """Map a UTF-8 byte column of rewritten line ``lineno`` to a byte column of the original."""
        if lineno not in self.edits:
            return col
        new = self.rewritten_lines[lineno - 1]
        old = self.original_lines[lineno - 1]
        if new.isascii() and old.isascii():
            return self.char_to_original(lineno, col)
        chars = len(new.encode("utf-8")[:col].decode("utf-8", "ignore"))
        return len(old[: self.char_to_original(lineno, chars)].encode("utf-8"))


@dataclass
class TokenRewrite:
    source: str
    columns: ColumnMap
    sibling_lines: frozenset[int] = frozenset()

    @property
    def changed(self) -> bool:
        return bool(self.columns)


def con_syntax_error(message: str, filename: str, lineno: int, col: int, line: str,
                     end_col: int | None = None) -> SyntaxError:
    """A real SyntaxError; ``col`` and ``end_col`` are 0-based character columns."""
    end = (end_col if end_col is not None else col + 1) + 1
    return SyntaxError(message, (filename, lineno, col + 1, line, lineno, end))


def rewrite_source(source: str, filename: str = "<con>") -> TokenRewrite:
    """Rewrite the con syntax of ``source``; see the module docstring."""
    if not _CON_SYNTAX_HINT.search(source):
        return TokenRewrite(source, ColumnMap())
    lines = io.StringIO(source).readlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        # Not valid Python at all: let compile() report it with CPython's words.
        return TokenRewrite(source, ColumnMap())
    return _Rewriter(tokens, lines, filename).run()


class _Rewriter:
    def __init__(self, tokens, lines, filename):
        self.tokens = tokens
        self.lines = lines
        self.filename = filename
        self.closers, self.depths = _match_brackets(tokens)
        self.openers = {closer: opener for opener, closer in self.closers.items()}
        self.edits: dict[int, list[_Edit]] = {}
        self.sibling_lines: set[int] = set()

    def error(self, message: str, tok: tokenize.TokenInfo) -> SyntaxError:
        row, col = tok.start
        end_col = tok.end[1] if tok.end[0] == row else None
        return con_syntax_error(message, self.filename, row, col, self.lines[row - 1], end_col)

    def edit(self, row: int, col: int, length: int, text: str) -> None:
        self.edits.setdefault(row, []).append(_Edit(col, length, text))

    def run(self) -> TokenRewrite:
        thread_calls = set()  # indexes of '@' tokens that start a sibling's thread call
        for index, tok in enumerate(self.tokens):
            if tok.type == NAME:
                if tok.string == "sibling" and self.starts_sibling(index):
                    thread_calls.add(self.rewrite_sibling(index))
                elif tok.string.startswith(RESERVED_PREFIX):
                    raise self.error(f"names beginning {RESERVED_PREFIX!r} are reserved for conhook; "
                                     f"rename {tok.string!r}", tok)
            elif tok.type == STRING and sys.version_info < (3, 12):
                self.check_fstring_311(tok)
        calls = [index for index, tok in enumerate(self.tokens)
                 if tok.type == OP and tok.string == "@" and self.is_nonatomic_call(index)]
        if calls and FSTRING_START is not None:
            self.check_fstring_debug_fields(calls)
        for index in calls:
            self.rewrite_call(index, marker=index not in thread_calls)
        return self.apply()

    # -- non-atomic calls ------------------------------------------------------------

    def is_nonatomic_call(self, index: int) -> bool:
        if index == 0 or index + 1 >= len(self.tokens):
            return False
        before, at, after = self.tokens[index - 1], self.tokens[index], self.tokens[index + 1]
        return (before.end == at.start and at.end == after.start
                and after.type == OP and after.string == "("
                and _ends_primary(before))

    def rewrite_call(self, index: int, marker: bool) -> None:
        at = self.tokens[index]
        self.edit(at.start[0], at.start[1], 1, "")
        if not marker:
            return
        closer = self.tokens[self.closers[index + 1]]
        row, col = closer.end
        following = self.lines[row - 1][col:col + 1]
        glue = " " if following and (following.isalnum() or following == "_" or not following.isascii()) else ""
        self.edit(row, col, 0, "." + AWAIT_MARKER + glue)

    # -- sibling ---------------------------------------------------------------------

    def starts_sibling(self, index: int) -> bool:
        """``sibling`` followed by the start of a primary: the statement, not the name."""
        nxt = self.tokens[index + 1] if index + 1 < len(self.tokens) else None
        if nxt is None or nxt.type not in _PRIMARY_START_TYPES:
            return False
        if nxt.type == NAME and keyword.iskeyword(nxt.string):
            return False
        prev = self.tokens[index - 1] if index else None
        if self.depths[index] or (prev is not None and not (
                prev.type in _STATEMENT_START_TYPES or (prev.type == OP and prev.string in (";", ":")))):
            raise self.error("'sibling' starts a statement; it cannot be used inside an "
                             "expression: put 'sibling f@(args)' on a line of its own",
                             self.tokens[index])
        return True

    def rewrite_sibling(self, index: int) -> int:
        """Mark the statement; return the index of the '@' of the thread's call."""
        kw = self.tokens[index]
        end = self.statement_end(index + 1)
        last = self.tokens[end - 1]
        at = self.openers.get(end - 1, 0) - 1 if last.type == OP and last.string == ")" else -1
        if at <= index or not (self.tokens[at].string == "@" and self.is_nonatomic_call(at)):
            raise self.error("'sibling' takes a non-atomic call: write 'sibling f@(args)'", kw)
        self.edit(kw.start[0], kw.start[1], len(kw.string), SIBLING_MARKER + "@")
        self.sibling_lines.add(kw.start[0])
        return at

    def statement_end(self, index: int) -> int:
        """Index one past the last token of the simple statement that contains ``index``."""
        depth = 0
        while index < len(self.tokens):
            tok = self.tokens[index]
            if tok.type == OP and tok.string in _OPENERS:
                depth += 1
            elif tok.type == OP and tok.string in (")", "]", "}"):
                depth -= 1
            elif depth == 0 and (tok.type in (NEWLINE, ENDMARKER, COMMENT)
                                 or (tok.type == OP and tok.string == ";")):
                return index
            index += 1
        return index

    # -- f-strings on 3.11 -------------------------------------------------------------

    def check_fstring_311(self, tok: tokenize.TokenInfo) -> None:
        prefix = re.match(r"[A-Za-z]*", tok.string).group(0)
        if "f" not in prefix.lower():
            return
        for offset in _fstring_field_calls(tok.string[len(prefix):]):
            row, col = _advance(tok.start, tok.string[:len(prefix) + offset])
            raise con_syntax_error(
                "non-atomic calls inside f-strings need Python 3.12 or newer; "
                "compute the value into a variable before the f-string",
                self.filename, row, col, self.lines[row - 1])

    # -- f-strings on 3.12+ ------------------------------------------------------------

    def check_fstring_debug_fields(self, calls: list[int]) -> None:
        """Reject ``f"{g@(x)=}"``: the '=' would print the rewritten text."""
        fields = []  # (index of '{', bracket depth inside the f-string) of open fields
        in_fstring = []
        for index, tok in enumerate(self.tokens):
            if tok.type == FSTRING_START:
                in_fstring.append(self.depths[index])
            elif tok.type == FSTRING_END:
                in_fstring.pop()
            elif tok.type == OP and in_fstring:
                if tok.string == "{" and self.depths[index] == in_fstring[-1]:
                    fields.append(index)
                elif tok.string == "}" and fields and self.closers.get(fields[-1]) == index:
                    fields.pop()
                elif (tok.string == "=" and fields and self.depths[index] == self.depths[fields[-1]] + 1
                      and self.tokens[index + 1].string in ("}", "!", ":")
                      and any(fields[-1] < call < index for call in calls)):
                    raise self.error("an f-string's '=' specifier cannot show a non-atomic call; "
                                     "compute the value into a variable first", tok)

    # -- output ----------------------------------------------------------------------

    def apply(self) -> TokenRewrite:
        original = list(self.lines)
        rewritten = list(self.lines)
        for row, edits in self.edits.items():
            edits.sort(key=lambda e: e.col)
            line = rewritten[row - 1]
            for edit in reversed(edits):
                line = line[:edit.col] + edit.text + line[edit.col + edit.length:]
            rewritten[row - 1] = line
        columns = ColumnMap(self.edits, original, rewritten)
        return TokenRewrite("".join(rewritten), columns, frozenset(self.sibling_lines))


def _ends_primary(tok: tokenize.TokenInfo) -> bool:
    if tok.type == NAME:
        return not keyword.iskeyword(tok.string)
    if tok.type == OP:
        return tok.string in (")", "]")
    return tok.type in _PRIMARY_END_TYPES


def _match_brackets(tokens) -> tuple[dict[int, int], list[int]]:
    """Index of the closer of each opening bracket, and the bracket depth of each token."""
    closers: dict[int, int] = {}
    depths: list[int] = []
    stack: list[int] = []
    for index, tok in enumerate(tokens):
        depths.append(len(stack))
        if tok.type != OP:
            continue
        if tok.string in _OPENERS:
            stack.append(index)
        elif tok.string in (")", "]", "}") and stack:
            closers[stack.pop()] = index
    return closers, depths


def _fstring_field_calls(body: str):
    """Offsets (within ``body``, the f-string without prefix) of tight ``@(`` in fields."""
    depth = 0
    field_start = 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "{":
            if depth == 0 and body[i + 1:i + 2] == "{":
                i += 2
                continue
            if depth == 0:
                field_start = i + 1
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                for match in _TIGHT_CALL_IN_TEXT.finditer(body, field_start, i):
                    yield match.start() + 1
        i += 1


def _advance(start: tuple[int, int], text: str) -> tuple[int, int]:
    row, col = start
    newlines = text.count("\n")
    if newlines:
        return row + newlines, len(text) - text.rindex("\n") - 1
    return row, col + len(text)
