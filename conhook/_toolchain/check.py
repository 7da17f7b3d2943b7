"""``python -m conhook check PATHS...``: the exact checker for a missing or misplaced ``@``.

Every switch point is syntax, so which functions are non-atomic is known, not guessed
(``resolve``: the compiler's rule, applied to the module, to the con modules it imports, read
and never run, and to the ``con`` API's table).  The checks, each a certainty (a name the
checker cannot follow is left alone), with their codes (docs/checker.md):

    CON001  the file does not compile (the compiler's SyntaxError)
    CON101  a non-atomic function called without @: its call object never runs
    CON102  @() applied to something known not to be non-atomic
    CON103  f @ (x) with spaces, where f is non-atomic: matrix multiplication, not a call
    CON201  a blocking call in a non-atomic function: it freezes every thread
    CON301  a 'with timeout(...)' block with no switch point inside: it can never fire

Reports are ``file:line:col: CODE message`` (line and column from 1, the column in characters).
A directory is searched for con files (those that opt in, as the import hook has it); a file
named on the command line is checked as con code, as the runner would run it, if it opts in
or holds con syntax (a file of plain Python is left alone, so that a pre-commit hook can name
every changed file).  A report is silenced by ``# noqa`` or ``# noqa: CON101,...`` on its
line, as flake8 has it.  Exit status: 0 clean, 1 reports, 2 a path that does not exist.
"""
from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import dataclass

from .._compiler import ast_step, pipeline
from .._compiler.positions import char_col
from .resolve import (SCOPES, ConClass, Function, Module, Project, Qualified, Scope,
                      is_con_atomic, is_nonatomic, opts_in, outer_parts, own_nodes, read_text)

CODES = {
    "CON001": "the file does not compile",
    "CON101": "a non-atomic function called without @",
    "CON102": "@() applied to something that is not non-atomic",
    "CON103": "a spaced @ after a non-atomic function (matrix multiplication, not a call)",
    "CON201": "a blocking call in a non-atomic function",
    "CON301": "a 'with timeout(...)' block with no switch point",
}

# Calls that block the OS thread, with what to use in con code instead.
BLOCKING = {
    "time.sleep": "use con.sleep@(seconds)",
    "subprocess.run": "use con.run_process@(argv)",
    "subprocess.call": "use con.run_process@(argv, check=False)",
    "subprocess.check_call": "use con.run_process@(argv)",
    "subprocess.check_output": "use con.run_process@(argv, capture_output=True)",
    "subprocess.getoutput": "use con.run_process@(argv, capture_output=True)",
    "subprocess.getstatusoutput": "use con.run_process@(argv, capture_output=True, check=False)",
    "os.system": "use con.run_process@(argv)",
    "os.popen": "use con.open_process@(argv)",
    "os.wait": "use con.open_process@(...) and its wait@()",
    "os.waitpid": "use con.open_process@(...) and its wait@()",
    "socket.create_connection": "use con.tcpconnect@(host, port)",
    "socket.getaddrinfo": "use con.tcpconnect@(host, port), which resolves names off-thread, "
                          "or con.to_thread@(socket.getaddrinfo, ...)",
    "socket.gethostbyname": "use con.to_thread@(socket.gethostbyname, host)",
    "socket.gethostbyname_ex": "use con.to_thread@(socket.gethostbyname_ex, host)",
    "socket.gethostbyaddr": "use con.to_thread@(socket.gethostbyaddr, address)",
    "urllib.request.urlopen": "use con.to_thread@(urllib.request.urlopen, ...)",
    "builtins.open": "use con.to_thread@(fn) with fn doing the file's I/O",
    "builtins.input": "use con.to_thread@(input, prompt)",
    "io.open": "use con.to_thread@(fn) with fn doing the file's I/O",
    "select.select": "wait on con's streams instead, or con.to_thread@(select.select, ...)",
}
BLOCKING.update({f"requests.{name}": f"use con.to_thread@(requests.{name}, ...)"
                 for name in ("request", "get", "options", "head", "post", "put", "patch", "delete")})

_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
# Where reading a name that holds a call object shows it is not passed on to be run.
_USELESS_TO_A_CALL_OBJECT = (ast.FormattedValue, ast.Compare, ast.BinOp, ast.UnaryOp, ast.Subscript,
                             ast.If, ast.While, ast.Expr)


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    col: int  # from 1, in characters
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        out = sys.stdout if argv else sys.stderr
        out.write("usage: python -m conhook check PATHS...\n\n"
                  + "".join(f"  {code}  {what}\n" for code, what in CODES.items()))
        return 0 if argv else 2
    missing = [path for path in argv if not os.path.exists(path)]
    for path in missing:
        sys.stderr.write(f"conhook check: {path}: no such file or directory\n")
    if missing:
        return 2
    checker = Checker(argv)
    found = False
    for path in con_files(argv):
        for diagnostic in checker.check_file(path):
            print(diagnostic)
            found = True
    return 1 if found else 0


def con_files(paths: list[str]):
    """The files to check: each file named, and the con files under each directory named."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py") and opts_in(read_text(os.path.join(root, name)) or ""):
                    yield os.path.join(root, name)


class Checker:
    """Checks files and sources; the modules they import are read once (``Project``)."""

    def __init__(self, paths: list[str] = ()):
        self.project = Project(paths)

    def check_file(self, path: str) -> list[Diagnostic]:
        try:
            with open(path, "rb") as file:
                source = pipeline.decode_source(file.read(), path)
        except SyntaxError as error:
            return [syntax_diagnostic(path, error)]
        except OSError as error:
            return [Diagnostic(path, 1, 1, "CON001", f"cannot read the file: {error.strerror}")]
        if not opts_in(source):
            try:
                if not pipeline.rewrite_tokens(source, path).changed:
                    return []  # plain Python: neither con syntax nor an import of con
            except SyntaxError:
                pass  # con syntax where it cannot stand: reported below
        return self.check_source(source, path, name=self.project.module_name(path))

    def check_source(self, source: str, path: str, *, name: str | None = None,
                     toplevel: bool = False) -> list[Diagnostic]:
        """The reports on con source ``source`` (``toplevel``: non-atomic calls may stand at
        module level, as in a ``%%con`` cell or at the REPL's prompt)."""
        try:
            module = self.project.read(path, name, source, toplevel)
        except SyntaxError as error:
            return [syntax_diagnostic(path, error)]
        found = _Walker(module).run()
        return sorted(d for d in found if not suppressed(d, module.lines))


def syntax_diagnostic(path: str, error: SyntaxError) -> Diagnostic:
    return Diagnostic(path, error.lineno or 1, error.offset or 1, "CON001", error.msg)


def suppressed(diagnostic: Diagnostic, lines: list[str]) -> bool:
    """Whether the report's line says ``# noqa`` for every code or for its own (a code
    silences the codes it starts, as in flake8: ``CON1`` silences CON101)."""
    line = lines[diagnostic.line - 1] if diagnostic.line <= len(lines) else ""
    match = _NOQA.search(line)
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or any(diagnostic.code.startswith(code.upper())
                                for code in re.split(r"[,\s]+", codes) if code)


# -- the checks --------------------------------------------------------------------------------

class _Walker:
    """The checks of one module, scope by scope."""

    def __init__(self, module: Module):
        self.module = module
        self.found: list[Diagnostic] = []

    def report(self, node: ast.AST, code: str, message: str, line: int | None = None, col: int | None = None):
        if line is None:
            line = node.lineno
            col = char_col(self.module.lines[line - 1], node.col_offset) + 1
        self.found.append(Diagnostic(self.module.path, line, col, code, message))

    def text(self, node: ast.AST) -> str:
        """What ``node`` reads in the user's text, on one line."""
        lines = self.module.lines
        if node.col_offset < 0 or node.end_lineno is None:
            return ast.unparse(node)
        first, last = node.lineno, node.end_lineno
        start = char_col(lines[first - 1], node.col_offset)
        end = char_col(lines[last - 1], node.end_col_offset)
        text = lines[first - 1][start:end] if first == last else "".join(
            [lines[first - 1][start:], *lines[first:last - 1], lines[last - 1][:end]])
        # (A call's function ends past its '@' in a restored tree: the '@' is no part of it.)
        return " ".join(text.split()).removesuffix("@").rstrip()

    def run(self) -> list[Diagnostic]:
        self.walk(self.module.tree, self.module.module_scope)
        return self.found

    def walk(self, scope_node: ast.AST, scope: Scope) -> None:
        in_nonatomic = not isinstance(scope_node, (ast.Module, ast.ClassDef)) and self.module.is_nonatomic(scope_node)
        self.nodes = nodes = list(own_nodes(scope_node))
        self.parents = {id(child): node for node in nodes for child in ast.iter_child_nodes(node)}
        nested = []
        for node in nodes:
            if isinstance(node, SCOPES):
                nested.append(node)
            elif getattr(node, "col_offset", 0) < 0:  # made by the compiler (the prejoin scope)
                continue
            elif isinstance(node, ast.Call):
                self.check_call(node, scope, self.parents.get(id(node)), in_nonatomic)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                self.check_matmul(node, scope)
            elif isinstance(node, ast.With):
                self.check_timeout(node, scope)
        for node in nested:
            self.walk(node, self.module.scopes[id(node)])

    def check_call(self, call: ast.Call, scope: Scope, parent: ast.AST | None, in_nonatomic: bool) -> None:
        found = self.module.resolve(call.func, scope)
        awaited = parent is not None and ast_step.is_marker(parent)
        if found is None:
            return
        if awaited:
            self.check_awaited(call, found)
            return
        if is_nonatomic(found) and self.lost(call, parent, scope):
            name = self.text(call.func)
            where = "with " if isinstance(parent, ast.withitem) else ""
            self.report(call.func, "CON101",
                        f"'{name}' is non-atomic: called without @ it makes a call object that never "
                        f"runs; write '{where}{name}@(...)'")
        if in_nonatomic and isinstance(found, Qualified):
            remedy = blocking(found.name)
            if remedy:
                name = self.text(call.func)
                self.report(call.func, "CON201",
                            f"'{name}' blocks every thread of the scheduler; {remedy}")

    def lost(self, call: ast.Call, parent: ast.AST | None, scope: Scope) -> bool:
        """Whether the call object that ``call`` makes can never run: it is dropped (a statement
        of its own), used as a context manager or as a condition, or stored in a name that
        nothing passes on (only read where a call object is useless: printed, compared, ...).
        Passed to a function, returned or put in a list, it may run later (``gather@``)."""
        if isinstance(parent, ast.Expr) or (isinstance(parent, ast.withitem) and parent.context_expr is call):
            return True
        if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and parent.test is call:
            return True
        if isinstance(parent, ast.AugAssign):
            return True  # (a call object cannot be added to anything)
        if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
            target = parent.targets[0]
        elif isinstance(parent, ast.AnnAssign):
            target = parent.target
        else:
            return False
        return isinstance(target, ast.Name) and not self.passed_on(target.id, scope)

    def passed_on(self, name: str, scope: Scope) -> bool:
        """Whether the value of local ``name`` may reach something that can run it."""
        for node in self.nodes:
            if isinstance(node, SCOPES):  # a closure reads it: who knows
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node)):
                    return True
            elif isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                parent = self.parents.get(id(node))
                if isinstance(parent, _USELESS_TO_A_CALL_OBJECT):
                    continue
                if isinstance(parent, ast.Call) and node is not parent.func:
                    function = self.module.resolve(parent.func, scope)
                    if isinstance(function, Qualified) and function.name.startswith("builtins."):
                        continue  # print(c), str(c): a builtin runs no call object
                return True
        return False

    def check_awaited(self, call: ast.Call, found) -> None:
        if is_nonatomic(found):
            return
        name = self.text(call.func)
        remedy = blocking(found.name) if isinstance(found, Qualified) else None
        if remedy:
            why = f"'{name}' is a blocking function, not a non-atomic one; {remedy}"
        elif isinstance(found, Qualified) and found.name.startswith("builtins.") and found.name != "builtins.anext":
            why = f"'{name}' is a builtin, not a non-atomic function; call it without @: '{name}(...)'"
        elif isinstance(found, ConClass) and found.name in ("timeout", "signals"):
            why = (f"'{name}' is a context manager, not a non-atomic function; "
                   f"write 'with {name}(...):'")
        elif isinstance(found, ConClass):
            why = f"'{name}' is a class, not a non-atomic function; call it without @: '{name}(...)'"
        elif is_con_atomic(found):
            why = f"'{name}' is not non-atomic; call it without @: '{name}(...)'"
        elif isinstance(found, Function) and not found.may_return_awaitable():
            why = (f"'{name}' is a plain function (no switch point in its body) and returns no "
                   f"call object; call it without @: '{name}(...)'")
        else:
            return
        self.report(call.func, "CON102", why)

    def check_matmul(self, node: ast.BinOp, scope: Scope) -> None:
        found = self.module.resolve(node.left, scope)
        if not is_nonatomic(found):
            return
        line, col = self.operator_position(node)
        name = self.text(node.left)
        self.report(node, "CON103", f"'{name} @ (...)' is matrix multiplication, not a non-atomic call "
                                    f"(a formatter may have spaced it); write '{name}@(...)'", line, col)

    def operator_position(self, node: ast.BinOp) -> tuple[int, int]:
        """Line and 1-based column of the ``@`` of a spaced matrix multiplication."""
        lines = self.module.lines
        line, col = node.left.end_lineno, char_col(lines[node.left.end_lineno - 1], node.left.end_col_offset)
        while line <= len(lines):
            text = lines[line - 1]
            at = text.find("@", col)
            comment = text.find("#", col)
            if at >= 0 and (comment < 0 or at < comment):
                return line, at + 1
            line, col = line + 1, 0
        return node.lineno, char_col(lines[node.lineno - 1], node.col_offset) + 1

    def check_timeout(self, node: ast.With, scope: Scope) -> None:
        for item in node.items:
            call = item.context_expr
            if not isinstance(call, ast.Call):
                continue
            found = self.module.resolve(call.func, scope)
            if found != ConClass("timeout"):
                continue
            if not any(_switch_point(n) for statement in node.body for n in own_nodes_of(statement)):
                self.report(call, "CON301",
                            f"'{self.text(call)}' can never fire: its block has no switch point "
                            "(no non-atomic call), and a timeout interrupts only at one")


def own_nodes_of(statement: ast.AST):
    yield statement
    if isinstance(statement, SCOPES):
        yield from outer_parts(statement)
        return
    for child in ast.iter_child_nodes(statement):
        yield from own_nodes_of(child)


def _switch_point(node: ast.AST) -> bool:
    return ast_step.is_marker(node) or isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith))


def blocking(name: str) -> str | None:
    """The remedy for blocking function ``name`` (``time.sleep``), or None."""
    return BLOCKING.get(name)

