"""AST step: check where con syntax may stand, build prejoin scopes, restore columns.

Runs between the token layer and ``compile``.  It

* rejects non-atomic calls where docs/spec.md §1.1 forbids them, with a ``SyntaxError`` that
  names the original line and column and says what to do instead;
* turns each ``sibling`` statement into a call on the prejoin scope of its function,
  and wraps the body of every function that starts threads in that scope (below);
* on Python 3.11, where comprehensions are functions of their own, marks the call of
  a comprehension that makes non-atomic calls so that it is awaited too;
* moves the columns of every node on an edited line back to the original text, so
  that compiled code, tracebacks and carets point at what the user wrote.

Only subtrees that span a line the token layer edited are walked (every marker stands
on one), in a single walk that checks, transforms and restores columns at once.

The prejoin scope of a function that starts threads::

    __con_scope__ = __con__.prejoin()
    try:
        <body, with each `sibling F@(A)` as  __con_scope__.start(F, A)>
    except BaseException as __con_exc__:
        if await __con_scope__.failed(__con_exc__):
            raise
    finally:
        try:
            await __con_scope__.join()
        except BaseException as __con_exc__:
            __con_scope__.rethrown(__con_exc__)
            raise

(``await`` written as the marker, which the bytecode layer turns into the real thing.)
"""
from __future__ import annotations

import ast
import bisect

from .._reserved_names import AWAIT_MARKER, EXC_NAME, RUNTIME_NAME, SCOPE_NAME, SIBLING_MARKER
from .positions import ColumnMap, char_col, node_info
from .tokens import TokenRewrite
from .versions import COMPREHENSIONS_ARE_FUNCTIONS, LAZY_IMPORTS


_FUNCTION = "function"
_LAMBDA = "lambda"
_MODULE = "module"
_CLASS = "class"
_GENEXP = "generator expression"

_WHERE_REMEDY = {
    _MODULE: "at module level; move it into a function and run that with con.bootstrap()",
    _CLASS: "in a class body; move it into a method",
    _GENEXP: "in a generator expression; use a list comprehension instead",
}


def is_marker(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == AWAIT_MARKER


def transform(tree: ast.Module, rewrite: TokenRewrite, filename: str, *, toplevel: bool = False,
              opener: str = "prejoin") -> ast.Module:
    """Check and transform ``tree`` (parsed from ``rewrite.source``) in place.

    ``toplevel`` allows non-atomic calls and siblings at module level (``%%con`` cells
    and the REPL); the module body is then a prejoin scope of its own, which
    ``__con__.<opener>()`` opens (``background``: the threads outlive the input, docs/interactive.md).
    """
    columns = rewrite.columns
    if not columns:
        # Every marker (and every 'sibling') stands on a line the token layer edited:
        # without edits there is nothing to check, transform or restore.
        return tree
    checker = _Checker(filename, columns.original_lines, toplevel, columns)
    checker.visit(tree)
    if toplevel and checker.module_starts_threads:
        lazy = LAZY_IMPORTS and _lazy_import(tree.body)
        if lazy:
            raise checker.error("'lazy import' cannot stand in input that starts threads at top "
                                "level, which runs in a prejoin scope (a 'try' block); import it "
                                "in an input of its own", lazy)
        tree.body = _prejoin_scope(tree.body, tree.body[0] if tree.body else tree, opener)
    return tree


class _YieldLines:
    """Which lines may say 'yield': a node on none of them holds no ``yield`` expression."""

    def __init__(self, lines: list[str]):
        self._lines = lines
        self._yield_lines = None

    def may_yield(self, node: ast.AST) -> bool:
        """False if no line of ``node`` holds the word 'yield' (keywords are never
        spelled otherwise), so that it holds no ``yield`` expression."""
        if self._yield_lines is None:
            self._yield_lines = [n for n, line in enumerate(self._lines, 1) if "yield" in line]
        if not self._yield_lines:
            return False
        first, last = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if first is None or last is None:
            return True
        i = bisect.bisect_left(self._yield_lines, first)
        return i < len(self._yield_lines) and self._yield_lines[i] <= last


class _Checker:
    """Walks the tree keeping the kind of the innermost scope.

    Like an ``ast.NodeTransformer`` whose ``visit`` skips subtrees that span no edited line.
    """

    def __init__(self, filename: str, lines: list[str], toplevel: bool, columns: ColumnMap):
        self.filename = filename
        self.yield_lines = _YieldLines(lines)
        self.columns = columns
        self.edited = columns.edits  # line number -> the token layer's edits
        self.lines = lines
        self.scopes = [_FUNCTION if toplevel else _MODULE]
        self.generator = [False]
        self.starts_threads = [False]
        self.markers = [0]
        self.forbidden_place = None  # where no non-atomic call may stand (an annotation, ...)
        self.module_starts_threads = False
        self.handlers = {}

    def enter(self, kind: str, generator: bool) -> None:
        self.scopes.append(kind)
        self.generator.append(generator)
        self.starts_threads.append(False)
        self.markers.append(0)

    def leave(self) -> int:
        """Close the innermost scope; return how many markers it holds."""
        self.scopes.pop()
        self.generator.pop()
        self.starts_threads.pop()
        return self.markers.pop()

    def visit(self, node):
        cls = type(node)
        try:
            handler, decorated = self.handlers[cls]
        except KeyError:
            handler, decorated = self.handlers[cls] = (
                getattr(type(self), "visit_" + cls.__name__, None), node_info(cls)[1])
        lineno = getattr(node, "lineno", None)
        if lineno is not None:
            end = node.end_lineno
            if end is not None:  # else it may span anything
                if lineno == end and not decorated:
                    if lineno not in self.edited:
                        return node  # ordinary code: nothing to check or transform in there
                elif not self.columns.spans_edited(node, lineno, end):
                    return node
            if lineno in self.edited or end in self.edited:
                self.columns.restore_node(node)
        if handler is None:
            return self.generic_visit(node)
        return handler(self, node)

    def generic_visit(self, node):
        AST = ast.AST
        for name in node_info(type(node))[0]:
            value = getattr(node, name, None)
            if type(value) is list:
                for i, item in enumerate(value):
                    if isinstance(item, AST):
                        new = self.visit(item)
                        if new is not item:
                            value[i] = new
            elif isinstance(value, AST):
                new = self.visit(value)
                if new is not value:
                    setattr(node, name, new)
        return node

    # -- errors -----------------------------------------------------------------

    def error(self, message: str, node: ast.AST) -> SyntaxError:
        """A SyntaxError at ``node``; at the ``@`` of a non-atomic call (docs/spec.md §1.1), with the
        rest of the call highlighted."""
        lineno = node.lineno
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        col = char_col(line, node.col_offset)
        at = self.at_sign(node) if is_marker(node) else None
        if at is not None:
            lineno, col = at
            line = self.lines[lineno - 1]
        end = char_col(line, node.end_col_offset) if node.end_lineno == lineno else None
        return SyntaxError(message, (self.filename, lineno, col + 1, line,
                                     lineno, (end if end is not None else col + 1) + 1))

    def at_sign(self, marker: ast.Attribute) -> tuple[int, int] | None:
        """Where the ``@`` of a non-atomic call stands: (line, character column), or None.

        The token layer removed it from right after the primary, so it is the first thing
        after the primary's end that is not a closing bracket of a parenthesised primary,
        blank, a comment or a line continuation.
        """
        func = getattr(marker.value, "func", None)  # a tool may have replaced the call
        if func is None or func.end_lineno is None or not func.end_col_offset:
            return None
        lineno, last = func.end_lineno, func.end_col_offset - 1  # the primary's last byte
        if lineno in self.edited and not self.columns.is_restored(func):
            last = self.columns.byte_to_original(lineno, last)  # not restored yet
        # (A restored end column may already lie past the removed '@': then 'last' is it.)
        if not 0 < lineno <= len(self.lines):
            return None
        line = self.lines[lineno - 1]
        col = char_col(line, last)
        if line[col:col + 1] == "@":
            return lineno, col
        col += 1
        while True:
            while col < len(line) and line[col] in " \t\f)\\":
                col += 1
            if col < len(line) and line[col] == "@":
                return lineno, col
            if (col < len(line) and line[col] not in "#\r\n") or lineno >= len(self.lines):
                return None
            lineno, col = lineno + 1, 0
            line = self.lines[lineno - 1]

    # -- scopes -----------------------------------------------------------------

    def visit_FunctionDef(self, node):
        self.restore_type_params(node)
        self.visit_outside(node.decorator_list)
        self.visit_arguments_outside(node.args)
        if node.returns is not None:
            self.visit_annotation(node.returns)
        self.enter(_FUNCTION, self.yield_lines.may_yield(node) and _contains_yield(node.body))
        node.body = self.visit_body(node.body)
        starts_threads = self.starts_threads[-1]
        self.leave()
        if starts_threads:
            node.body = _prejoin_scope(node.body, node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self.visit_arguments_outside(node.args)
        self.enter(_LAMBDA, self.yield_lines.may_yield(node) and _contains_yield([node.body]))
        node.body = self.visit(node.body)
        self.leave()
        return node

    def visit_ClassDef(self, node):
        self.restore_type_params(node)
        self.visit_outside(node.decorator_list)
        if getattr(node, "type_params", None):  # 3.12+: evaluated in the type parameters' scope
            self.visit_forbidden(node.bases, "the bases of a generic class")
            self.visit_forbidden(node.keywords, "the bases of a generic class")
        else:
            self.visit_outside(node.bases)
            self.visit_outside(node.keywords)
        self.enter(_CLASS, False)
        node.body = self.visit_body(node.body)
        self.leave()
        return node

    def visit_GeneratorExp(self, node):
        return self.comprehension_scope(node, _GENEXP)

    def visit_ListComp(self, node):
        return self.comprehension_scope(node, self.scopes[-1])

    visit_SetComp = visit_DictComp = visit_ListComp

    def comprehension_scope(self, node, kind):
        # The first iterable is evaluated in the enclosing scope, the rest in the
        # comprehension's own.  On 3.12+ list, set and dict comprehensions are inlined
        # (PEP 709); on 3.11 each is a function of its own, and when its own part makes
        # non-atomic calls it is a coroutine that the enclosing scope must await.
        first = node.generators[0]
        first.iter = self.visit(first.iter)
        self.enter(kind, self.generator[-1])
        first.target = self.visit(first.target)
        first.ifs = [self.visit(x) for x in first.ifs]
        node.generators[1:] = [self.visit(g) for g in node.generators[1:]]
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                setattr(node, part, self.visit(getattr(node, part)))
        markers = self.leave()
        if not markers:
            return node
        if kind != _GENEXP and COMPREHENSIONS_ARE_FUNCTIONS and not _awaited_by_python(node):
            node = ast.copy_location(ast.Attribute(node, AWAIT_MARKER, ast.Load()), node)
            self.markers[-1] += 1
        else:
            self.markers[-1] += markers
        return node

    # -- helpers for parts evaluated outside the new scope ----------------------------

    def visit_outside(self, nodes):
        for i, n in enumerate(nodes):
            nodes[i] = self.visit(n)

    def visit_arguments_outside(self, args: ast.arguments):
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [self.visit(d) if d is not None else None for d in args.kw_defaults]
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                self.columns.restore_subtree(arg)  # the parameter itself is not visited
                if arg.annotation is not None:
                    self.visit_annotation(arg.annotation)

    def restore_type_params(self, node):
        """Type parameters (3.12+) are evaluated in a scope of their own, where CPython allows
        no ``await``: their bounds and defaults are visited to reject a non-atomic call there."""
        for param in getattr(node, "type_params", None) or ():
            self.columns.restore_node(param)
            for part, place in (("bound", "a type parameter's bound"),
                                ("default_value", "a type parameter's default")):
                value = getattr(param, part, None)
                if value is not None:
                    self.visit_forbidden([value], place)

    def visit_TypeAlias(self, node):  # 3.12+: the value is evaluated lazily, in its own scope
        self.restore_type_params(node)
        self.columns.restore_subtree(node.name)
        self.visit_forbidden([node.value], "a type alias")
        return node

    def visit_annotation(self, node):
        self.visit_forbidden([node], "an annotation")

    def visit_forbidden(self, nodes, place):
        """Visit `nodes`, where a non-atomic call may not stand (`place` says what they are)."""
        saved, self.forbidden_place = self.forbidden_place, place
        self.visit_outside(nodes)
        self.forbidden_place = saved

    def visit_AnnAssign(self, node):
        self.visit_annotation(node.annotation)
        node.target = self.visit(node.target)
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_body(self, body):
        new = []
        for stmt in body:
            result = self.visit(stmt)
            if isinstance(result, list):
                new.extend(result)
            elif result is not None:
                new.append(result)
        return new

    # -- the con syntax itself -----------------------------------------------------

    def visit_Attribute(self, node):
        if node.attr != AWAIT_MARKER:
            return self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            raise self.error("cannot assign to or delete a non-atomic call", node)
        self.check_place(node, "a non-atomic call")
        self.generic_visit(node)
        self.markers[-1] += 1
        return node

    def check_place(self, node, what: str) -> None:
        if self.forbidden_place is not None:
            raise self.error(f"{what} cannot stand in {self.forbidden_place}", node)
        scope = self.scopes[-1]
        if scope in _WHERE_REMEDY:
            raise self.error(f"{what} is not allowed {_WHERE_REMEDY[scope]}", node)
        if self.generator[-1]:
            raise self.error(f"{what} is not allowed in a generator function (it contains "
                             "'yield'); make it a function that returns a list, or "
                             "use a con.Queue between threads", node)

    def visit_Expr(self, node):
        value = node.value
        if (isinstance(value, ast.BinOp) and isinstance(value.op, ast.MatMult)
                and isinstance(value.left, ast.Name) and value.left.id == SIBLING_MARKER):
            return self.sibling_statement(node, value)
        return self.generic_visit(node)

    def sibling_statement(self, node, value):
        self.columns.restore_subtree(value)  # its location goes to the nodes made here
        call = value.right
        where = ast.Name(SIBLING_MARKER)
        ast.copy_location(where, value)
        if not isinstance(call, ast.Call):
            raise self.error("'sibling' takes a non-atomic call: write 'sibling f@(args)'", value)
        self.check_place(where, "'sibling'")
        if self.scopes[-1] == _LAMBDA:
            raise self.error("'sibling' is a statement and cannot stand in a lambda", value)
        call = self.generic_visit(call)
        self.starts_threads[-1] = True
        if len(self.scopes) == 1:
            self.module_starts_threads = True
        start = ast.Attribute(value=ast.Name(SCOPE_NAME, ast.Load()), attr="start", ctx=ast.Load())
        spawn = ast.Call(func=start, args=[call.func, *call.args], keywords=call.keywords)
        ast.copy_location(start, value)
        ast.copy_location(start.value, value)
        ast.copy_location(spawn, value)
        node.value = spawn
        return node

    def visit_Interpolation(self, node):
        """A template string's field (3.14+) keeps its expression's text, which
        ``Interpolation.expression`` gives at run time: the text written, not the rewritten one."""
        columns = self.columns
        brace = char_col(self.lines[node.lineno - 1], node.col_offset)  # restored: the original '{'
        start = columns.char_to_rewritten(node.lineno, brace + 1)
        node.str = columns.original_text(node.lineno, start, node.str)
        return self.generic_visit(node)

    def visit_Name(self, node):
        if node.id == SIBLING_MARKER:
            raise self.error("'sibling' is a statement of its own: write 'sibling f@(args)' "
                             "on a line (or after ';' or ':') of its own", node)
        return node


def _awaited_by_python(comprehension) -> bool:
    """Whether CPython 3.11 itself makes this comprehension a coroutine and awaits it."""
    if any(gen.is_async for gen in comprehension.generators):
        return True
    parts = [comprehension.generators[0].target, *comprehension.generators[0].ifs,
             *comprehension.generators[1:]]
    parts += [getattr(comprehension, name) for name in ("elt", "key", "value") if hasattr(comprehension, name)]
    return any(isinstance(n, ast.Await) for part in parts for n in ast.walk(part))


def _contains_yield(body) -> bool:
    """Whether the scope whose statements are ``body`` is a generator."""
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            # Nested scopes: only their default values and decorators belong to us.
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
            if not isinstance(node, ast.ClassDef):
                stack.extend(node.args.defaults)
                stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _lazy_import(body: list[ast.AST]) -> ast.stmt | None:
    """The first ``lazy import`` (3.15+) of the module-level statements ``body``, or None."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node.is_lazy:
            return node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                found = _lazy_import(getattr(node, name, ()))
                if found:
                    return found
    return None


def _prejoin_scope(body: list[ast.stmt], where: ast.AST, opener: str = "prejoin") -> list[ast.stmt]:
    """Wrap ``body`` in the prejoin scope described in the module docstring.

    The generated nodes have lines but no columns (a traceback shows the line, no carets):
    ``where``'s line (the ``def``), except the wait for the threads at the function's end,
    which stands at the first line of the body's last statement.  That statement, not one
    nested in it, so that the line shown was run whenever the body ran to its end (an
    ``if``'s header, not a branch that may have been skipped).  A failure that a thread
    passes to the creator is raised at that wait, unless the creator was interrupted in a
    non-atomic call: then ``Scope.failed`` recorded where, and ``Scope.rethrown`` makes the
    traceback say so (see ``conhook._runtime.prejoin``).
    """
    docstring = []
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        docstring, body = body[:1], body[1:]
    end = body[-1].lineno if body else where.lineno  # the first line of the last statement

    def at(node, line=where.lineno):
        """Give `node` and everything in it (all made here) `line`, and no columns."""
        for each in ast.walk(node):
            if "lineno" in each._attributes:
                each.lineno = each.end_lineno = line
                each.col_offset = each.end_col_offset = -1
        return node

    def name(id_, ctx=ast.Load):
        return ast.Name(id_, ctx())

    def method(obj, attr, *args):
        return ast.Call(ast.Attribute(name(obj), attr, ast.Load()), list(args), [])

    def awaited(expr):
        return ast.Attribute(expr, AWAIT_MARKER, ast.Load())

    setup = at(ast.Assign([name(SCOPE_NAME, ast.Store)], method(RUNTIME_NAME, opener)))
    reraise = ast.If(awaited(method(SCOPE_NAME, "failed", name(EXC_NAME))), [ast.Raise()], [])
    handler = at(ast.ExceptHandler(type=name("BaseException"), name=EXC_NAME, body=[reraise]))
    rethrown = ast.ExceptHandler(type=name("BaseException"), name=EXC_NAME, body=[
        ast.Expr(method(SCOPE_NAME, "rethrown", name(EXC_NAME))), ast.Raise()])
    join = at(ast.Try(body=[ast.Expr(awaited(method(SCOPE_NAME, "join")))], handlers=[rethrown],
                      orelse=[], finalbody=[]), end)
    wrapped = ast.Try(body=body or [at(ast.Pass())], handlers=[handler], orelse=[], finalbody=[join])
    wrapped.lineno = wrapped.end_lineno = where.lineno  # (its own location only: the body keeps its own)
    wrapped.col_offset = wrapped.end_col_offset = -1
    return docstring + [setup, wrapped]

