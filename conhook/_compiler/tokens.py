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

import functools
import io
import keyword
import operator
import re
import tokenize
from dataclasses import dataclass
from tokenize import NAME, NEWLINE, NL, NUMBER, OP, STRING, COMMENT, INDENT, DEDENT, ENDMARKER

from .._reserved_names import AWAIT_MARKER, RESERVED_PREFIX, SIBLING_MARKER
from .positions import ColumnMap, Edit, advance, apply_edits
from .versions import TEMPLATE_STRINGS, TOKENIZED_FSTRINGS

if not TOKENIZED_FSTRINGS:
    from . import tokens_311

# The tokens that open and close an f-string (3.12+) or a template string (3.14+): the
# layer treats both kinds alike, fields and '=' specifiers included.
FSTRING_STARTS: frozenset[int] = frozenset()
FSTRING_ENDS: frozenset[int] = frozenset()
if TOKENIZED_FSTRINGS:
    FSTRING_STARTS |= {tokenize.FSTRING_START}
    FSTRING_ENDS |= {tokenize.FSTRING_END}
if TEMPLATE_STRINGS:
    FSTRING_STARTS |= {tokenize.TSTRING_START}
    FSTRING_ENDS |= {tokenize.TSTRING_END}

_PRIMARY_END_TYPES = {NUMBER, STRING} | FSTRING_ENDS
_PRIMARY_START_TYPES = {NAME, NUMBER, STRING} | FSTRING_STARTS
_STATEMENT_START_TYPES = {NEWLINE, NL, INDENT, DEDENT}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
# A cheap pre-check: every non-atomic call contains '@(' (what stands left of the '@' is
# for the tokens to judge: '1.', 'x\u00b7' and 'e\u0301' end primaries too, and no regex
# class says so reliably).
CON_SYNTAX_HINT = re.compile(r"@\(|\bsibling\b|__con_")


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
    if not ("@(" in source or "sibling" in source or RESERVED_PREFIX in source) \
            or not CON_SYNTAX_HINT.search(source):  # the plain searches are much faster
        return TokenRewrite(source, ColumnMap())
    lines = io.StringIO(source).readlines()
    try:
        tokens = tokenize_text(source)
    except (tokenize.TokenError, SyntaxError):
        # Not valid Python at all: let compile() report it with CPython's words.
        return TokenRewrite(source, ColumnMap())
    return Rewriter(tokens, lines, filename, source).run()


class Rewriter:
    def __init__(self, tokens, lines, filename, source=None):
        self.source = "".join(lines) if source is None else source
        self.tokens = tokens
        self.lines = lines
        self.filename = filename
        self.edits: dict[int, list[Edit]] = {}
        self.sibling_lines: set[int] = set()

    def error(self, message: str, tok: tokenize.TokenInfo) -> SyntaxError:
        row, col = tok.start
        end_col = tok.end[1] if tok.end[0] == row else None
        return con_syntax_error(message, self.filename, row, col, self.lines[row - 1], end_col)

    def edit(self, row: int, col: int, length: int, text: str) -> None:
        self.edits.setdefault(row, []).append(Edit(col, length, text))

    def run(self) -> TokenRewrite:
        self.scan()
        thread_calls = set()  # indexes of '@' tokens that start a sibling's thread call
        # The names and strings the scan noted, in the order of the file: the first error
        # in the file is the one reported.
        for index, depth in self.noted:
            tok = self.tokens[index]
            if tok.type == NAME:
                if tok.string == "sibling" and self.starts_sibling(index, depth):
                    thread_calls.add(self.rewrite_sibling(index))
                elif tok.string.startswith(RESERVED_PREFIX):
                    raise self.error(f"names beginning {RESERVED_PREFIX!r} are reserved for conhook; "
                                     f"rename {tok.string!r}", tok)
            else:
                self.check_fstring_311(tok)
        if self.fstring_calls:
            self.check_fstring_debug_fields(self.calls)
        for index in self.calls:
            self.rewrite_call(index, marker=index not in thread_calls)
        return self.apply()

    def scan(self) -> None:
        """One pass over the tokens: match brackets, find the non-atomic calls, and note
        the names (``sibling``, reserved names) and 3.11 strings to look at closer."""
        tokens = self.tokens
        closers: dict[int, int] = {}   # index of each opening bracket -> its closer
        calls: list[int] = []          # indexes of the '@' of non-atomic calls
        noted: list[tuple[int, int]] = []  # (index, bracket depth)
        stack: list[int] = []
        in_fstring = 0                 # f-strings (3.12+) and t-strings open around the current token
        fstring_calls = False          # whether a non-atomic call stands inside an f-string
        # A name can only be 'sibling' or reserved if the text holds such a word at all.
        siblings = "sibling" in self.source
        reserved = RESERVED_PREFIX in self.source
        strings_311 = not TOKENIZED_FSTRINGS
        fstring_starts, fstring_ends = FSTRING_STARTS, FSTRING_ENDS
        for index, tok in enumerate(tokens):
            kind = tok[0]
            if kind == OP:
                string = tok[1]
                if string == "(":
                    if index > 1:
                        at = tokens[index - 1]
                        if at[1] == "@" and at[0] == OP and at[3] == tok[2]:
                            before = tokens[index - 2]
                            if before[3] == at[2] and ends_primary(before):
                                calls.append(index - 1)
                                if in_fstring:
                                    fstring_calls = True
                    stack.append(index)
                elif string == "[" or string == "{":
                    stack.append(index)
                elif (string == ")" or string == "]" or string == "}") and stack:
                    closers[stack.pop()] = index
            elif kind == NAME:
                if ((siblings and tok[1] == "sibling")
                        or (reserved and tok[1].startswith(RESERVED_PREFIX))):
                    noted.append((index, len(stack)))
            elif kind in fstring_starts:
                in_fstring += 1
            elif kind in fstring_ends:
                in_fstring -= 1
            elif kind == STRING and strings_311 and "@(" in tok[1]:
                noted.append((index, len(stack)))  # a non-atomic call needs '@(' in the text
        self.closers = closers
        self.calls = calls
        self.noted = noted
        self.fstring_calls = fstring_calls

    @functools.cached_property
    def openers(self) -> dict[int, int]:
        return {closer: opener for opener, closer in self.closers.items()}

    # -- non-atomic calls ------------------------------------------------------------

    def is_nonatomic_call(self, index: int) -> bool:
        if index == 0 or index + 1 >= len(self.tokens):
            return False
        before, at, after = self.tokens[index - 1], self.tokens[index], self.tokens[index + 1]
        return (before.end == at.start and at.end == after.start
                and after.type == OP and after.string == "("
                and ends_primary(before))

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

    def starts_sibling(self, index: int, depth: int) -> bool:
        """``sibling`` followed by the start of a primary: the statement, not the name.

        ``depth`` is the bracket depth of the ``sibling`` token."""
        nxt = self.tokens[index + 1] if index + 1 < len(self.tokens) else None
        if nxt is None or nxt.type not in _PRIMARY_START_TYPES:
            return False
        if nxt.type == NAME and keyword.iskeyword(nxt.string):
            return False
        prev = self.tokens[index - 1] if index else None
        if depth or (prev is not None and not (
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
        for offset in tokens_311.fstring_calls(tok.string, tokenize_text, ends_primary):
            row, col = advance(tok.start, tok.string[:offset])
            raise con_syntax_error(
                "non-atomic calls inside f-strings need Python 3.12 or newer; "
                "compute the value into a variable before the f-string",
                self.filename, row, col, self.lines[row - 1])

    # -- f-strings on 3.12+ ------------------------------------------------------------

    def check_fstring_debug_fields(self, calls: list[int]) -> None:
        """Reject ``f"{g@(x)=}"`` and ``t"{g@(x)=}"``: the '=' would show the rewritten text.

        Run only when a non-atomic call stands inside an f-string or t-string (``scan``).
        """
        _, depths = _match_brackets(self.tokens)
        fields = []  # (index of '{', bracket depth inside the f-string) of open fields
        in_fstring = []  # (bracket depth, what the string is called) of each open string
        for index, tok in enumerate(self.tokens):
            if tok.type in FSTRING_STARTS:
                kind = "an f-string" if tok.type == tokenize.FSTRING_START else "a template string"
                in_fstring.append((depths[index], kind))
            elif tok.type in FSTRING_ENDS:
                in_fstring.pop()
            elif tok.type == OP and in_fstring:
                if tok.string == "{" and depths[index] == in_fstring[-1][0]:
                    fields.append(index)
                elif tok.string == "}" and fields and self.closers.get(fields[-1]) == index:
                    fields.pop()
                elif (tok.string == "=" and fields and depths[index] == depths[fields[-1]] + 1
                      and self.tokens[index + 1].string in ("}", "!", ":")
                      and any(fields[-1] < call < index for call in calls)):
                    raise self.error(f"{in_fstring[-1][1]}'s '=' specifier cannot show a non-atomic "
                                     "call; compute the value into a variable first", tok)

    # -- output ----------------------------------------------------------------------

    def apply(self) -> TokenRewrite:
        for edits in self.edits.values():
            edits.sort(key=lambda e: e.col)
        original = list(self.lines)
        rewritten = apply_edits(original, self.edits)
        columns = ColumnMap(self.edits, original, rewritten)
        return TokenRewrite("".join(rewritten), columns, frozenset(self.sibling_lines))


def ends_primary(tok: tokenize.TokenInfo) -> bool:
    """docs/spec.md §1.1: a name that is not a keyword (``None``, ``True`` and ``False`` are keywords),
    a literal (the ellipsis ``...`` among them), the end of a string or f-string, ``)`` or
    ``]``."""
    if tok.type == NAME:
        return not keyword.iskeyword(tok.string)
    if tok.type == OP:
        return tok.string in (")", "]", "...")
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


def tokenize_text(source: str) -> list[tokenize.TokenInfo]:
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    if not TOKENIZED_FSTRINGS and tokenize.ERRORTOKEN in map(operator.itemgetter(0), tokens):
        return tokens_311.join_names(tokens)  # only ERRORTOKENs need mending
    return tokens
