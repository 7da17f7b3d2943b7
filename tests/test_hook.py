"""The import hook (docs/spec.md §2.1, §2.2): opt-in, the cache, and fidelity of rewritten modules.

Every test builds its modules in ``tmp_path`` and runs isolated: the autouse fixture
``isolated`` removes conhook's finder and restores ``sys.meta_path``, ``sys.modules``,
``sys.path``, ``sys.dont_write_bytecode`` and ``sys.pycache_prefix`` afterwards.
``PYTHONDONTWRITEBYTECODE`` may be set in the environment running the suite, so every
test that needs a cache turns writing on itself.

Non-atomic functions are coroutine functions; until the runtime lands they are driven
here with ``send(None)`` (``run``).
"""
from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.resources
import importlib.util
import inspect
import linecache
import marshal
import os
import subprocess
import sys
import textwrap
import tokenize
import traceback
import types
from pathlib import Path

import pytest

import conhook
from conhook import _import_hook
from conhook._compiler import pipeline, tokens

ROOT = Path(__file__).resolve().parent.parent
TAG = sys.implementation.cache_tag


# -- helpers ------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def isolated():
    saved_meta_path = sys.meta_path[:]
    saved_modules = dict(sys.modules)
    saved_path = sys.path[:]
    saved_importer_cache = dict(sys.path_importer_cache)
    saved_dont_write = sys.dont_write_bytecode
    saved_prefix = sys.pycache_prefix
    _import_hook.uninstall()
    sys.dont_write_bytecode = False
    sys.pycache_prefix = None
    try:
        yield
    finally:
        sys.meta_path[:] = saved_meta_path
        for name in set(sys.modules) - set(saved_modules):
            del sys.modules[name]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        sys.path_importer_cache.clear()
        sys.path_importer_cache.update(saved_importer_cache)
        sys.dont_write_bytecode = saved_dont_write
        sys.pycache_prefix = saved_prefix
        importlib.invalidate_caches()


def write(root: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> dedented text) under ``root``; put root on sys.path."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return root


def fresh_import(name: str) -> types.ModuleType:
    """Import ``name`` as if for the first time in this process."""
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    importlib.invalidate_caches()
    return importlib.import_module(name)


def run(coro):
    """Drive a non-atomic call that never suspends; return its value."""
    assert inspect.iscoroutine(coro), coro
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


def code_signature(code: types.CodeType):
    """Everything that makes two code objects behave and report alike, recursively."""
    return (
        code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
        code.co_flags, code.co_argcount, code.co_kwonlyargcount, code.co_posonlyargcount,
        code.co_name, code.co_qualname, code.co_firstlineno, code.co_filename,
        code.co_exceptiontable, code.co_stacksize, list(code.co_positions()),
        tuple(code_signature(c) if isinstance(c, types.CodeType) else (type(c), c)
              for c in code.co_consts),
    )


@pytest.fixture
def pipeline_calls(monkeypatch):
    """The filenames the con pipeline compiled, in order (to prove cache hits)."""
    calls = []
    real = pipeline.compile_con

    def counting(source, filename="<con>", *args, **kwargs):
        calls.append(filename)
        return real(source, filename, *args, **kwargs)

    monkeypatch.setattr(pipeline, "compile_con", counting)
    return calls


@pytest.fixture
def no_tokenizing(monkeypatch):
    """Make every tokenizer and the con pipeline fail loudly if anything calls them."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a module that does not opt in was tokenized or compiled by conhook")

    monkeypatch.setattr(tokens, "rewrite_source", forbidden)
    monkeypatch.setattr(pipeline, "rewrite_tokens", forbidden)
    monkeypatch.setattr(pipeline, "compile_con", forbidden)
    monkeypatch.setattr(tokenize, "generate_tokens", forbidden)
    monkeypatch.setattr(tokenize, "tokenize", forbidden)


def api_module_available() -> bool:
    try:
        return importlib.util.find_spec("conhook.api") is not None
    except ImportError:
        return False


needs_api = pytest.mark.skipif(not api_module_available(),
                               reason="conhook.api (served as `import con`) lands with the runtime issue")

# An opted-in module: the first line is replaced per test.
CON_MODULE = """\
import conhook

async def double(x):
    return 2 * x

def twice(x):
    return double@(x) + double@(0)

VALUE = 1
"""

# Tight `@(` in a module that does not opt in is matrix multiplication.
PLAIN_MODULE = """\
class M:
    def __matmul__(self, other):
        return ("matmul", other)

m = M()
sibling = 3
RESULT = m@(sibling)

def f(a, b=2, *c, **d):
    return [x * b for x in range(a)], {k: v for k, v in d.items()}, c
"""


# -- opt-in ---------------------------------------------------------------------------------

OPT_IN_LINES = {
    "import-con": "import con",
    "from-con": "from con import bootstrap",
    "import-conhook": "import conhook",
    "import-list": "import os, conhook",
    "import-list-dotted": "import sys, os.path, conhook",
    "import-as": "import conhook as ch",
    "from-conhook": "from conhook import install",
    "import-trailing-comment": "import conhook  # opt in",
    "after-a-docstring-that-reads-so": '"""Usage:\nimport con\n"""\nimport conhook',
    "after-an-indented-block": "if True:\n    pass\nimport conhook",
}
if sys.version_info >= (3, 15):
    OPT_IN_LINES["lazy-import"] = "lazy import conhook"
    OPT_IN_LINES["lazy-from-con"] = "lazy from con import bootstrap"


@pytest.mark.parametrize("line", OPT_IN_LINES.values(), ids=OPT_IN_LINES.keys())
def test_opt_in_line_selects_the_con_loader(tmp_path, line):
    write(tmp_path, {"opted.py": CON_MODULE.replace("import conhook", line)})
    spec = _import_hook.install().find_spec("opted")
    assert isinstance(spec.loader, _import_hook.ConLoader)
    assert spec.origin == str(tmp_path / "opted.py")


@pytest.mark.parametrize("line", [v for v in OPT_IN_LINES.values() if "conhook" in v],
                         ids=[k for k, v in OPT_IN_LINES.items() if "conhook" in v])
def test_opted_in_module_is_rewritten(tmp_path, line):
    write(tmp_path, {"opted.py": CON_MODULE.replace("import conhook", line)})
    _import_hook.install()
    module = importlib.import_module("opted")
    assert isinstance(module.__loader__, _import_hook.ConLoader)
    assert inspect.iscoroutinefunction(module.twice)
    assert run(module.twice(21)) == 42


@pytest.mark.parametrize("encode", [
    lambda text: b"\xef\xbb\xbf" + text.encode(),
    lambda text: text.replace("\n", "\r\n").encode(),
    lambda text: ("# -*- coding: latin-1 -*-\n" + text.replace("VALUE = 1", "VALUE = 'caf\xe9'")).encode("latin-1"),
], ids=["utf8-bom", "crlf", "latin1-cookie"])
def test_opt_in_line_in_any_source_encoding(tmp_path, encode):
    (tmp_path / "encoded.py").write_bytes(encode(CON_MODULE))
    write(tmp_path, {})
    _import_hook.install()
    module = importlib.import_module("encoded")
    assert isinstance(module.__loader__, _import_hook.ConLoader)
    assert run(module.twice(2)) == 4


@needs_api
def test_import_con_is_served_and_opts_in(tmp_path):
    write(tmp_path, {"opted.py": CON_MODULE.replace("import conhook", "import con")})
    _import_hook.install()
    module = importlib.import_module("opted")
    assert module.con is sys.modules["conhook.api"]
    assert run(module.twice(2)) == 4


def test_con_is_served_by_the_finder_not_by_a_file(tmp_path):
    # A file named con.py on the path must not shadow the API module.
    write(tmp_path, {"con.py": "raise AssertionError('the file con.py was imported')\n"})
    spec = _import_hook.install().find_spec("con")
    assert spec.name == "con"
    assert spec.origin is None or not spec.origin.endswith("con.py")
    assert not isinstance(spec.loader, importlib.machinery.SourceFileLoader)


NOT_OPT_IN = {
    "nothing": "",
    "prefix-name": "import contextlib",
    "longer-name": "import conhook_extras",
    "similar-name": "import conx",
    "alias-named-con": "import os.path as con",
    "submodule-named-con": "import os.con",
    "from-other-import-con": "from os import con",
    "relative-import": "from . import con",
    "comment": "# import con",
    "string": "x = 'import con'",
    # Lines of a string, read as text, start with an import: the tokens tell them apart.
    "docstring": '"""Usage:\n\nimport con\nfrom con import bootstrap\n"""',
    "string-literal": "HELP = '''\nimport os, conhook\n'''",
    "f-string": 'HELP = f"""{len("x")}\nimport con\n"""',
    "continued-line": "x = 1 + \\\nimport con",
    "indented": "def f():\n    import conhook",
    "guarded": "if False:\n    import conhook",
}


@pytest.mark.parametrize("line", NOT_OPT_IN.values(), ids=NOT_OPT_IN.keys())
def test_module_without_opt_in_keeps_the_plain_loader(tmp_path, line):
    write(tmp_path, {"plain.py": line + "\n" + PLAIN_MODULE})
    spec = _import_hook.install().find_spec("plain")
    assert type(spec.loader) is importlib.machinery.SourceFileLoader


def test_conhooks_own_modules_are_never_rewritten(monkeypatch):
    # conhook/__main__.py has `import conhook` in column 0; from a clone (not site-packages)
    # it was compiled by the pipeline at every `python -m conhook`, before anything else ran.
    spy = _SpyOpen()
    monkeypatch.setattr(_import_hook, "open", spy, raising=False)
    for name in ("conhook.__main__", "conhook._supervisor"):
        spec = _import_hook.install().find_spec(name, conhook.__path__)
        assert type(spec.loader) is importlib.machinery.SourceFileLoader
    assert spy.calls == []


def test_module_without_opt_in_is_never_tokenized(tmp_path, no_tokenizing):
    write(tmp_path, {"plain.py": PLAIN_MODULE})
    _import_hook.install()
    module = importlib.import_module("plain")
    assert module.RESULT == ("matmul", 3)  # tight @( stays matrix multiplication
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader


def test_module_without_opt_in_has_exactly_the_plain_code(tmp_path):
    path = write(tmp_path, {"plain.py": PLAIN_MODULE}) / "plain.py"
    expected = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    _import_hook.install()
    module = importlib.import_module("plain")
    assert code_signature(module.__loader__.get_code("plain")) == code_signature(expected)
    f_code = next(c for c in expected.co_consts if isinstance(c, types.CodeType) and c.co_name == "f")
    assert code_signature(module.f.__code__) == code_signature(f_code)


def test_opted_in_code_without_con_syntax_compiles_exactly_as_plain(tmp_path):
    # docs/spec.md §2.2: code without con syntax behaves exactly as under CPython, even when opted in.
    source = "import conhook\n" + PLAIN_MODULE.replace("RESULT = m@(sibling)", "RESULT = m @ (sibling)")
    path = write(tmp_path, {"mixed.py": source}) / "mixed.py"
    expected = compile(source, str(path), "exec", dont_inherit=True)
    _import_hook.install()
    module = importlib.import_module("mixed")
    assert isinstance(module.__loader__, _import_hook.ConLoader)
    assert code_signature(module.__loader__.get_code("mixed")) == code_signature(expected)
    assert module.RESULT == ("matmul", 3)


def test_install_paths_opts_in_everything_below(tmp_path):
    body = CON_MODULE.replace("import conhook\n", "")
    write(tmp_path / "lib", {"inside.py": body, "deeper/nested.py": body})
    write(tmp_path / "library", {"outside.py": PLAIN_MODULE})  # shares the prefix "lib"
    sys.path.insert(0, str(tmp_path / "lib" / "deeper"))
    _import_hook.install(paths=[str(tmp_path / "lib")])
    assert run(importlib.import_module("inside").twice(1)) == 2
    assert run(importlib.import_module("nested").twice(2)) == 4
    outside = importlib.import_module("outside")
    assert type(outside.__loader__) is importlib.machinery.SourceFileLoader
    assert outside.RESULT == ("matmul", 3)


def test_install_packages_opts_in_the_package_and_its_submodules(tmp_path):
    body = CON_MODULE.replace("import conhook\n", "")
    write(tmp_path, {
        "app/__init__.py": body,
        "app/sub/__init__.py": "",
        "app/sub/leaf.py": body,
        "application/__init__.py": PLAIN_MODULE,  # shares the prefix "app"
    })
    conhook.install(packages=["app"])
    assert run(importlib.import_module("app").twice(1)) == 2
    assert run(importlib.import_module("app.sub.leaf").twice(3)) == 6
    other = importlib.import_module("application")
    assert type(other.__loader__) is importlib.machinery.SourceFileLoader
    assert other.RESULT == ("matmul", 3)


def test_install_again_adds_to_the_finder(tmp_path):
    # A library's install() and the application's add up (docs/libraries.md).
    conhook.install(paths=[str(tmp_path)])
    conhook.install(packages=["x"])
    conhook.install(packages=["x"], paths=[str(tmp_path)])
    finders = [f for f in sys.meta_path if isinstance(f, _import_hook.ConFinder)]
    assert len(finders) == 1
    assert finders[0].packages == ("x",) and finders[0].paths == (os.path.join(str(tmp_path), ""),)


def test_uninstall_removes_the_finder(tmp_path):
    write(tmp_path, {"opted.py": CON_MODULE})
    conhook.install()
    conhook.uninstall()
    assert not any(isinstance(f, _import_hook.ConFinder) for f in sys.meta_path)
    module = importlib.import_module("opted")  # `import conhook` no longer opts in
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader
    assert not inspect.iscoroutinefunction(module.twice)
    conhook.uninstall()  # idempotent


def writes(mode: str) -> bool:
    return "w" in mode or "x" in mode


class _SpyOpen:
    """Stands in for ``open`` inside ``conhook._import_hook``; records (path, mode)."""

    def __init__(self, fail_writes=False):
        self.calls = []
        self.fail_writes = fail_writes

    def __call__(self, file, mode="r", *args, **kwargs):
        self.calls.append((os.fspath(file), mode))
        if self.fail_writes and writes(mode):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return builtins.open(file, mode, *args, **kwargs)


@pytest.mark.parametrize("name", ["json", "email.mime.text", "pytest", "bytecode", "_pytest.python"])
def test_stdlib_and_site_packages_are_declined_without_opening_the_file(tmp_path, monkeypatch, name):
    spy = _SpyOpen()
    monkeypatch.setattr(_import_hook, "open", spy, raising=False)
    finder = _import_hook.ConFinder()
    parent, _, _ = name.rpartition(".")
    path = importlib.import_module(parent).__path__ if parent else None
    spec = finder.find_spec(name, path)
    assert type(spec.loader) is importlib.machinery.SourceFileLoader
    assert spy.calls == []
    # Control: the spy does see the opt-in check of an ordinary module (after a look for
    # a cache entry, which it has none of).
    write(tmp_path, {"plain.py": PLAIN_MODULE})
    finder.find_spec("plain")
    assert spy.calls == [(_import_hook.cache_path_for(str(tmp_path / "plain.py")), "rb"),
                         (str(tmp_path / "plain.py"), "rb")]


def test_a_warm_import_reads_the_cache_and_not_the_source(tmp_path, monkeypatch, pipeline_calls):
    source = write(tmp_path, {"cached.py": CON_MODULE}) / "cached.py"
    _import_hook.install()
    assert run(fresh_import("cached").twice(1)) == 2
    spy = _SpyOpen()
    monkeypatch.setattr(_import_hook, "open", spy, raising=False)
    module = fresh_import("cached")
    assert spy.calls == [(_import_hook.cache_path_for(str(source)), "rb")]  # one file, as CPython reads
    assert len(pipeline_calls) == 1
    assert run(module.twice(4)) == 8


def test_a_cache_entry_made_for_install_does_not_opt_its_module_in_later(tmp_path, pipeline_calls):
    # Rewritten because install(paths=...) covered it; the source itself does not opt in.
    write(tmp_path, {"covered.py": "from operator import matmul as m\n\n"
                                   "def f(g):\n    return g@(3)\n"})
    _import_hook.install(paths=[str(tmp_path)])
    assert inspect.iscoroutinefunction(fresh_import("covered").f)
    assert cache_files(tmp_path) == [f"covered.{TAG}-conhook.pyc"]
    _import_hook.install()  # no paths now: the fresh cache entry must not opt the module in
    module = fresh_import("covered")
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader
    assert not inspect.iscoroutinefunction(module.f)


def test_finders_before_the_path_finder_keep_precedence(tmp_path):
    class Served(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "shadowed":
                return importlib.util.spec_from_loader(fullname, self)
            return None

        def exec_module(self, module):
            module.SOURCE = "meta path finder"

    served = Served()
    path_finder_at = sys.meta_path.index(importlib.machinery.PathFinder)
    sys.meta_path.insert(0, served)
    sys.meta_path.insert(path_finder_at + 1, late := Served())  # just before PathFinder
    write(tmp_path, {"shadowed.py": CON_MODULE + "SOURCE = 'file'\n"})
    finder = _import_hook.install()
    order = sys.meta_path
    assert order.index(served) < order.index(late) < order.index(finder)
    assert order.index(finder) + 1 == order.index(importlib.machinery.PathFinder)
    assert importlib.import_module("shadowed").SOURCE == "meta path finder"


# -- the cache --------------------------------------------------------------------------------

def cache_files(directory: Path) -> list[str]:
    pycache = directory / "__pycache__"
    return sorted(os.listdir(pycache)) if pycache.is_dir() else []


def test_cache_is_written_beside_the_ordinary_pyc_under_its_own_tag(tmp_path):
    source = write(tmp_path, {"cached.py": CON_MODULE}) / "cached.py"
    cache = _import_hook.cache_path_for(str(source))
    assert cache == str(tmp_path / "__pycache__" / f"cached.{TAG}-conhook.pyc")
    assert cache != importlib.util.cache_from_source(str(source))
    _import_hook.install()
    importlib.import_module("cached")
    assert cache_files(tmp_path) == [f"cached.{TAG}-conhook.pyc"]  # never the ordinary name
    assert isinstance(_import_hook.read_cache(cache, os.stat(source)), types.CodeType)


def test_cache_is_reused_on_the_second_import(tmp_path, pipeline_calls):
    write(tmp_path, {"cached.py": CON_MODULE})
    _import_hook.install()
    assert run(fresh_import("cached").twice(1)) == 2
    assert len(pipeline_calls) == 1
    module = fresh_import("cached")
    assert len(pipeline_calls) == 1  # served from the cache: the pipeline did not run again
    assert run(module.twice(5)) == 10
    assert inspect.iscoroutinefunction(module.twice)


def _rewrite_keeping(path: Path, text: str, *, mtime_ns: int | None = None) -> None:
    before = os.stat(path)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    mtime = before.st_mtime_ns if mtime_ns is None else mtime_ns
    os.utime(path, ns=(before.st_atime_ns, mtime))
    importlib.invalidate_caches()


def test_cache_is_invalidated_by_a_new_mtime_with_the_same_size(tmp_path, pipeline_calls):
    source = write(tmp_path, {"stale.py": CON_MODULE}) / "stale.py"
    _import_hook.install()
    assert fresh_import("stale").VALUE == 1
    old = os.stat(source)
    _rewrite_keeping(source, CON_MODULE.replace("VALUE = 1", "VALUE = 2"),
                     mtime_ns=old.st_mtime_ns + 2_000_000_000)
    assert os.stat(source).st_size == old.st_size
    assert fresh_import("stale").VALUE == 2
    assert len(pipeline_calls) == 2


def test_cache_is_invalidated_by_a_new_size_with_the_same_mtime(tmp_path, pipeline_calls):
    source = write(tmp_path, {"stale.py": CON_MODULE}) / "stale.py"
    _import_hook.install()
    assert fresh_import("stale").VALUE == 1
    old = os.stat(source)
    _rewrite_keeping(source, CON_MODULE.replace("VALUE = 1", "VALUE = 100"))
    assert os.stat(source).st_mtime_ns == old.st_mtime_ns
    assert fresh_import("stale").VALUE == 100
    assert len(pipeline_calls) == 2
    fresh_import("stale")
    assert len(pipeline_calls) == 2  # and the rewritten cache is good again


def _other_key(data: bytes) -> bytes:
    key = _import_hook._cache_key()
    at = data.index(key)
    return data[:at] + key.replace(b"conhook", b"CONHOOK") + data[at + len(key):]


def _older_version(data: bytes) -> bytes:
    key = _import_hook._cache_key()
    return data.replace(key, b"conhook 0.0.1 bytecode 0.18.1", 1)


def _wrong_magic(data: bytes) -> bytes:
    return b"\x00\x00\r\n" + data[4:]


def _not_code(data: bytes) -> bytes:
    key = _import_hook._cache_key()
    return data[:data.index(key) + len(key)] + marshal.dumps(("not", "code"))


CORRUPTIONS = {
    "empty": lambda data: b"",
    "header-only": lambda data: data[:10],
    "truncated": lambda data: data[: len(data) // 2],
    "last-byte-missing": lambda data: data[:-1],
    "garbage": lambda data: bytes(range(256)) * 4,
    "wrong-key": _other_key,
    "older-version-key": _older_version,
    "wrong-magic": _wrong_magic,
    "marshal-of-not-code": _not_code,
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_cache_is_recompiled_and_rewritten(tmp_path, pipeline_calls, corrupt):
    source = write(tmp_path, {"damaged.py": CON_MODULE}) / "damaged.py"
    _import_hook.install()
    fresh_import("damaged")
    cache = Path(_import_hook.cache_path_for(str(source)))
    cache.write_bytes(corrupt(cache.read_bytes()))
    module = fresh_import("damaged")
    assert run(module.twice(4)) == 8
    assert len(pipeline_calls) == 2
    assert isinstance(_import_hook.read_cache(str(cache), os.stat(source)), types.CodeType)
    fresh_import("damaged")
    assert len(pipeline_calls) == 2


@pytest.mark.parametrize("owner, attribute", [("conhook._version", "__version__"), ("bytecode", "__version__")])
def test_cache_is_invalidated_by_a_new_version(tmp_path, monkeypatch, pipeline_calls, owner, attribute):
    # docs/spec.md §2.2: the key holds the conhook and bytecode versions (and the magic number,
    # see "wrong-magic" above; the cache tag in the name holds the Python version).
    write(tmp_path, {"versioned.py": CON_MODULE})
    _import_hook.install()
    fresh_import("versioned")
    monkeypatch.setattr(importlib.import_module(owner), attribute, "999.0")
    assert run(fresh_import("versioned").twice(1)) == 2
    assert len(pipeline_calls) == 2


# -- why an entry is not used: cache_trace ---------------------------------------------------

@pytest.fixture
def declines(monkeypatch):
    """The (cache path, reason) of every cache entry the hook does not use, in order."""
    traced = []
    monkeypatch.setattr(_import_hook, "cache_trace", lambda path, reason: traced.append((path, reason)))
    return traced


def _rewrite_entry(change):
    return lambda source, cache: cache.write_bytes(change(cache.read_bytes()))


def _make_a_directory(source: Path, cache: Path) -> None:
    cache.unlink()
    cache.mkdir()


def _touch(source: Path, cache: Path) -> None:
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


# Each way to damage an entry (given the source and the cache path) and the reason it is declined.
DECLINES = [
    pytest.param("missing", lambda source, cache: cache.unlink(), id="missing"),
    pytest.param("unreadable: Is a directory", _make_a_directory, id="unreadable"),
    pytest.param("damaged: shorter than the header", _rewrite_entry(lambda data: data[:10]), id="short"),
    pytest.param("bad magic (another Python's bytecode)", _rewrite_entry(_wrong_magic), id="magic"),
    pytest.param("stale: source mtime or size changed", _touch, id="stale"),
    pytest.param("wrong key (another conhook or bytecode version)", _rewrite_entry(_older_version),
                 id="key"),
    pytest.param("damaged: could not unmarshal", _rewrite_entry(lambda data: data[:-1]), id="truncated"),
    pytest.param("damaged: not a code object", _rewrite_entry(_not_code), id="not-code"),
]


@pytest.mark.parametrize("reason, damage", DECLINES)
def test_a_declined_cache_entry_is_traced_with_its_reason(tmp_path, pipeline_calls, declines, reason, damage):
    source = write(tmp_path, {"traced.py": CON_MODULE}) / "traced.py"
    _import_hook.install()
    fresh_import("traced")
    cache = Path(_import_hook.cache_path_for(str(source)))
    damage(source, cache)
    declines.clear()
    module = fresh_import("traced")
    assert run(module.twice(4)) == 8
    assert len(pipeline_calls) == 2  # recompiled
    # The finder (warm path) and then the loader may each read the entry: one reason for both.
    assert set(declines) == {(str(cache), reason)}


def test_a_valid_cache_entry_is_used_with_no_decline_traced(tmp_path, pipeline_calls, declines):
    source = write(tmp_path, {"traced.py": CON_MODULE}) / "traced.py"
    _import_hook.install()
    fresh_import("traced")
    assert set(declines) == {(_import_hook.cache_path_for(str(source)), "missing")}  # the cold import
    declines.clear()
    assert run(fresh_import("traced").twice(4)) == 8
    assert len(pipeline_calls) == 1
    assert declines == []


def test_an_entry_made_for_install_is_declined_by_the_opt_in_check(tmp_path, declines):
    source = write(tmp_path, {"covered.py": "def f(g):\n    return g@(3)\n"}) / "covered.py"
    _import_hook.install(paths=[str(tmp_path)])
    assert inspect.iscoroutinefunction(fresh_import("covered").f)
    _import_hook.install()
    declines.clear()
    module = fresh_import("covered")
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader  # plain, as it should be
    assert declines == [(_import_hook.cache_path_for(str(source)),
                         "made for install(): the source does not opt in by itself")]


def test_read_only_pycache_directory_is_not_an_error(tmp_path):
    write(tmp_path, {"ro.py": CON_MODULE})
    pycache = tmp_path / "__pycache__"
    pycache.mkdir()
    pycache.chmod(0o555)
    try:
        if os.access(pycache, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions "
                        "(see the simulated variant below)")
        _import_hook.install()
        assert run(fresh_import("ro").twice(3)) == 6
        assert os.listdir(pycache) == []
    finally:
        pycache.chmod(0o755)


def test_permission_denied_on_the_cache_is_not_an_error(tmp_path, monkeypatch, pipeline_calls):
    # The same as above for privileged users: every write is refused.
    write(tmp_path, {"ro.py": CON_MODULE})
    spy = _SpyOpen(fail_writes=True)
    monkeypatch.setattr(_import_hook, "open", spy, raising=False)
    _import_hook.install()
    assert run(fresh_import("ro").twice(3)) == 6
    assert any(writes(mode) for _, mode in spy.calls)  # it tried, and gave up quietly
    assert cache_files(tmp_path) == []
    assert run(fresh_import("ro").twice(1)) == 2
    assert len(pipeline_calls) == 2


def test_pycache_that_is_a_file_is_not_an_error(tmp_path):
    write(tmp_path, {"blocked.py": CON_MODULE})
    (tmp_path / "__pycache__").write_text("not a directory")
    _import_hook.install()
    assert run(fresh_import("blocked").twice(3)) == 6
    assert (tmp_path / "__pycache__").read_text() == "not a directory"
    assert sorted(os.listdir(tmp_path)) == ["__pycache__", "blocked.py"]


def test_pycache_prefix_is_honoured(tmp_path, pipeline_calls):
    source = write(tmp_path / "src", {"prefixed.py": CON_MODULE}) / "prefixed.py"
    prefix = tmp_path / "prefix"
    sys.pycache_prefix = str(prefix)
    cache = Path(_import_hook.cache_path_for(str(source)))
    assert cache == prefix / str(source.parent).lstrip(os.sep) / f"prefixed.{TAG}-conhook.pyc"
    _import_hook.install()
    fresh_import("prefixed")
    assert cache.is_file()
    assert not (tmp_path / "src" / "__pycache__").exists()
    fresh_import("prefixed")
    assert len(pipeline_calls) == 1


def test_pythonpycacheprefix_is_honoured_in_a_fresh_interpreter(tmp_path):
    source = write(tmp_path / "src", {"prefixed.py": CON_MODULE}) / "prefixed.py"
    prefix = tmp_path / "prefix"
    env = subprocess_env(PYTHONPYCACHEPREFIX=str(prefix))
    code = "import conhook, prefixed; print(prefixed.twice(2).send(None))"
    result = subprocess.run([sys.executable, "-c", code], cwd=source.parent, env=env,
                            capture_output=True, text=True, timeout=60)
    assert "StopIteration: 4" in result.stderr
    assert (prefix / str(source.parent).lstrip(os.sep) / f"prefixed.{TAG}-conhook.pyc").is_file()
    assert not (source.parent / "__pycache__").exists()


def test_dont_write_bytecode_writes_nothing(tmp_path):
    write(tmp_path, {"quiet.py": CON_MODULE})
    sys.dont_write_bytecode = True
    _import_hook.install()
    assert run(fresh_import("quiet").twice(3)) == 6
    assert sorted(os.listdir(tmp_path)) == ["quiet.py"]


def test_dont_write_bytecode_still_reads_a_cache(tmp_path, pipeline_calls):
    # As CPython: the flag stops writing, not reading.
    write(tmp_path, {"quiet.py": CON_MODULE})
    _import_hook.install()
    fresh_import("quiet")
    sys.dont_write_bytecode = True
    assert run(fresh_import("quiet").twice(3)) == 6
    assert len(pipeline_calls) == 1


def test_cache_writes_are_atomic(tmp_path, monkeypatch):
    source = write(tmp_path, {"atomic.py": CON_MODULE}) / "atomic.py"
    cache = _import_hook.cache_path_for(str(source))
    spy = _SpyOpen()
    monkeypatch.setattr(_import_hook, "open", spy, raising=False)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    _import_hook.install()
    fresh_import("atomic")
    written = [path for path, mode in spy.calls if writes(mode)]
    assert len(written) == 1 and written[0] != cache  # the cache itself is never opened for writing
    assert os.path.dirname(written[0]) == os.path.dirname(cache)  # same file system
    assert replaced == [(written[0], cache)]
    assert cache_files(tmp_path) == [os.path.basename(cache)]  # no temporary file left behind


def test_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    write(tmp_path, {"atomic.py": CON_MODULE})

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    _import_hook.install()
    assert run(fresh_import("atomic").twice(2)) == 4
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444, 0o755])
def test_cache_gets_the_source_mode_as_cpythons_pyc_does(tmp_path, mode):
    # A 0600 source holding a secret must not get a world-readable cache.
    write(tmp_path, {"secret.py": CON_MODULE, "plain.py": PLAIN_MODULE})
    for name in ("secret.py", "plain.py"):
        (tmp_path / name).chmod(mode)
    _import_hook.install()
    fresh_import("secret")
    fresh_import("plain")  # declined: CPython writes its own .pyc
    ours = os.stat(_import_hook.cache_path_for(str(tmp_path / "secret.py"))).st_mode
    cpythons = os.stat(importlib.util.cache_from_source(str(tmp_path / "plain.py"))).st_mode
    assert oct(ours & 0o7777) == oct(cpythons & 0o7777)
    assert ours & 0o077 & ~mode == 0  # never more open than the source


def _plant_symlink(at: str, victim: Path) -> None:
    os.makedirs(os.path.dirname(at), exist_ok=True)
    os.symlink(victim, at)


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(tmp_path):
    source = write(tmp_path, {"shared.py": CON_MODULE}) / "shared.py"
    cache = _import_hook.cache_path_for(str(source))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    _plant_symlink(f"{cache}.{os.getpid()}.tmp", victim)  # the name used to be predictable
    _import_hook.install()
    assert run(fresh_import("shared").twice(2)) == 4
    assert victim.read_text() == "precious"
    assert not os.path.islink(cache) and _import_hook.read_cache(cache, source.stat()) is not None


def test_the_temporary_file_is_created_exclusively(tmp_path, monkeypatch, pipeline_calls):
    # Whatever stands at the temporary name (here a symlink, at a name made guessable), the
    # write is refused rather than done through it, and it is left alone.
    source = write(tmp_path, {"shared.py": CON_MODULE}) / "shared.py"
    cache = _import_hook.cache_path_for(str(source))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = f"{cache}.planted.tmp"
    _plant_symlink(planted, victim)
    monkeypatch.setattr(_import_hook, "_temporary_name", lambda path: planted)
    _import_hook.install()
    assert run(fresh_import("shared").twice(2)) == 4
    assert victim.read_text() == "precious"
    assert os.path.islink(planted) and not os.path.lexists(cache)


def test_a_temporary_file_left_by_a_crash_does_not_trip_a_later_write(tmp_path, monkeypatch, pipeline_calls):
    source = write(tmp_path, {"crashy.py": CON_MODULE}) / "crashy.py"
    cache = _import_hook.cache_path_for(str(source))

    class Crash(BaseException):
        """The process dying between the write and the rename."""

    def crash(src, dst):
        raise Crash

    _import_hook.install()
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(Crash):
            fresh_import("crashy")
    leftovers = [name for name in cache_files(tmp_path) if name.endswith(".tmp")]
    assert len(leftovers) == 1
    # A later run, in a process with the same pid (this one), writes and then uses its entry.
    fresh_import("crashy")
    assert run(fresh_import("crashy").twice(2)) == 4
    assert os.path.isfile(cache) and len(pipeline_calls) == 2


def test_reload_uses_the_cache_and_sees_changes(tmp_path, pipeline_calls):
    source = write(tmp_path, {
        "tally.py": "runs = []\n",
        "again.py": CON_MODULE + "import tally; tally.runs.append(VALUE)\n",
    }) / "again.py"
    _import_hook.install()
    module = importlib.import_module("again")
    tally = sys.modules["tally"]
    importlib.reload(module)
    assert tally.runs == [1, 1]  # executed twice
    assert pipeline_calls == [str(source)]  # compiled once
    _rewrite_keeping(source, CON_MODULE.replace("VALUE = 1", "VALUE = 7") + "import tally; tally.runs.append(VALUE)\n",
                     mtime_ns=os.stat(source).st_mtime_ns + 1_000_000_000)
    importlib.reload(module)
    assert tally.runs == [1, 1, 7]
    assert len(pipeline_calls) == 2
    assert run(module.twice(4)) == 8
    assert isinstance(module.__loader__, _import_hook.ConLoader)


def subprocess_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONSAFEPATH")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def test_second_import_in_a_fresh_interpreter_uses_the_cache(tmp_path):
    source = write(tmp_path, {"twiceimported.py": CON_MODULE}) / "twiceimported.py"
    env = subprocess_env()
    first = "import conhook, twiceimported; print(twiceimported.twice(2).send(None))"
    second = ("import conhook, conhook._compiler.pipeline as p\n"
              "def boom(*a, **k): raise AssertionError('compiled again')\n"
              "p.compile_con = boom\n"
              "import twiceimported; print(twiceimported.twice(3).send(None))\n")
    results = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60) for code in (first, second)]
    assert "StopIteration: 4" in results[0].stderr
    assert "StopIteration: 6" in results[1].stderr, results[1].stderr
    assert os.path.exists(_import_hook.cache_path_for(str(source)))


def test_conhook_trace_tells_on_stderr_why_a_cache_entry_is_not_used(tmp_path):
    source = write(tmp_path, {"traced.py": CON_MODULE}) / "traced.py"
    code = "import conhook, traced; print(traced.twice(2).send(None))"
    env = subprocess_env()
    env.pop("CONHOOK_TRACE", None)
    first = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert "StopIteration: 4" in first.stderr
    assert "conhook:" not in first.stderr  # off by default
    cache = Path(_import_hook.cache_path_for(str(source)))
    cache.write_bytes(_wrong_magic(cache.read_bytes()))
    second = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "CONHOOK_TRACE": "1"},
                            capture_output=True, text=True, timeout=60)
    assert "StopIteration: 4" in second.stderr
    assert f"conhook: not using cache {cache}: bad magic (another Python's bytecode)\n" in second.stderr


# -- fidelity: resources, source, tracebacks ------------------------------------------------

def test_importlib_resources_work_for_a_rewritten_package(tmp_path):
    write(tmp_path, {"respkg/__init__.py": CON_MODULE, "respkg/data.txt": "payload\n"})
    _import_hook.install()
    package = importlib.import_module("respkg")
    assert isinstance(package.__loader__, _import_hook.ConLoader)
    assert importlib.resources.files(package).joinpath("data.txt").read_text() == "payload\n"
    assert importlib.resources.files("respkg").joinpath("data.txt").is_file()
    assert package.__loader__.get_data(str(tmp_path / "respkg" / "data.txt")) == b"payload\n"


def test_getsource_and_linecache_show_the_original_text(tmp_path):
    path = write(tmp_path, {"src.py": CON_MODULE}) / "src.py"
    _import_hook.install()
    module = importlib.import_module("src")
    original = CON_MODULE.splitlines(keepends=True)
    assert inspect.getsource(module.twice) == "".join(original[5:7])
    assert "double@(x)" in inspect.getsource(module.twice)
    assert inspect.getsourcelines(module.twice)[1] == 6
    assert module.__loader__.get_source("src") == CON_MODULE
    linecache.checkcache(str(path))
    assert linecache.getline(str(path), 7) == original[6]
    assert module.twice.__code__.co_firstlineno == 6


TRACEBACK_MODULE = """\
import conhook

async def boom(x):
    raise ValueError(x)

async def ok(x):
    return x

def call_fails():
    s = "héllo €"; y = boom@(1)
    return y

def name_fails():
    s = "héllo €"; y = ok@(1) + missing_name
    return y

def attribute_fails():
    s = "€"; return ok@(1).missing_attr

def nested_fails():
    return ok@(ok@(2) + boom@(ok@(3)))
"""


def _frame_marks(formatted: list[str], function: str) -> tuple[str, str]:
    """The displayed source line and the marker line of ``function``'s frame."""
    lines = "".join(formatted).splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(f", in {function}"))
    return lines[at + 1], lines[at + 2]


@pytest.mark.parametrize("function, span", [
    ("call_fails", "boom@(1)"),
    ("name_fails", "missing_name"),
    ("attribute_fails", "ok@(1).missing_attr"),
    ("nested_fails", "boom@(ok@(3))"),
])
def test_traceback_shows_original_line_and_columns(tmp_path, function, span):
    path = write(tmp_path, {"tb.py": TRACEBACK_MODULE}) / "tb.py"
    _import_hook.install()
    module = importlib.import_module("tb")
    with pytest.raises(Exception) as info:
        run(getattr(module, function)())
    formatted = traceback.format_exception(info.value)
    text, marks = _frame_marks(formatted, function)
    original = next(line for line in TRACEBACK_MODULE.splitlines() if span in line)
    assert text.strip() == original.strip()
    assert f'File "{path}"' in "".join(formatted)
    start = text.index(span)
    marked = [i for i, ch in enumerate(marks) if ch in "^~"]
    assert marked, f"no column markers under {text!r}"
    assert (marked[0], marked[-1] + 1) == (start, start + len(span)), "\n" + text + "\n" + marks


def test_error_while_importing_a_rewritten_module_shows_no_conhook_frames(tmp_path):
    # CPython removes importlib's frames from such tracebacks; a frame of the hook in
    # between would stop it, and show the hook's own frames as well.
    failing = CON_MODULE + "def fail():\n    raise KeyError('at import')\nfail()\n"
    path = write(tmp_path, {"failing.py": failing}) / "failing.py"
    _import_hook.install()
    with pytest.raises(KeyError) as info:
        __import__("failing")  # the import statement's path, where CPython trims frames
    files = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert files[-2:] == [str(path), str(path)]
    package = os.path.dirname(_import_hook.__file__) + os.sep
    assert not any("importlib" in f or f.startswith(package) for f in files), files
    assert "failing" not in sys.modules  # not left half-imported


# -- syntax errors at import ------------------------------------------------------------------

SYNTAX_ERRORS = {
    "module-level": ("x = g@(1)", "g@(1)", "module level"),
    "module-level-non-ascii": ('s = "héllo €"; x = g@(1)', "g@(1)", "module level"),
    "class-body": ("class C:\n    y = a.g@(1)", "a.g@(1)", "class body"),
    "generator": ("def f():\n    yield g@(1)", "g@(1)", "generator"),
    "generator-expression": ("def f(y):\n    return list(g@(x) for x in y)", "g@(x)", "generator"),
    "annotation": ("def f():\n    x: g@(1) = 2", "g@(1)", "annotation"),
    "parameter-annotation": ("def f(a: g@(1)):\n    pass", "g@(1)", "annotation"),
    "assignment-target": ("def f():\n    g@(1) = 2", "g@(1)", "assign"),
    "assignment-target-non-ascii": ('def f():\n    s = "é€"; g@(1) = 2', "g@(1)", "assign"),
    "del-target": ("def f():\n    del g@(1)", "g@(1)", "delete"),
    "sibling-in-expression": ("def f():\n    x = sibling g@(1)", "sibling", "sibling"),
    "sibling-without-call": ("def f():\n    sibling g(1)", "sibling", "sibling"),
    "sibling-at-module-level": ("sibling g@(1)", "sibling", "module level"),
    "reserved-name": ("def f():\n    __con_x__ = g@(1)", "__con_x__", "reserved"),
}


@pytest.mark.parametrize("body, span, words", SYNTAX_ERRORS.values(), ids=SYNTAX_ERRORS.keys())
def test_syntax_error_at_import_names_the_original_place(tmp_path, body, span, words):
    source = "import conhook\n" + body + "\n"
    path = write(tmp_path, {"bad.py": source}) / "bad.py"
    _import_hook.install()
    with pytest.raises(SyntaxError) as info:
        importlib.import_module("bad")
    error = info.value
    lines = source.splitlines()
    lineno = next(i for i, line in enumerate(lines, 1) if span in line and "import conhook" not in line)
    assert type(error) is SyntaxError
    assert (error.filename, error.lineno) == (str(path), lineno)
    assert error.text.rstrip("\n") == lines[lineno - 1]  # the original text, with `@(`
    assert words in error.msg
    start = lines[lineno - 1].index(span)
    at = start + span.index("@(") if "@(" in span else start  # a call is reported at its '@'
    assert error.offset == at + 1  # 1-based character column
    if error.end_offset is not None and span != "sibling":
        assert error.end_offset == start + len(span) + 1
    shown = traceback.format_exception_only(error)
    assert any(line.strip() == lines[lineno - 1].strip() for line in "".join(shown).splitlines())
    assert "bad" not in sys.modules


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="f-strings are tokenized on 3.12+")
def test_nonatomic_call_in_fstring_is_a_syntax_error_on_311(tmp_path):
    source = "import conhook\ndef f():\n    return f'{g@(1)}'\n"
    path = write(tmp_path, {"bad.py": source}) / "bad.py"
    _import_hook.install()
    with pytest.raises(SyntaxError) as info:
        importlib.import_module("bad")
    assert (info.value.filename, info.value.lineno) == (str(path), 3)
    assert "3.12" in info.value.msg
