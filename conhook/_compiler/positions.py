"""Positions: from the rewritten text back to what the user wrote.

The token layer edits lines in place (it never adds or removes one) and records each edit in a
``ColumnMap``.  Everything later that must say where something stands in the user's text asks
that one map:

* the AST step moves every node's columns back (``restore_node``, ``restore_subtree``; UTF-8
  byte columns, as ``ast`` has them), finds what a node stood for (``original_text``), and
  where the rewritten text has a column of the original (``char_to_rewritten``);
* the pipeline moves a ``SyntaxError`` of the rewritten text back (``restore_syntax_error``);
* errors built from a node turn its byte column into a character column (``char_col``).
"""
from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass, field


@dataclass
class Edit:
    col: int        # character column in the original line
    length: int     # characters of the original replaced
    text: str       # replacement


def apply_edits(lines: list[str], edits: dict[int, list[Edit]]) -> list[str]:
    """`lines` with `edits` (line number -> edits sorted by column) made."""
    rewritten = list(lines)
    for row, row_edits in edits.items():
        line = rewritten[row - 1]
        for edit in reversed(row_edits):
            line = line[:edit.col] + edit.text + line[edit.col + edit.length:]
        rewritten[row - 1] = line
    return rewritten


def char_col(line: str, byte_col: int | None) -> int:
    """The character column of UTF-8 byte column ``byte_col`` of ``line`` (None: 0)."""
    if byte_col is None:
        return 0
    if line.isascii():
        return byte_col
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def advance(start: tuple[int, int], text: str) -> tuple[int, int]:
    """Where ``text`` ends, written from (line, character column) ``start``."""
    row, col = start
    newlines = text.count("\n")
    if newlines:
        return row + newlines, len(text) - text.rindex("\n") - 1
    return row, col + len(text)


# Fields that never hold a node with a position or children: skipped when walking.
_NO_NODE_FIELDS = frozenset({"ctx", "op", "ops", "id", "attr", "arg", "type_comment", "kind",
                             "is_async", "conversion", "level", "module", "simple", "kwd_attrs",
                             "rest", "tag"})
_LEAVES = (ast.Constant, ast.MatchSingleton, ast.Global, ast.Nonlocal, ast.Pass, ast.Break,
           ast.Continue, ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)
_NODE_INFO: dict[type, tuple[tuple[str, ...], bool]] = {}


def node_info(cls: type) -> tuple[tuple[str, ...], bool]:
    """For node class ``cls``: the fields that may hold child nodes (or lists of them), and
    whether it has decorators.  Anything else found in a tree has neither."""
    info = _NODE_INFO.get(cls)
    if info is None:
        fields = getattr(cls, "_fields", ()) if issubclass(cls, ast.AST) else ()
        children = () if issubclass(cls, _LEAVES) else tuple(
            name for name in fields if name not in _NO_NODE_FIELDS)
        info = _NODE_INFO[cls] = (children, "decorator_list" in fields)
    return info


@dataclass
class ColumnMap:
    """The token layer's edits, line by line, and every way of mapping columns back."""

    edits: dict[int, list[Edit]] = field(default_factory=dict)  # line number -> edits, by column
    original_lines: list[str] = field(default_factory=list)
    rewritten_lines: list[str] = field(default_factory=list)
    _tables: dict = field(default_factory=dict, repr=False)
    _restored: set = field(default_factory=set, repr=False)  # ids of the nodes moved back

    def __bool__(self) -> bool:
        return bool(self.edits)

    @property
    def edited_lines(self) -> list[int]:
        """The edited lines, in order: con syntax (and so every marker) stands on them."""
        lines = self._tables.get("edited")
        if lines is None:
            lines = self._tables["edited"] = sorted(self.edits)
        return lines

    # -- character columns ---------------------------------------------------------

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

    def char_to_rewritten(self, lineno: int, col: int) -> int:
        """Map a character column of original line ``lineno`` that no edit replaced to the
        rewritten line (text inserted at ``col`` stands before it)."""
        return col + sum(len(edit.text) - edit.length for edit in self.edits.get(lineno, ())
                         if edit.col < col or (edit.col == col and not edit.length))

    def original_text(self, lineno: int, col: int, text: str) -> str:
        """The original of ``text``, which stands in the rewritten text at line ``lineno``,
        character column ``col``."""
        end_lineno, end_col = advance((lineno, col), text)
        start, end = self.char_to_original(lineno, col), self.char_to_original(end_lineno, end_col)
        if lineno == end_lineno:
            return self.original_lines[lineno - 1][start:end]
        lines = self.original_lines[lineno - 1:end_lineno]
        return "".join([lines[0][start:], *lines[1:-1], lines[-1][:end]])

    # -- byte columns (the AST's) --------------------------------------------------

    def byte_to_original(self, lineno: int, col: int) -> int:
        """Map a UTF-8 byte column of rewritten line ``lineno`` to a byte column of the original."""
        if lineno not in self.edits:
            return col
        try:
            found = self._tables[lineno]
        except KeyError:
            found = self._tables[lineno] = self.byte_table(lineno)
        if found is not None:
            table, shift = found
            return table[col] if col < len(table) else col - shift
        new = self.rewritten_lines[lineno - 1]
        old = self.original_lines[lineno - 1]
        original = self.char_to_original(lineno, char_col(new, col))
        return len(old[:original].encode("utf-8"))

    def byte_table(self, lineno: int) -> tuple[list[int], int] | None:
        """``byte_to_original`` of an edited line, worked out for the whole line at once.

        ``(table, shift)``: byte column ``col`` of the rewritten line is ``table[col]`` in the
        original if ``col < len(table)``, else ``col - shift``.  None where the line is not
        ASCII (then bytes and characters differ, and each column is mapped on its own).
        """
        new = self.rewritten_lines[lineno - 1]
        if not (new.isascii() and self.original_lines[lineno - 1].isascii()):
            return None
        # Column by column this is ``char_to_original``: the first edit that a column
        # stands before or inside decides it.
        table: list[int] = []
        shift = 0
        for edit in self.edits[lineno]:
            start = edit.col + shift
            if start > len(table):
                table.extend(range(len(table) - shift, start - shift))
            end = start + len(edit.text)
            if end > len(table):
                table.extend([edit.col] * (end - len(table)))
            shift += len(edit.text) - edit.length
        return table, shift

    # -- nodes -----------------------------------------------------------------------

    def spans_edited(self, node, first: int, last: int) -> bool:
        """Whether ``node``, from line ``first`` to ``last`` (with its decorators), spans an
        edited line.  A node that does not is ordinary code: nothing in it needs moving."""
        decorators = getattr(node, "decorator_list", None)
        if decorators:  # they stand above the def or class line
            first = min(first, decorators[0].lineno)
        edited = self.edited_lines
        i = bisect.bisect_left(edited, first)
        return i < len(edited) and edited[i] <= last

    def is_restored(self, node: ast.AST) -> bool:
        return id(node) in self._restored

    def restore_node(self, node: ast.AST) -> None:
        """Move ``node``'s own columns back (its line or end line was edited), once: a tree
        transformed before the AST step (pytest's assertion rewriting) may hold one node in
        several places."""
        if id(node) in self._restored:
            return
        self._restored.add(id(node))
        edited = self.edits
        lineno, end = node.lineno, node.end_lineno
        if lineno in edited:
            node.col_offset = self.byte_to_original(lineno, node.col_offset)
        if end in edited and node.end_col_offset is not None:
            node.end_col_offset = self.byte_to_original(end, node.end_col_offset)

    def restore_subtree(self, tree: ast.AST) -> None:
        """``restore_node`` for every node of ``tree`` on an edited line (for the parts of a
        tree that the AST step's walk does not visit)."""
        edited = self.edits
        spans_edited = self.spans_edited
        infos = _NODE_INFO
        stack = [tree]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            node = pop()
            info = infos.get(type(node)) or node_info(type(node))
            lineno = getattr(node, "lineno", None)
            if lineno is not None:
                end = node.end_lineno
                if end is not None:  # else it may span anything
                    if lineno == end and not info[1]:
                        if lineno not in edited:
                            continue
                    elif not spans_edited(node, lineno, end):
                        continue
                if lineno in edited or end in edited:
                    self.restore_node(node)
            for name in info[0]:
                value = getattr(node, name, None)
                if value is not None:
                    if type(value) is list:
                        extend(value)  # what is not a node has no position and no fields
                    else:
                        push(value)

    # -- syntax errors ---------------------------------------------------------------

    def restore_syntax_error(self, error: SyntaxError) -> SyntaxError:
        """A SyntaxError of the rewritten text, pointed at the original text."""
        if not self.edits or error.lineno is None:
            return error
        lines = self.original_lines
        lineno, end_lineno = error.lineno, error.end_lineno or error.lineno
        offset, end_offset = error.offset, error.end_offset
        if offset is not None and offset > 0:
            offset = self.char_to_original(lineno, offset - 1) + 1
        if end_offset is not None and end_offset > 0:
            end_offset = self.char_to_original(end_lineno, end_offset - 1) + 1
        text = lines[lineno - 1] if 0 < lineno <= len(lines) else error.text
        return SyntaxError(error.msg, (error.filename, lineno, offset, text, end_lineno, end_offset))
