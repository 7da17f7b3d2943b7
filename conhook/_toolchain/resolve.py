"""What the names of con code stand for, read from the files and never run: the checker's
knowledge (``conhook._toolchain.check``).

A function is non-atomic when the compiler makes it a coroutine function: its own body holds a
non-atomic call or a ``sibling`` statement (the AST step leaves a marker for each: ``nonatomic``),
or it is an ``async def``.  Files are read by the compiler's own front end (``pipeline.parse_con``
and ``ast_step.transform``), so the tree is the one the compiler compiles, at the user's lines and
columns.  A name is followed

* within a module: each scope's bindings (``Scope``), Python's rules for which scopes a name is
  looked up in, ``self.m``/``cls.m`` of the enclosing class;
* across modules: imports of con modules (those that opt in) found on the search path, as the
  runner would find them (``Project``), parsed, never executed;
* into the ``con`` API: its table (``con_api``), and the objects of its classes where a name is
  bound once to one (``q = con.Queue()``, ``s = tcpconnect@(...)``, ``s: con.Stream``).

A name bound in more than one way, under a decorator that may change what it is, or to
anything else is not followed: ``resolve`` gives None, and the checker says nothing about it.
"""
from __future__ import annotations

import ast
import builtins
import importlib.machinery
import io
import os
import re
import sys
from dataclasses import dataclass

from .._compiler import ast_step, pipeline
from . import con_api

# Decorators that leave a function what it is (non-atomic or not).
_TRANSPARENT_DECORATORS = {"staticmethod", "classmethod", "property", "functools.wraps",
                           "typing.override", "typing_extensions.override"}
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return pipeline.decode_source(file.read(), path)
    except (OSError, SyntaxError):
        return None


_OPT_IN_HINT = re.compile(r"^(?:lazy[ \t]+)?(?:from|import)[ \t]+.*\bcon(?:hook)?\b", re.M)
_OPT_IN_LINE = re.compile(r"^(?:lazy[ \t]+)?(?:from[ \t]+con(?:hook)?[ \t.]"
                          r"|import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*con(?:hook)?\b)", re.M)


def opts_in(source: str) -> bool:
    """Whether a module opts in to con syntax: an import statement naming con or conhook at top
    level, in column 0 (README, "Which modules are rewritten"), as the parsed tree shows it
    (the lines alone where the file does not compile)."""
    if not _OPT_IN_HINT.search(source):
        return False
    try:
        tree = ast.parse(source)  # (con syntax but sibling parses: f@(x) is a matrix product)
    except (SyntaxError, ValueError):
        try:
            tree = pipeline.parse_con(source)[0]
        except (SyntaxError, ValueError):
            return bool(_OPT_IN_LINE.search(source))
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
    coroutine function: an ``async def`` that does not ``yield`` (one that does is an async
    generator, iterated with ``async for``, not called with ``@``), or a function whose own code
    holds a non-atomic call (a ``sibling`` statement holds one too: its function waits for its
    threads at the end)."""
    if isinstance(function, ast.AsyncFunctionDef):
        return not any(isinstance(node, ast.Yield) for node in own_nodes(function))
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
        if isinstance(node, SCOPES):
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
    """A class of the con API (``con.Queue``)."""
    name: str


@dataclass(frozen=True)
class ConObject:
    """An object of one of the con API's ``classes`` (which one may be unknown)."""
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ConMethod:
    """Method ``name`` of a ``ConObject``."""
    classes: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class ModuleRef:
    name: str


@dataclass(frozen=True)
class ClassRef:
    """A class of con code the checker has read."""
    node: ast.ClassDef
    module: Module

    def method(self, name: str) -> Function | None:
        """Method ``name`` defined in the class body, unless some code of the class stores an
        attribute of that name (``self.name = ...`` would hide it on the instance)."""
        scope = self.module.scopes[id(self.node)]
        entry = scope.sole(name)
        if entry is None or entry == "unknown" or entry[0] != "def":
            return None
        if name in self.module.stored_attributes(self.node):
            return None
        return self.module.resolve_binding(entry, scope)


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
        self.globals: set[str] = set()
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
            if isinstance(node, ast.Global):
                self.globals.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.add(node.name, ("other", node))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self.add(node.name, ("other", node))
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self.add(node.rest, ("other", node))

    def sole(self, name: str):
        """The one binding of ``name`` here; None where this scope does not bind it;
        ``"unknown"`` where it binds it more than once, or declares it global or nonlocal."""
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
        self._stored: dict[int, set[str]] = {}
        self.module_scope = self.build_scope(tree, None)

    def build_scope(self, node: ast.AST, parent: Scope | None) -> Scope:
        scope = self.scopes[id(node)] = Scope(node, parent)
        for child in own_nodes(node):
            if isinstance(child, SCOPES):
                self.build_scope(child, scope)
        # A name this scope declares global or nonlocal and binds is bound where it lives too.
        for name in scope.declared & set(scope.bindings):
            owner = self.module_scope_of(scope) if name in scope.globals else parent
            while owner is not None and owner.parent is not None and name not in owner.bindings:
                owner = owner.parent
            if owner is not None:
                owner.add(name, ("other", node))
        return scope

    def module_scope_of(self, scope: Scope) -> Scope:
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def stored_attributes(self, node: ast.ClassDef) -> set[str]:
        """The attribute names that code of class ``node`` stores or deletes (``self.x = ...``)."""
        found = self._stored.get(id(node))
        if found is None:
            found = self._stored[id(node)] = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                                              and not isinstance(n.ctx, ast.Load)}
        return found

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
            return ConObject((found.name,)) if isinstance(found, ConClass) else None
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
        if isinstance(found, ConClass) and not awaited:
            return ConObject((found.name,))
        if not awaited:
            return None
        if isinstance(found, Qualified) and found.name.startswith("con."):
            returned = con_api.RETURNS.get(found.name.removeprefix("con."))
        elif isinstance(found, ConMethod) and len(found.classes) == 1:
            returned = con_api.RETURNS.get(f"{found.classes[0]}.{found.name}")
        else:
            returned = None
        return ConObject(returned) if returned else None

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
        if isinstance(base, ConObject):
            return ConMethod(base.classes, node.attr)
        if isinstance(base, ClassRef):
            return base.method(node.attr)
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
        self.found: dict[str, str | None] = {}

    def member(self, module: str, name: str, seen: frozenset = frozenset()):
        """What ``module.name`` is (``name`` may be a submodule), or None.  A con module's
        member is what its code binds; any other module's is named (``time.sleep``)."""
        qualified = f"{module}.{name}"
        if qualified in seen:  # an import circle
            return None
        seen = seen | {qualified}
        if module == "con":
            return ConClass(name) if name in con_api.CLASSES else Qualified(qualified)
        loaded = self.load(module)
        if loaded is not None:
            found = loaded.top_level(name, seen)
            if found is not None:
                return found
        if self.find(qualified) is not None:
            return ModuleRef(qualified)
        return None if loaded is not None else Qualified(qualified)

    def find(self, name: str) -> str | None:
        """The source file of module ``name`` on the search path, found as the import system
        finds it, without running anything (a package's ``__init__`` included)."""
        if name not in self.found:
            self.found[name] = self._find(name)
        return self.found[name]

    def _find(self, name: str) -> str | None:
        path, spec, parts = self.search, None, name.split(".")
        for i in range(len(parts)):
            if path is None:
                return None
            try:
                spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:i + 1]), path)
            except (ImportError, ValueError):
                return None
            if spec is None:
                return None
            path = spec.submodule_search_locations
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
        lines = io.StringIO(source).readlines()  # (as the token layer has them: str.splitlines also ends a line at \f)
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


def is_nonatomic(found) -> bool:
    """Whether what ``resolve`` found is known to be a non-atomic function."""
    if isinstance(found, Function):
        return found.nonatomic
    if isinstance(found, Qualified):
        module, _, name = found.name.rpartition(".")
        return module == "con" and name in con_api.NONATOMIC_FUNCTIONS
    if isinstance(found, ConMethod):
        return all(found.name in con_api.CLASSES[cls] for cls in found.classes)
    return False


def is_con_atomic(found) -> bool:
    """Whether what ``resolve`` found is an atomic function or method of the con API."""
    if isinstance(found, Qualified):
        module, _, name = found.name.rpartition(".")
        return module == "con" and name in con_api.ATOMIC_FUNCTIONS
    if isinstance(found, ConMethod):
        return all(found.name in con_api.ATOMIC_METHODS.get(cls, ()) for cls in found.classes)
    return False
