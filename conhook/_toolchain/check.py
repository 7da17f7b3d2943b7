"""``python -m conhook check PATHS...``: the exact checker for a missing or misplaced ``@``.

Every switch point is syntax, so which functions are non-atomic is known, not guessed: a
function is non-atomic when the compiler makes it a coroutine function, that is when its own
body holds a non-atomic call or a ``sibling`` statement (``nonatomic``), or it is an ``async
def``.  The file is read by the compiler's own front end (``pipeline.parse_con`` and the AST
step), so the checker sees what the compiler sees, at the user's lines and columns.  Names are
resolved within the module (its functions, nested functions, ``self.method`` of its classes),
through imports of con modules found on the path (parsed, never run: ``Project``), and through
the ``con`` API's table (``con_api``).  A name it cannot resolve is left alone: every report is
a certainty, not a guess.  The codes (docs/checker.md):

    CON001  the file does not compile (the compiler's SyntaxError)
    CON101  a non-atomic function called without @: its call object never runs
    CON102  @() applied to something known not to be non-atomic
    CON103  f @ (x) with spaces, where f is non-atomic: matrix multiplication, not a call
    CON201  a blocking call in a non-atomic function: it freezes every thread
    CON301  a 'with timeout(...)' block with no switch point inside: it can never fire

A directory is searched for con files (those that opt in, as the import hook has it); a file
named on the command line is checked as con code, as the runner would run it.  A report is
silenced by ``# noqa`` or ``# noqa: CON101,...`` on its line, as flake8 has it.  Exit status:
0 clean, 1 reports, 2 a path that cannot be read.
"""
from __future__ import annotations

import ast
import builtins
import importlib.machinery
import os
import re
import sys
from dataclasses import dataclass

from .._compiler import ast_step, pipeline
from .._compiler.positions import char_col
from . import con_api

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
# Every function of these modules blocks (``requests.get``, ``requests.post``, ...).
BLOCKING_MODULES = {"requests": "use con.to_thread@(requests.{name}, ...)"}

# Decorators that leave a function what it is (non-atomic or not).
_TRANSPARENT_DECORATORS = {"staticmethod", "classmethod", "property", "functools.wraps",
                           "typing.override", "typing_extensions.override"}
_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    col: int  # 1-based, in characters
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
    project = Project(argv)
    diagnostics = []
    for path in con_files(argv):
        diagnostics.extend(project.check_file(path))
    for diagnostic in diagnostics:
        print(diagnostic)
    return 1 if diagnostics else 0


def con_files(paths: list[str]):
    """The files to check: each file named, and the con files under each directory named."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__",))
            for name in sorted(files):
                if name.endswith(".py") and opts_in(read_text(os.path.join(root, name)) or ""):
                    yield os.path.join(root, name)


def read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return pipeline.decode_source(file.read(), path)
    except (OSError, SyntaxError):
        return None


_OPT_IN_HINT = re.compile(r"^(?:lazy[ \t]+)?(?:from|import)[ \t]+.*\bcon(?:hook)?\b", re.M)


def opts_in(source: str) -> bool:
    """Whether a module opts in to con syntax: an import of con or conhook at top level, in
    column 0 (README, "Which modules are rewritten"), as the parsed tree shows it."""
    if not _OPT_IN_HINT.search(source):
        return False
    try:
        tree = ast.parse(source.replace("@(", " @ ("))  # (only its top-level imports are read)
    except (SyntaxError, ValueError):
        return bool(re.search(r"^(?:from[ \t]+con(?:hook)?[\s.]|import[ \t]+con(?:hook)?\b)", source, re.M))
    for node in tree.body:
        if node.col_offset != 0:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ("con", "conhook"):
                return True
        elif isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] in ("con", "conhook") for alias in node.names):
                return True
    return False


def nonatomic(function: ast.AST) -> bool:
    """Whether the compiler makes ``function`` (a node of a tree the AST step has transformed) a
    coroutine function: an ``async def``, or a function whose own code holds a non-atomic call
    (a ``sibling`` statement holds one too: its function waits for its threads at the end)."""
    if isinstance(function, ast.AsyncFunctionDef):
        return True
    return any(ast_step.is_marker(node) for node in own_nodes(function))


def own_nodes(scope: ast.AST):
    """The nodes of ``scope``'s own code: nested functions and classes are left out, but for
    what their enclosing scope evaluates (decorators, defaults, bases)."""
    if isinstance(scope, ast.Lambda):
        stack = [scope.body]
    else:
        stack = list(reversed(scope.body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _SCOPES):
            stack.extend(outer_parts(node))
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def outer_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a nested function or class that its enclosing scope evaluates."""
    parts = list(getattr(node, "decorator_list", ()))
    if isinstance(node, ast.ClassDef):
        return parts + node.bases + node.keywords
    args = node.args
    return parts + args.defaults + [d for d in args.kw_defaults if d is not None]


# -- what a name stands for ------------------------------------------------------------------

@dataclass(frozen=True)
class Function:
    """A ``def``, ``async def`` or lambda whose code the checker has read."""
    node: ast.AST
    module: Module

    @property
    def name(self) -> str:
        return getattr(self.node, "name", "<lambda>")

    @property
    def nonatomic(self) -> bool:
        return self.module.is_nonatomic(self.node)

    def may_return_awaitable(self) -> bool:
        """Whether a call of this plain function might return something ``@()`` can run: a
        generator (``types.coroutine``), or a ``return`` of anything but an obvious value."""
        if isinstance(self.node, ast.Lambda):
            return not _plain_value(self.node.body)
        for node in own_nodes(self.node):
            if isinstance(node, (ast.Yield, ast.YieldFrom)):
                return True
            if isinstance(node, ast.Return) and node.value is not None and not _plain_value(node.value):
                return True
        return False


@dataclass(frozen=True)
class Qualified:
    """Something named by its module: ``con.sleep``, ``time.sleep``, ``builtins.print``."""
    name: str


@dataclass(frozen=True)
class ConClass:
    """A class of the con API (``con.Queue``), or ``instance``: an object of it."""
    name: str
    instance: bool


@dataclass(frozen=True)
class ModuleRef:
    name: str


@dataclass(frozen=True)
class ClassRef:
    node: ast.ClassDef
    module: Module


def _plain_value(node: ast.AST) -> bool:
    """Whether expression ``node`` is evidently not awaitable."""
    if isinstance(node, (ast.Constant, ast.JoinedStr, ast.List, ast.Tuple, ast.Dict, ast.Set,
                         ast.ListComp, ast.SetComp, ast.DictComp, ast.Compare, ast.BinOp, ast.UnaryOp)):
        return True
    if isinstance(node, ast.BoolOp):
        return all(_plain_value(value) for value in node.values)
    return False


class Scope:
    """The names one scope binds, each with what binds it (a def, a class, an import, an
    assignment, or something the checker cannot follow)."""

    def __init__(self, node: ast.AST, parent: Scope | None):
        self.node = node
        self.parent = parent
        self.bindings: dict[str, list] = {}
        self.declared: set[str] = set()  # global and nonlocal names
        self.assigned: set[int] = set()  # the Name nodes bound by an "assign" entry
        if isinstance(node, ast.Lambda):
            self.bind_arguments(node.args)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.bind_arguments(node.args)
        for child in own_nodes(node):
            self.bind(child)

    def add(self, name: str, what) -> None:
        self.bindings.setdefault(name, []).append(what)

    def bind_arguments(self, args: ast.arguments) -> None:
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                self.add(arg.arg, ("argument", arg))

    def bind(self, node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.add(node.name, ("def", node))
        elif isinstance(node, ast.ClassDef):
            self.add(node.name, ("class", node))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.add(alias.asname, ("module", alias.name))
                else:
                    top = alias.name.partition(".")[0]
                    self.add(top, ("module", top))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    self.add(alias.asname or alias.name, ("from", node.level, node.module, alias.name))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self.add(node.targets[0].id, ("assign", node.value))
            self.assigned.add(id(node.targets[0]))  # (own_nodes gives it next: not bound twice)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            if id(node) not in self.assigned:
                self.add(node.id, ("other", node))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.declared.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.add(node.name, ("other", node))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self.add(node.name, ("other", node))
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self.add(node.rest, ("other", node))

    def sole(self, name: str):
        """The one binding of ``name`` here, or None (not bound, bound twice, or declared
        global or nonlocal); ``"unknown"`` where it is bound but not in a way to follow."""
        if name in self.declared:
            return "unknown"
        entries = self.bindings.get(name)
        if not entries:
            return None
        return entries[0] if len(entries) == 1 else "unknown"


class Module:
    """One con file, read by the compiler's front end: its scopes and what its names are."""

    def __init__(self, path: str, name: str | None, tree: ast.Module, lines: list[str], project: Project):
        self.path = path
        self.name = name  # its dotted name where known (for relative imports)
        self.tree = tree
        self.lines = lines
        self.project = project
        self.scopes: dict[int, Scope] = {}  # id of each function, lambda and class -> its scope
        self._nonatomic: dict[int, bool] = {}
        self.module_scope = self.build_scope(tree, None)

    def build_scope(self, node: ast.AST, parent: Scope | None) -> Scope:
        scope = self.scopes[id(node)] = Scope(node, parent)
        for child in own_nodes(node):
            if isinstance(child, _SCOPES):
                self.build_scope(child, scope)
        return scope

    def is_nonatomic(self, node: ast.AST) -> bool:
        found = self._nonatomic.get(id(node))
        if found is None:
            found = self._nonatomic[id(node)] = nonatomic(node)
        return found

    def top_level(self, name: str, seen: frozenset = frozenset()):
        """What top-level name ``name`` of this module is, or None."""
        return self.resolve_binding(self.module_scope.sole(name), self.module_scope, seen)

    def resolve_binding(self, entry, scope: Scope, seen: frozenset = frozenset()):
        if entry is None or entry == "unknown":
            return None
        kind = entry[0]
        if kind == "def":
            if all(self.transparent(d, scope) for d in entry[1].decorator_list):
                return Function(entry[1], self)
            return None
        if kind == "class":
            return ClassRef(entry[1], self)
        if kind == "module":
            return ModuleRef(entry[1])
        if kind == "from":
            _, level, module, name = entry
            base = self.absolute(level, module)
            return None if base is None else self.project.member(base, name, seen)
        if kind == "assign":
            return self.value_of(entry[1], scope, seen)
        if kind == "argument":
            annotation = entry[1].annotation
            found = self.resolve(annotation, scope, seen) if annotation is not None else None
            return ConClass(found.name, True) if isinstance(found, ConClass) and not found.instance else None
        return None

    def value_of(self, value: ast.AST, scope: Scope, seen: frozenset):
        """What an assigned value is, where it is a con object: ``Queue()``, ``tcpconnect@(...)``,
        ``listener.accept@()``."""
        if isinstance(value, ast.Lambda):
            return Function(value, self)
        awaited = ast_step.is_marker(value)
        call = value.value if awaited else value
        if not isinstance(call, ast.Call):
            return None
        found = self.resolve(call.func, scope, seen)
        if isinstance(found, ConClass) and not found.instance and not awaited:
            return ConClass(found.name, True)
        if isinstance(found, Qualified) and awaited and found.name.startswith("con."):
            returned = con_api.RETURNS.get(found.name.removeprefix("con."))
            if returned:
                return ConClass(returned, True)
        return None

    def transparent(self, decorator: ast.AST, scope: Scope) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        found = self.resolve(target, scope)
        return isinstance(found, Qualified) and found.name.removeprefix("builtins.") in _TRANSPARENT_DECORATORS

    def absolute(self, level: int, module: str | None) -> str | None:
        if not level:
            return module
        if self.name is None:
            return None
        parts = self.name.split(".")
        if not self.path.endswith("__init__.py"):
            parts = parts[:-1]
        if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
            return None
        parts = parts[:len(parts) - (level - 1)]
        return ".".join(parts + ([module] if module else []))

    def lookup(self, name: str, scope: Scope, seen: frozenset = frozenset()):
        """What ``name`` stands for where ``scope`` is innermost, or None."""
        first = scope
        while scope is not None:
            if scope is first or not isinstance(scope.node, ast.ClassDef):
                entry = scope.sole(name)
                if entry is not None:
                    return self.resolve_binding(entry, scope, seen)
            scope = scope.parent
        if hasattr(builtins, name):
            return Qualified("builtins." + name)
        return None

    def resolve(self, node: ast.AST, scope: Scope, seen: frozenset = frozenset()):
        """What expression ``node`` stands for, or None."""
        if isinstance(node, ast.Name):
            if node.id in ("self", "cls") and isinstance(scope.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                own = self.method_class(scope, node.id)
                if own is not None:
                    return own
            return self.lookup(node.id, scope, seen)
        if not isinstance(node, ast.Attribute):
            return None
        base = self.resolve(node.value, scope, seen)
        if isinstance(base, ModuleRef):
            return self.project.member(base.name, node.attr, seen)
        if isinstance(base, ConClass):
            methods = con_api.CLASSES.get(base.name)
            if methods is not None and base.instance and not node.attr.startswith("_"):
                return Qualified(f"con.{base.name}.{node.attr}")
            return None
        if isinstance(base, ClassRef):
            entry = base.module.scopes[id(base.node)].sole(node.attr)
            if entry is not None and entry != "unknown" and entry[0] == "def":
                return base.module.resolve_binding(entry, scope)
        return None

    def method_class(self, scope: Scope, name: str):
        """The class whose method ``scope`` is, if ``name`` is its first parameter."""
        function = scope.node
        params = [*function.args.posonlyargs, *function.args.args]
        if not params or params[0].arg != name or scope.sole(name) != ("argument", params[0]):
            return None
        parent = scope.parent
        if parent is None or not isinstance(parent.node, ast.ClassDef):
            return None
        return ClassRef(parent.node, self)


class Project:
    """The con modules the checked files import, found on ``sys.path`` and beside the files
    (as the runner puts a script's directory first), read once and never run."""

    def __init__(self, paths: list[str] = ()):
        roots = set()
        for path in paths:  # each path's directory, and the directory its packages stand in
            directory = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path) or ".")
            roots.add(directory)
            while os.path.exists(os.path.join(directory, "__init__.py")):
                directory = os.path.dirname(directory)
            roots.add(directory)
        self.search = [*sorted(roots), *sys.path]
        self.modules: dict[str, Module | None] = {}

    def member(self, module: str, name: str, seen: frozenset = frozenset()):
        """What ``module.name`` is (``name`` may be a submodule), or None."""
        qualified = f"{module}.{name}"
        if qualified in seen:
            return None
        seen = seen | {qualified}
        if module == "con":
            if name in con_api.CLASSES:
                return ConClass(name, False)
            return Qualified(qualified)
        if qualified in BLOCKING or module in BLOCKING_MODULES or module in ("builtins", "functools", "typing"):
            return Qualified(qualified)
        loaded = self.load(module)
        if loaded is not None:
            found = loaded.top_level(name, seen)
            if found is not None:
                return found
        if self.find(qualified) is not None or module in sys.builtin_module_names:
            return ModuleRef(qualified)
        return None

    def find(self, name: str) -> str | None:
        """The source file of module ``name`` on the search path, without running anything."""
        path = self.search
        spec = None
        for i, part in enumerate(name.split(".")):
            try:
                spec = importlib.machinery.PathFinder.find_spec(".".join(name.split(".")[:i + 1]), path)
            except (ImportError, ValueError):
                return None
            if spec is None:
                return None
            path = spec.submodule_search_locations
            if path is None and i + 1 < len(name.split(".")):
                return None
        origin = getattr(spec, "origin", None)
        return origin if origin and origin.endswith(".py") else None

    def load(self, name: str) -> Module | None:
        if name not in self.modules:
            self.modules[name] = None  # (an import circle finds nothing)
            path = self.find(name)
            source = read_text(path) if path else None
            if source is not None and opts_in(source):
                try:
                    self.modules[name] = self.read(path, name, source)
                except SyntaxError:
                    pass
        return self.modules[name]

    def read(self, path: str, name: str | None, source: str, toplevel: bool = False) -> Module:
        tree, rewrite = pipeline.parse_con(source, path)
        tree = ast_step.transform(tree, rewrite, path, toplevel=toplevel)
        lines = source.splitlines(keepends=True)
        return Module(path, name, tree, lines, self)

    def module_name(self, path: str) -> str:
        """The dotted name of the module at ``path``, from the packages around it."""
        path = os.path.abspath(path)
        directory, file = os.path.split(path)
        parts = [] if file == "__init__.py" else [file.removesuffix(".py")]
        while os.path.exists(os.path.join(directory, "__init__.py")):
            directory, package = os.path.split(directory)
            parts.insert(0, package)
        return ".".join(parts)

    def check_file(self, path: str) -> list[Diagnostic]:
        source = read_text(path)
        if source is None:
            try:
                with open(path, "rb") as file:
                    pipeline.decode_source(file.read(), path)
            except SyntaxError as error:
                return [syntax_diagnostic(path, error)]
            except OSError as error:
                return [Diagnostic(path, 1, 1, "CON001", f"cannot read the file: {error.strerror}")]
        return self.check_source(source, path, name=self.module_name(path))

    def check_source(self, source: str, path: str, *, name: str | None = None,
                     toplevel: bool = False) -> list[Diagnostic]:
        """The diagnostics of con source ``source`` (``toplevel``: module-level non-atomic calls are
        allowed, as in a ``%%con`` cell or the REPL)."""
        try:
            module = self.read(path, name, source, toplevel)
        except SyntaxError as error:
            return [syntax_diagnostic(path, error)]
        found = _Walker(module).run()
        return sorted(d for d in found if not suppressed(d, module.lines))


def syntax_diagnostic(path: str, error: SyntaxError) -> Diagnostic:
    return Diagnostic(path, error.lineno or 1, error.offset or 1, "CON001", error.msg)


def suppressed(diagnostic: Diagnostic, lines: list[str]) -> bool:
    """Whether the diagnostic's line says ``# noqa`` for all codes or for its own."""
    line = lines[diagnostic.line - 1] if diagnostic.line <= len(lines) else ""
    match = _NOQA.search(line)
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or any(diagnostic.code.startswith(code.upper())
                                for code in re.split(r"[,\s]+", codes) if code)


# -- the checks --------------------------------------------------------------------------------

# Where a call's value is dropped or kept as it is: a call object there never runs.
_KEPT = (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.withitem, ast.If, ast.While, ast.IfExp)


class _Walker:
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
        parents: dict[int, ast.AST] = {}
        for node in own_nodes(scope_node):
            for child in ast.iter_child_nodes(node):
                parents[id(child)] = node
            if isinstance(node, _SCOPES):
                self.walk(node, self.module.scopes[id(node)])
                continue
            if getattr(node, "col_offset", 0) < 0:  # made by the compiler (the prejoin scope)
                continue
            if isinstance(node, ast.Call):
                self.check_call(node, scope, parents.get(id(node)), in_nonatomic)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                self.check_matmul(node, scope)
            elif isinstance(node, ast.With):
                self.check_timeout(node, scope)

    def check_call(self, call: ast.Call, scope: Scope, parent: ast.AST | None, in_nonatomic: bool) -> None:
        found = self.module.resolve(call.func, scope)
        awaited = parent is not None and ast_step.is_marker(parent)
        if found is None:
            return
        if awaited:
            self.check_awaited(call, found)
            return
        if is_nonatomic(found) and isinstance(parent, _KEPT) and _kept_here(parent, call):
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

    def check_awaited(self, call: ast.Call, found) -> None:
        if is_nonatomic(found):
            return
        name = self.text(call.func)
        remedy = blocking(found.name) if isinstance(found, Qualified) else None
        if remedy:
            why = f"'{name}' is a blocking function, not a non-atomic one; {remedy}"
        elif isinstance(found, Qualified) and found.name.startswith("builtins.") and found.name != "builtins.anext":
            why = f"'{name}' is a builtin, not a non-atomic function; call it without @: '{name}(...)'"
        elif isinstance(found, ConClass) and not found.instance and found.name in ("timeout", "signals"):
            why = (f"'{name}' is a context manager, not a non-atomic function; "
                   f"write 'with {name}(...):'")
        elif isinstance(found, ConClass) and not found.instance:
            why = f"'{name}' is a class, not a non-atomic function; call it without @: '{name}(...)'"
        elif isinstance(found, Qualified) and found.name.startswith("con.") and _con_atomic(found.name):
            why = f"'{name}' is not non-atomic; call it without @: '{name}(...)'"
        elif isinstance(found, Function) and not found.may_return_awaitable():
            why = (f"'{name}' is a plain function (no switch point in its body) and returns no "
                   f"call object; call it without @: '{name}(...)'")
        else:
            return
        self.report(call.func, "CON102", why)

    def check_matmul(self, node: ast.BinOp, scope: Scope) -> None:
        found = self.module.resolve(node.left, scope)
        if found is None or not is_nonatomic(found):
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
            if found != ConClass("timeout", False):
                continue
            if not any(_switch_point(n) for statement in node.body for n in own_nodes_of(statement)):
                self.report(call, "CON301",
                            f"'{self.text(call)}' can never fire: its block has no switch point "
                            "(no non-atomic call), and a timeout interrupts only at one")


def own_nodes_of(statement: ast.AST):
    yield statement
    if isinstance(statement, _SCOPES):
        yield from outer_parts(statement)
        return
    for child in ast.iter_child_nodes(statement):
        yield from own_nodes_of(child)


def _switch_point(node: ast.AST) -> bool:
    return ast_step.is_marker(node) or isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith))


def _kept_here(parent: ast.AST, call: ast.Call) -> bool:
    """Whether ``call`` is the value ``parent`` keeps or drops (not some other part of it)."""
    if isinstance(parent, ast.withitem):
        return parent.context_expr is call
    if isinstance(parent, (ast.If, ast.While, ast.IfExp)):
        return parent.test is call
    return parent.value is call


def is_nonatomic(found) -> bool:
    if isinstance(found, Function):
        return found.nonatomic
    if isinstance(found, Qualified) and found.name.startswith("con."):
        parts = found.name.split(".")
        if len(parts) == 2:
            return parts[1] in con_api.NONATOMIC_FUNCTIONS
        return parts[2] in con_api.CLASSES.get(parts[1], ())
    return False


def _con_atomic(name: str) -> bool:
    parts = name.split(".")
    if len(parts) == 2:
        return parts[1] in con_api.ATOMIC_FUNCTIONS
    return parts[1] in con_api.CLASSES and parts[2] not in con_api.CLASSES[parts[1]]


def blocking(name: str) -> str | None:
    if name in BLOCKING:
        return BLOCKING[name]
    module, _, function = name.rpartition(".")
    template = BLOCKING_MODULES.get(module)
    return template.format(name=function) if template else None

