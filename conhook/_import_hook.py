"""The import hook: which modules are rewritten, how they are loaded, how they are cached.

A module is rewritten when it opts in (docs/spec.md §2.1): it has an import statement in
column 0 naming ``con`` or ``conhook`` (``import``/``from``; a line of a docstring or other
string that reads so does not count: the tokens decide, not the text), or it lies under a
path or package given to ``conhook.install()`` (each call adds to the earlier ones).  Every
other module is handed back exactly as the path finder found it.  conhook's own modules, the
standard library and the packages in site-packages are declined before their files are even
opened, but for an installed con library: a package in site-packages whose directory holds the
marker file ``con.library`` (docs/libraries.md); one ``stat`` tells, once per package and
process.  Its modules, and any other module without an opt-in line, are then judged as the
application's own: a module without one is declined on a scan of its text, never tokenized.

The finder sits just before ``PathFinder`` on ``sys.meta_path`` so that finders placed
in front of the path finder keep their precedence.  Modules in zip archives are found by the
path finder through a path hook of ours placed before ``zipimport``'s (``ConZipImporter``),
which applies the same rules to the source in the archive.

Every reason not to use a cache entry (missing, unreadable, stale, bad magic, wrong key,
damaged, ...) is told to ``cache_trace(cache_path, reason)``, as pytest's ``_read_pyc`` tells
its ``trace``.  It is None unless ``CONHOOK_TRACE`` is set when conhook is imported (then
it writes to stderr, as ``_trace`` does); tests set their own.  Off, it costs a None check.
"""
from __future__ import annotations

import _imp
import importlib
import importlib.machinery
import importlib.util
import io
import itertools
import marshal
import os
import struct
import sys
import sysconfig
import token
import types
import zipimport
from collections.abc import Callable, Iterator

API_MODULE = "con"
_OWN_PACKAGE = __name__.partition(".")[0]
# The candidates: ``from con[.x] import ...``, or ``import`` with ``con``/``conhook`` as one of
# the dotted names it lists (not as an alias: ``import numpy as con`` does not opt in), at the
# start of a line (after the UTF-8 BOM on the first); ``lazy`` ones (3.15+) too.  Text only: the
# tokens then tell whether the line is a statement or lies inside a string (``_statement_lines``).
# (Compiled on first use: a warm start that imports no module of the user's needs no ``re``.)
_OPT_IN = (
    rb"^(?:\xef\xbb\xbf)?(?:lazy[ \t]+)?(?:from[ \t]+(?:con|conhook)(?:\.\w+)*[ \t]+import\b"
    rb"|import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*(?:con|conhook)\b)")


def imports_con(data: bytes) -> bool:
    """Whether source ``data`` has a top-level import statement naming con or conhook.

    Text first, tokens second.  A module the hook declines is scanned as text only, and
    only at its lines holding ``import`` (``_OPT_IN.search`` alone would try the pattern at
    every byte): most have no candidate line at all.  A candidate is then confirmed by the
    tokenizer, which tells an import statement from a line of a docstring or of any other
    string that happens to read ``import con``.
    """
    candidates = _candidate_lines(data)
    first = next(candidates, None)
    return first is not None and _statement_lines(data, itertools.chain((first,), candidates))


def _candidate_lines(data: bytes) -> Iterator[int]:
    """The numbers (from 1) of the lines that ``_OPT_IN`` matches, in order."""
    import re
    opt_in = re.compile(_OPT_IN, re.MULTILINE)  # (re caches it)
    start = line_start = 0
    number = 1
    while (found := data.find(b"import", start)) >= 0:
        line = data.rfind(b"\n", 0, found) + 1
        if opt_in.match(data, line):
            number += data.count(b"\n", line_start, line)
            line_start = line
            yield number
        start = data.find(b"\n", found) + 1
        if not start:
            return


def _statement_lines(data: bytes, candidates: Iterator[int]) -> bool:
    """Whether one of the ``candidates`` (line numbers, ascending) starts a statement: its
    first token is the ``import`` or ``from`` keyword (or 3.15's soft keyword ``lazy`` before
    one) in column 0, after the end of a line.

    Source the tokenizer cannot read up to a candidate is left to the compiler, which
    reports the error: the candidate counts (as the text rule counted it).
    """
    import tokenize  # here: most processes never need it
    tokens = tokenize.tokenize(io.BytesIO(data).readline)
    previous, pending = token.NEWLINE, None  # the last code token before the pending one
    try:
        for line in candidates:
            # Up to the line's first token; DEDENTs (placed at its start) are passed too.
            while pending is None or pending.start[0] < line or pending.type == token.DEDENT:
                if pending is not None and pending.type not in _NOT_CODE:
                    previous = pending.type
                pending = next(tokens, None)
                if pending is None:
                    return False
            if (pending.start == (line, 0) and pending.type == token.NAME
                    and pending.string in ("import", "from", "lazy") and previous in _ENDS_A_LINE):
                return True
    except (tokenize.TokenError, SyntaxError):
        return True
    return False


# Tokens that are not code, and the code tokens after which a new statement may begin.
_NOT_CODE = frozenset({token.NL, token.COMMENT, token.ENCODING})
_ENDS_A_LINE = frozenset({token.NEWLINE, token.INDENT, token.DEDENT})


_TRACING = bool(os.environ.get("CONHOOK_TRACE"))  # read once, when conhook is imported


def _trace(message: str) -> None:
    """Diagnostics for the hook on stderr, off unless CONHOOK_TRACE is set."""
    if _TRACING:
        sys.stderr.write(f"conhook: {message}\n")


def _trace_cache_to_stderr(path: str, reason: str) -> None:
    _trace(f"not using cache {path}: {reason}")


# Told (cache path, reason) each time a cache entry is not used; None turns tracing off.
cache_trace: Callable[[str, str], None] | None = _trace_cache_to_stderr if _TRACING else None


def _declined(path: str, reason: str) -> None:
    """Tell ``cache_trace`` why the cache entry at ``path`` is not used; return None."""
    if cache_trace is not None:
        cache_trace(path, reason)


# The file that marks a package in site-packages as a con library (docs/libraries.md).
LIBRARY_MARKER = "con.library"


def _roots(*keys: str) -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(sorted({os.path.join(os.path.realpath(paths[key]), "") for key in keys if key in paths}))


class ConFinder:
    """Finds modules to rewrite; everything else is passed through untouched."""

    def __init__(self, paths=(), packages=()):
        self.paths = tuple(os.path.join(os.path.abspath(p), "") for p in paths)
        self.packages = tuple(packages)
        self.site_roots = _roots("purelib", "platlib")
        # (site-packages may lie inside the standard library's directory: it is looked at first)
        self.skip_roots = _roots("stdlib", "platstdlib") + self.site_roots
        self._libraries: dict[str, bool] = {}  # a package's directory in site-packages: marked?

    def add(self, paths=(), packages=()) -> None:
        """Rewrite the modules under ``paths`` and in ``packages`` too."""
        self.paths += tuple(p for p in (os.path.join(os.path.abspath(p), "") for p in paths) if p not in self.paths)
        self.packages += tuple(p for p in packages if p not in self.packages)

    def find_spec(self, fullname, path=None, target=None):
        if fullname == API_MODULE:
            return importlib.util.spec_from_loader(API_MODULE, _ApiLoader())
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec  # not found, or not plain source (extension, namespace, .pyc)
        opted_in, cached = self.decide(fullname, spec.origin)
        if not opted_in:
            return spec
        _trace(f"rewriting {fullname} ({spec.origin})")
        spec.loader = ConLoader(fullname, spec.origin, cached)
        return spec

    def opts_in(self, fullname: str, origin: str) -> bool:
        return self.decide(fullname, origin)[0]

    def decide(self, fullname: str, origin: str) -> tuple[bool, tuple[str, memoryview] | None]:
        """Whether the module opts in, and its cache entry (path, marshalled code) if that
        was read to find out."""
        by_name_or_place = self._by_name_or_place(fullname, origin)
        if by_name_or_place is not None:
            return by_name_or_place, None
        # A fresh cache entry of a module that opted itself in answers for its source,
        # which then need not be read at all (a warm import reads one file, as CPython's).
        cached = read_cache_entry(origin, self_opted_in=True)
        return (True, cached) if cached is not None else (source_imports_con(origin), None)

    def decide_archived(self, fullname: str, origin: str, source: bytes) -> bool:
        """Whether a module in a zip archive opts in, its ``source`` read from there."""
        by_name_or_place = self._by_name_or_place(fullname, origin)
        return imports_con(source) if by_name_or_place is None else by_name_or_place

    def _by_name_or_place(self, fullname: str, origin: str) -> bool | None:
        """Whether the module's name or place decides that it opts in (True) or not (False);
        None when its own text decides."""
        if fullname.partition(".")[0] == _OWN_PACKAGE:
            return False  # conhook itself uses no con syntax (and its runner must start fast)
        if any(fullname == p or fullname.startswith(p + ".") for p in self.packages):
            return True
        if self.paths and origin.startswith(self.paths):
            return True
        if origin.startswith(self.skip_roots) and not (origin.startswith(self.site_roots) and self._in_library(origin)):
            return False  # the standard library and site-packages never opt in by themselves
        return None

    def _in_library(self, origin: str) -> bool:
        """Whether ``origin`` (in site-packages) lies in a package marked as a con library."""
        for root in self.site_roots:
            if origin.startswith(root):
                end = origin.find(os.sep, len(root))
                if end < 0:
                    return False  # a module of its own, not in a package
                directory = origin[:end]
                marked = self._libraries.get(directory)
                if marked is None:
                    marked = self._libraries[directory] = os.path.isfile(os.path.join(directory, LIBRARY_MARKER))
                return marked
        return False

    def invalidate_caches(self):
        self._libraries.clear()  # (importlib.invalidate_caches(): a library may have been installed)


def source_imports_con(origin: str) -> bool:
    try:
        with open(origin, "rb") as file:
            data = file.read()
    except OSError:
        return False  # let the ordinary loader report it
    return imports_con(data)


class ConLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose code goes through the con pipeline and its own cache.

    ``cached`` is the module's cache entry (path, marshalled code) when the finder has
    read it already.
    """

    def __init__(self, fullname, path, cached=None):
        super().__init__(fullname, path)
        self._cached = cached

    def create_module(self, spec):
        return _con_module(spec)

    def get_code(self, fullname):
        cached, self._cached = self._cached, None  # good for one load (reload finds anew)
        if cached is not None:
            path, entry = cached
            code = _unmarshal(entry, path)
            if code is not None:
                return code
        source_path = self.get_filename(fullname)
        stat = os.stat(source_path)
        cache_path = cache_path_for(source_path)
        code = read_cache(cache_path, stat) if cache_path else None
        if code is None:
            from ._compiler import pipeline
            source = self.get_data(source_path)
            try:
                code = pipeline.compile_con(source, source_path)
            except SyntaxError as error:
                return _syntax_error_code(error, sys._getframe(1))
            if cache_path and not sys.dont_write_bytecode:
                write_cache(cache_path, code, stat, self_opted_in=imports_con(source))
        return code


class ConZipImporter(zipimport.zipimporter):
    """``zipimport`` with con modules (docs/spec.md §2.1): a module in a zip archive (a zipapp,
    an archive on ``sys.path``) whose source there opts in goes through the con pipeline, on
    every import (nothing is written into an archive, as ``zipimport`` writes nothing); every
    other module is ``zipimport``'s.  It is a path hook while conhook's finder is installed.
    (``zipimport`` itself compiles a module to find it, as plain Python: ``sibling`` would be
    a syntax error there, and ``f@(x)`` a matrix product.)"""

    def __init__(self, path):
        super().__init__(path)
        self._con_origins: dict[str, str] = {}  # the con modules found here: name -> source path

    def find_spec(self, fullname, target=None):
        finder = installed_finder()
        origin = self._con_origin(finder, fullname) if finder is not None else None
        if origin is None:
            self._con_origins.pop(fullname, None)
            return super().find_spec(fullname, target)
        self._con_origins[fullname] = origin
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=self,
            submodule_search_locations=[] if origin.endswith("__init__.py") else None)

    def _con_origin(self, finder, fullname):
        """The source path of ``fullname`` here if it is a con module, else None."""
        try:
            package = self.is_package(fullname)  # (reads the archive's table only)
        except zipimport.ZipImportError:
            return None
        name = fullname.rpartition(".")[2]
        origin = os.path.join(self.archive, self.prefix, *((name, "__init__.py") if package else (name + ".py",)))
        try:
            source = self.get_data(origin)
        except OSError:
            return None  # compiled code only: zipimport's
        return origin if finder.decide_archived(fullname, origin, source) else None

    def create_module(self, spec):
        return _con_module(spec) if spec.name in self._con_origins else None

    def get_filename(self, fullname):
        origin = self._con_origins.get(fullname)
        return super().get_filename(fullname) if origin is None else origin

    def get_code(self, fullname):
        origin = self._con_origins.get(fullname)
        if origin is None:
            return super().get_code(fullname)
        from ._compiler import pipeline
        try:
            return pipeline.compile_con(self.get_data(origin), origin)
        except SyntaxError as error:
            return _syntax_error_code(error, sys._getframe(1))


def _con_module(spec):
    """A con module's object, its namespace prepared (``prepare_namespace``).

    (The namespace is prepared here and ``exec_module`` is importlib's own, so that no frame of
    conhook stands between importlib's frames: an exception raised while the module runs then
    shows the traceback CPython shows, importlib frames removed.  ``reload()`` keeps the module,
    and with it what was put there the first time.)"""
    from ._runtime.prejoin import prepare_namespace
    module = types.ModuleType(spec.name)
    prepare_namespace(module.__dict__)
    return module


def _syntax_error_code(error: SyntaxError, caller):
    """For importlib's ``exec_module`` (``caller``), code that raises ``error`` as CPython's
    import raises a syntax error; for any other caller, ``error`` itself is raised."""
    if caller.f_code is not _EXEC_MODULE:
        raise error
    return _raising_as_importlib(error)


_EXEC_MODULE = importlib.machinery.SourceFileLoader.exec_module.__code__


def _raising_as_importlib(error):
    """Code that raises `error` from a frame that CPython's import drops from tracebacks.

    An ``import`` statement's traceback loses its importlib frames only where they end in
    ``_call_with_frames_removed`` (CPython's ``remove_importlib_frames``), and our
    ``get_code`` between them would keep them all, and itself.  So ``exec_module`` gets code
    that raises the ``SyntaxError`` from a frame that looks like that last importlib one: the
    user sees what CPython shows for a syntax error in an imported module.
    """
    consts = list(_FRAMES_REMOVED.co_consts)
    consts[consts.index(_PLACEHOLDER)] = error.with_traceback(None)
    return _FRAMES_REMOVED.replace(co_consts=tuple(consts))


# (A string stands for the error: every version loads it from co_consts, where 3.15 loads
# None by an instruction of its own.)
_PLACEHOLDER = "conhook: the syntax error"
_FRAMES_REMOVED = compile(f"raise {_PLACEHOLDER!r}", "<frozen importlib._bootstrap_external>", "exec").replace(
    co_name="_call_with_frames_removed", co_qualname="_call_with_frames_removed")


class _ApiLoader:
    """Serves ``import con`` as the public API module (there is no file named con)."""

    def create_module(self, spec):
        return importlib.import_module("conhook.api")

    def exec_module(self, module):
        pass


# -- the cache ------------------------------------------------------------------------

def _cache_key() -> bytes:
    from ._version import __version__
    return f"conhook {__version__} bytecode {_bytecode_version()}".encode()


def _bytecode_version() -> str:
    """The ``bytecode`` library's version, read without importing the library when a
    cached import does not need it (importing it costs more than the whole import)."""
    module = sys.modules.get("bytecode")
    if module is not None:
        return module.__version__
    if _installed_bytecode_version is None:
        _read_installed_bytecode_version()
    return _installed_bytecode_version


_installed_bytecode_version: str | None = None


def _read_installed_bytecode_version() -> None:
    """From ``bytecode/version.py`` on ``sys.path`` (a few stats: ``find_spec`` would
    list whole directories), or else from the imported library."""
    global _installed_bytecode_version
    for entry in sys.path:
        try:
            with open(os.path.join(entry or ".", "bytecode", "version.py"), encoding="utf-8") as file:
                line = next((line for line in file if line.startswith("__version__ = ")), "")
        except OSError:
            continue
        if line:
            _installed_bytecode_version = line.partition("=")[2].strip().strip("'\"")
            return
        break
    import bytecode
    _installed_bytecode_version = bytecode.__version__


# The header: magic number, the source's mtime (ns) and size, and whether the source
# opts itself in (so that a warm import need not read it: ``ConFinder``).
_HEADER = struct.Struct("<4sqq?")


def cache_path_for(source_path: str) -> str | None:
    """``__pycache__/name.<tag>-conhook.pyc`` beside the ordinary one, or None."""
    try:
        ordinary = importlib.util.cache_from_source(source_path)
    except NotImplementedError:
        return None
    tag = sys.implementation.cache_tag
    head, sep, tail = ordinary.rpartition(tag)
    return f"{head}{tag}-conhook{tail}" if sep else None


def read_cache(path: str, stat: os.stat_result) -> types.CodeType | None:
    """The cached code, or None if it is missing, stale or damaged in any way (the reason
    goes to ``cache_trace``)."""
    entry = _read_entry(path, stat, self_opted_in=False)
    return None if entry is None else _unmarshal(entry, path)


def read_cache_entry(source_path: str, self_opted_in: bool) -> tuple[str, memoryview] | None:
    """The path and marshalled code of the source's fresh cache entry (when
    ``self_opted_in``, only of a source that opts itself in), or None.

    No path (no cache tag) or no source to stat is no entry to decline: nothing is traced.
    """
    path = cache_path_for(source_path)
    if path is None:
        return None
    try:
        stat = os.stat(source_path)
    except OSError:
        return None
    entry = _read_entry(path, stat, self_opted_in)
    return None if entry is None else (path, entry)


def _read_entry(path: str, stat: os.stat_result, self_opted_in: bool) -> memoryview | None:
    """The marshalled code of the entry at ``path``, or None with the reason traced."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return _declined(path, "missing")
    except OSError as error:
        return _declined(path, f"unreadable: {error.strerror or error}")
    key = _cache_key()
    try:
        magic, mtime, size, opted_in = _HEADER.unpack_from(data)
    except struct.error:
        return _declined(path, "damaged: shorter than the header")
    if magic != importlib.util.MAGIC_NUMBER:
        return _declined(path, "bad magic (another Python's bytecode)")
    if (mtime, size) != (stat.st_mtime_ns, stat.st_size):
        return _declined(path, "stale: source mtime or size changed")
    if self_opted_in and not opted_in:
        return _declined(path, "made for install(): the source does not opt in by itself")
    start = _HEADER.size
    if data[start:start + len(key)] != key:
        return _declined(path, "wrong key (another conhook or bytecode version)")
    return memoryview(data)[start + len(key):]


def _unmarshal(data: memoryview, path: str) -> types.CodeType | None:
    """The code marshalled in ``data`` (the entry at ``path``), or None with the reason traced."""
    try:
        code = marshal.loads(data)
    except Exception:  # noqa: BLE001 - a damaged cache is only a cache miss
        return _declined(path, "damaged: could not unmarshal")
    if not isinstance(code, types.CodeType):
        return _declined(path, "damaged: not a code object")
    return code


def write_cache(path: str, code: types.CodeType, stat: os.stat_result, self_opted_in: bool = False) -> None:
    """Write atomically (a temporary file of our own, then rename); failure only skips caching.

    As CPython's ``_write_atomic`` for a ``.pyc``: the entry gets the source's permission bits
    (plus the owner's write bit; the umask applies), so a cache never shows more than its
    source does; the temporary file is created with ``O_CREAT | O_EXCL`` (mode ``"x"``), so a
    file or symlink already at its name is never written through.  Its name is random: no one
    can plant anything there ahead, and a temporary file left by a crash never collides with
    a later run's.
    """
    data = (_HEADER.pack(importlib.util.MAGIC_NUMBER, stat.st_mtime_ns, stat.st_size, self_opted_in)
            + _cache_key() + marshal.dumps(code))
    mode = (stat.st_mode | 0o200) & 0o666
    temporary = _temporary_name(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "xb", opener=lambda name, flags: os.open(name, flags, mode)) as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        _trace(f"not caching {path}: {error}")
        if not isinstance(error, FileExistsError):  # (then the file is not ours to remove)
            try:
                os.unlink(temporary)
            except OSError:
                pass


def compile_cached(filename: str) -> types.CodeType:
    """The code of the program at ``filename`` (the runner's main script, a ``multiprocessing``
    child's copy of it), rewritten whether or not it opts in: from the cache entry an import
    of it would use, if fresh, else compiled (importing the compiler) and cached.  Raises
    ``OSError`` if the file cannot be read, ``SyntaxError`` if it does not compile."""
    stat = os.stat(filename)
    cache_path = cache_path_for(filename)
    code = read_cache(cache_path, stat) if cache_path else None
    if code is not None:
        _imp._fix_co_filename(code, filename)  # (as CPython's own .pyc: the name it was run by)
        return code
    with open(filename, "rb") as file:
        source = file.read()
    from ._compiler import pipeline
    code = pipeline.compile_con(source, filename)
    if cache_path and not sys.dont_write_bytecode:
        write_cache(cache_path, code, stat, self_opted_in=imports_con(source))
    return code


def _temporary_name(path: str) -> str:
    """Beside ``path`` (the same file system, for the rename), under a name no one can guess."""
    return f"{path}.{os.urandom(8).hex()}.tmp"


# -- installation -----------------------------------------------------------------------

def add(paths=(), packages=()) -> ConFinder:
    """Add ``paths`` and ``packages`` to our finder's (putting one on ``sys.meta_path`` if
    none is there): what ``conhook.install()`` does."""
    finder = installed_finder()
    if finder is None:
        return install(paths, packages)
    finder.add(paths, packages)
    return finder


def installed_finder() -> ConFinder | None:
    """Our finder on ``sys.meta_path``, or None."""
    return next((f for f in sys.meta_path if isinstance(f, ConFinder)), None)


def install(paths=(), packages=()) -> ConFinder:
    """Put a finder on ``sys.meta_path`` (replacing an earlier one of ours)."""
    uninstall()
    finder = ConFinder(paths, packages)
    index = next((i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
                 len(sys.meta_path))
    sys.meta_path.insert(index, finder)
    # Archives: ours before zipimport's; the importers zipimport made already are made again.
    index = next((i for i, hook in enumerate(sys.path_hooks) if hook is zipimport.zipimporter), 0)
    sys.path_hooks.insert(index, ConZipImporter)
    _forget_importers(zipimport.zipimporter)
    return finder


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, ConFinder)]
    sys.path_hooks[:] = [hook for hook in sys.path_hooks if hook is not ConZipImporter]
    _forget_importers(ConZipImporter)


def _forget_importers(kind: type) -> None:
    """Drop the cached path importers of exactly ``kind``: the path hooks make them anew."""
    for entry, importer in list(sys.path_importer_cache.items()):
        if type(importer) is kind:
            del sys.path_importer_cache[entry]
