"""Plain-Python views of a con file, for tools that read Python: type checkers, linters and
formatters.

Both views are made at token positions found by the compiler's token layer (``tokens``), and
neither adds, removes or moves a line of the user's text.

The **typing view** (``typing_view``), for type checkers and linters, says what the code means:

    f@(x)           ->  (await f(x))           (the function holding it becomes ``async def``)
    sibling f@(x)   ->  __con_sibling__( f(x))  (a checked call of ``f``; the result is dropped)

A function holding a non-atomic call or a ``sibling`` is a coroutine function, as the
compiler makes it.  In a lambda (Python has no ``async lambda``) ``f@(x)`` is ``(f(x))``: the
lambda's type is then right where its body is the call alone, the usual case.
``__con_sibling__`` is defined on a line added after the file's last line (diagnostics
there are not the user's).  Its ``ColumnMap`` maps every column back.

The **format view** (``format_view``), for formatters, is reversible: ``from_format_view``
turns the formatter's output back into con syntax.  It keeps each line's width (but for one
more per `)@(`), so the formatter wraps lines where it would wrap the con text:

    f@(x)           ->  fϟ(x)     (a name: ``@`` becomes a letter of the name)
    g(1)@(x)        ->  g(1).ϟ(x) (anything else that ends a primary)
    sibling f@(x)   ->  ϟϟϟϟϟ = fϟ(x)

``ϟ`` stands for a letter that the file does not contain.  The round trip is exact only if
making the view of the result gives the formatter's output again; ``from_format_view``
checks that, so no formatting can change what the code means.
"""
from __future__ import annotations

import ast
import io
import re
from dataclasses import dataclass

from .._compiler import tokens as _tokens
from .._compiler.pipeline import parse_con
from .._compiler.positions import ColumnMap, Edit, apply_edits, char_col
from .._reserved_names import AWAIT_MARKER, SIBLING_MARKER

SIBLING_HELPER = "__con_sibling__"
_SIBLING_TAIL = f"def {SIBLING_HELPER}(call: object, /) -> None: ...\n"
# Letters for the format view's marker: the first that the file does not contain is used.
_MARKERS = "ϟϙϡꝏꙮ"


class ViewError(Exception):
    """A con file that a view cannot be made of (or, for formatting, made back from)."""


@dataclass
class View:
    text: str          # the plain-Python text
    columns: ColumnMap  # its columns back to the con text's
    lines: int          # how many lines the con text has (lines after it are the view's own)

    def original_col(self, lineno: int, col: int) -> int:
        """The con text's character column (0-based) of the view's column ``col`` of line
        ``lineno`` (1-based)."""
        return self.columns.char_to_original(lineno, col)


def _scan(source: str, filename: str):
    """The token layer's findings: the tokens, the ``@`` of every non-atomic call, each
    ``sibling`` keyword with the ``@`` of its call, and the brackets' closers and openers."""
    try:
        toks = _tokens.tokenize_text(source)
    except (SyntaxError, _tokens.tokenize.TokenError) as error:
        raise ViewError(f"{filename}: not valid Python or con syntax: {error}") from None
    rewriter = _tokens.Rewriter(toks, io.StringIO(source).readlines(), filename, source)
    rewriter.scan()
    siblings = []
    try:
        for index, depth in rewriter.noted:
            tok = toks[index]
            if tok.type == _tokens.NAME and tok.string == "sibling" and rewriter.starts_sibling(index, depth):
                siblings.append((index, rewriter.rewrite_sibling(index)))
    except SyntaxError as error:
        raise ViewError(f"{filename}:{error.lineno}:{error.offset}: {error.msg}") from None
    return toks, rewriter.calls, siblings, rewriter.closers, rewriter.openers


def _skip_back(toks, index: int) -> int:
    while index >= 0 and toks[index].type in (_tokens.NL, _tokens.COMMENT):
        index -= 1
    return index


def _primary_start(toks, at: int, calls: set[int], openers: dict[int, int]) -> int:
    """The index of the first token of the primary that the ``@`` at ``at`` calls."""
    index = at - 1
    while True:
        tok = toks[index]
        if tok.type == _tokens.OP and tok.string in (")", "]"):
            index = openers[index]
            before = _skip_back(toks, index - 1)
            if before >= 0 and before in calls:        # x@(a)@(b): the inner call is a trailer
                index = before - 1
            elif before >= 0 and _tokens.ends_primary(toks[before]):  # a call or a subscript
                index = before
            else:
                return index                            # a parenthesized atom
        elif tok.type == _tokens.NAME:
            before = _skip_back(toks, index - 1)
            if before >= 0 and toks[before].type == _tokens.OP and toks[before].string == ".":
                index = _skip_back(toks, before - 1)
            else:
                return index
        elif tok.type in _tokens.FSTRING_ENDS:
            depth = 0
            while True:
                if toks[index].type in _tokens.FSTRING_ENDS:
                    depth += 1
                elif toks[index].type in _tokens.FSTRING_STARTS:
                    depth -= 1
                    if not depth:
                        return index
                index -= 1
        else:
            return index


def _scopes(source: str, filename: str) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """Where con syntax makes coroutines, as (line, character column) of the con text:

    * the ``def`` of every plain function that holds a non-atomic call or a ``sibling`` of
      its own (the compiler makes each a coroutine function);
    * the start of every non-atomic call in a lambda (Python has no ``async lambda``: there
      the view leaves the call unawaited, so the lambda returns the awaitable it makes)."""
    try:
        tree, rewrite = parse_con(source, filename)
    except SyntaxError as error:
        raise ViewError(f"{filename}:{error.lineno}:{error.offset}: {error.msg}") from None
    defs, in_lambdas = [], []

    def visit(node, owner):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            outside = [*getattr(node, "decorator_list", ()), *getattr(node, "bases", ()),
                       *getattr(node, "keywords", ())]
            if not isinstance(node, ast.ClassDef):
                args = node.args
                outside += [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
                if not isinstance(node, ast.Lambda):
                    outside += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                       args.vararg, args.kwarg) if a and a.annotation]
                    outside += [node.returns] if node.returns else []
            for child in outside:
                visit(child, owner)
            inner = node if isinstance(node, (ast.FunctionDef, ast.Lambda)) else None
            for child in (node.body if isinstance(node.body, list) else [node.body]):
                visit(child, inner)
            return
        if isinstance(node, ast.Attribute) and node.attr == AWAIT_MARKER and isinstance(owner, ast.Lambda):
            in_lambdas.append(node)
        elif isinstance(owner, ast.FunctionDef) and (
                (isinstance(node, ast.Attribute) and node.attr == AWAIT_MARKER)
                or (isinstance(node, ast.Name) and node.id == SIBLING_MARKER)):
            defs.append(owner)
        for child in ast.iter_child_nodes(node):
            visit(child, owner)

    visit(tree, None)

    def place(node):
        if not rewrite.columns:
            return node.lineno, node.col_offset
        col = char_col(rewrite.columns.rewritten_lines[node.lineno - 1], node.col_offset)
        return node.lineno, rewrite.columns.char_to_original(node.lineno, col)

    return sorted({place(node) for node in defs}), {place(node) for node in in_lambdas}


def typing_view(source: str, filename: str = "<con>") -> View:
    """The typing view of ``source`` (see the module docstring)."""
    lines = io.StringIO(source).readlines()
    if not _tokens.CON_SYNTAX_HINT.search(source):
        return View(source, ColumnMap({}, lines, lines), len(lines))
    toks, calls, siblings, closers, openers = _scan(source, filename)
    if not calls and not siblings:  # plain Python (that may name conhook's reserved names)
        return View(source, ColumnMap({}, lines, lines), len(lines))
    coroutine_defs, lambda_calls = _scopes(source, filename)
    thread_calls = {at for _, at in siblings}
    call_set = set(calls)
    edits: list[tuple[tuple[int, int], int, Edit]] = []  # ((line, col), order, edit)

    def insert(pos, order, text):
        edits.append((pos, order, Edit(pos[1], 0, text)))

    for at in calls:
        tok = toks[at]
        edits.append((tok.start, 1, Edit(tok.start[1], 1, "")))
        if at in thread_calls:
            continue
        start = toks[_primary_start(toks, at, call_set, openers)].start
        # (the outer of two calls that start at one place opens first)
        insert(start, -at, "(" if start in lambda_calls else "(await ")
        insert(toks[closers[at + 1]].end, 0, ")")
    for keyword, at in siblings:
        tok = toks[keyword]
        edits.append((tok.start, 0, Edit(tok.start[1], len(tok.string), SIBLING_HELPER + "(")))
        insert(toks[closers[at + 1]].end, 0, ")")
    for row, col in coroutine_defs:
        insert((row, col), 0, "async ")
    by_line: dict[int, list[Edit]] = {}
    for (row, _), _, edit in sorted(edits, key=lambda e: (e[0], e[1])):
        by_line.setdefault(row, []).append(edit)
    rewritten = apply_edits(lines, by_line)
    text = "".join(rewritten)
    if siblings:
        text += ("" if not text or text.endswith("\n") else "\n") + _SIBLING_TAIL
    return View(text, ColumnMap(by_line, lines, rewritten), len(lines))


# -- the format view ------------------------------------------------------------------


def _marker(source: str) -> str:
    for letter in _MARKERS:
        if letter not in source:
            return letter
    raise ViewError("the file holds every letter the format view could use: " + _MARKERS)


def format_view(source: str, filename: str = "<con>") -> tuple[str, str]:
    """The format view of ``source`` and the marker letter it uses (see the module docstring)."""
    marker = _marker(source)
    if not _tokens.CON_SYNTAX_HINT.search(source):
        return source, marker
    toks, calls, siblings, _, _ = _scan(source, filename)
    by_line: dict[int, list[Edit]] = {}
    for keyword, _at in siblings:
        tok, following = toks[keyword], toks[keyword + 1]
        if following.start[0] != tok.start[0]:
            raise ViewError(f"{filename}:{tok.start[0]}: 'sibling' and its call on different lines")
        by_line.setdefault(tok.start[0], []).append(
            Edit(tok.start[1], following.start[1] - tok.start[1], marker * 5 + " = "))
    for at in calls:
        before, tok = toks[at - 1], toks[at]
        if before.type == _tokens.NUMBER:
            raise ViewError(f"{filename}:{tok.start[0]}:{tok.start[1] + 1}: a number called with @()")
        glued = before.type == _tokens.NAME
        by_line.setdefault(tok.start[0], []).append(Edit(tok.start[1], 1, marker if glued else "." + marker))
    for row in by_line:
        by_line[row].sort(key=lambda e: e.col)
    return "".join(apply_edits(io.StringIO(source).readlines(), by_line)), marker


def from_format_view(text: str, marker: str, filename: str = "<con>") -> str:
    """The con text of a formatter's output ``text`` of a format view made with ``marker``.

    Raises ``ViewError`` if the formatter moved the view's parts apart so that no con text
    says the same (the view of the result would not be ``text``)."""
    con = re.sub(re.escape(marker * 5) + " = ", "sibling ", text)
    con = con.replace("." + marker + "(", "@(").replace(marker + "(", "@(")
    try:
        again, _ = format_view(con, filename)
    except (ViewError, SyntaxError) as error:
        raise ViewError(f"{filename}: the formatted code is no longer con code: {error}") from None
    if marker in con or again != text:
        first = next(i for i, (a, b) in enumerate(zip(again.splitlines(), text.splitlines()))
                     if a != b) if again.splitlines() != text.splitlines() else 0
        raise ViewError(f"{filename}:{first + 1}: the formatter moved con syntax apart "
                        "(a 'sibling' from its call, or '@' from its callee); the file is left "
                        "as it was: shorten that line so that it fits")
    return con
