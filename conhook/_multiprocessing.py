"""``multiprocessing`` children of a con program run con code (the spawn and forkserver methods).

Such a child is a fresh ``python`` that re-runs the parent's main script as ``__mp_main__``
(``multiprocessing.spawn.prepare``), with plain ``runpy``: con syntax would be a
``SyntaxError`` there, and ``import con`` would fail.  So, in a program that the runner runs:

* the parent's ``spawn.get_preparation_data`` (what every spawn and forkserver child is sent
  before anything else) gains one entry, whose unpickling in the child imports conhook (which
  installs the import hook) and replaces the child's ``spawn._fixup_main_from_path`` with
  ``_run_script_as_mp_main`` (and ``_fixup_main_from_name``, for ``-m``, with
  ``_run_module_as_mp_main``), before ``prepare`` reads the data;
* these run the main's rewritten code, from the cache the parent filled
  (``_import_hook.compile_cached``), as ``__mp_main__``, with the globals CPython's would give
  it (``runpy.run_path``, ``runpy.run_module``).

The forkserver itself (3.14+ runs the main script in it, from a command line, to fork
children that have it already) is not given the script: its children run it as above.
A zipapp's or a directory's ``__main__`` is not re-run at all (CPython's rule for a main
module named ``__main__``).  ``multiprocessing`` is not imported for this: the parent's patch waits on
``sys.meta_path`` until the program imports ``multiprocessing.spawn`` (start-up stays lean).
The fork method needs none of it: its children are copies of the parent.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

_SPAWN = "multiprocessing.spawn"
_KEY = "conhook"  # the entry in the preparation data (prepare() reads only the keys it knows)
_FORKSERVER = "ignore"  # the name the forkserver asks the preparation data for, to start itself


def children_run_con_code() -> None:
    """Patch ``multiprocessing.spawn`` now if it is imported, else as soon as it is."""
    module = sys.modules.get(_SPAWN)
    if module is not None:
        _patch_parent(module)
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


class _PatchOnImport:
    """A finder that finds nothing: it sees ``multiprocessing.spawn`` being imported, leaves
    ``sys.meta_path``, and has the module patched once it has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _SPAWN:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # (as if we had never been here)
        self.loader.exec_module(module)
        _patch_parent(module)


def _patch_parent(spawn) -> None:
    original = spawn.get_preparation_data
    if getattr(original, "_conhook", False):
        return

    def get_preparation_data(name):
        data = original(name)
        if name == _FORKSERVER:
            # The forkserver's own start (3.14+) runs the main script from this entry with plain
            # runpy, in a process started by a command line that conhook cannot reach.  Without
            # it the forkserver runs no main, and each child runs it as a spawned one does.
            data.pop("init_main_from_path", None)
        data[_KEY] = _ChildSetup()
        return data

    get_preparation_data._conhook = True
    get_preparation_data.__wrapped__ = original
    spawn.get_preparation_data = get_preparation_data


class _ChildSetup:
    """Pickled into the preparation data; unpickled in the child as ``_setup_child()``."""

    def __reduce__(self):
        return _setup_child, ()


def _setup_child() -> None:
    import conhook  # noqa: F401 - installs the import hook
    from multiprocessing import spawn
    for name, replacement in (("_fixup_main_from_path", _run_script_as_mp_main),
                              ("_fixup_main_from_name", _run_module_as_mp_main)):
        original = getattr(spawn, name)
        if original is not replacement:
            replacement.original = original
            setattr(spawn, name, replacement)


def _run_script_as_mp_main(main_path: str) -> None:
    """``spawn._fixup_main_from_path``, with the script's code rewritten by conhook."""
    if getattr(sys.modules["__main__"], "__file__", None) == main_path or not os.path.isfile(main_path):
        return _run_script_as_mp_main.original(main_path)  # (nothing to run, or CPython's error)
    from conhook._import_hook import compile_cached
    # As runpy.run_path sets them for a script.
    _run_as_mp_main(compile_cached(main_path), main_path, dict(
        __file__=main_path, __cached__=None, __loader__=None, __package__="", __spec__=None))


def _run_module_as_mp_main(name: str) -> None:
    """``spawn._fixup_main_from_name``, with the module's code rewritten by conhook (whether or
    not it opts in, as the runner rewrote it in the parent)."""
    current_spec = getattr(sys.modules["__main__"], "__spec__", None)
    spec = None
    if name != "__main__" and not name.endswith(".__main__") and getattr(current_spec, "name", None) != name:
        spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not os.path.isfile(spec.origin):
        return _run_module_as_mp_main.original(name)  # (nothing to run, or not a file we compile)
    from conhook._import_hook import compile_cached
    # As runpy.run_module sets them.
    _run_as_mp_main(compile_cached(spec.origin), spec.origin, dict(
        __file__=spec.origin, __cached__=spec.cached, __loader__=spec.loader, __package__=spec.parent,
        __spec__=spec))


def _run_as_mp_main(code, filename: str, attributes: dict) -> None:
    """Run ``code`` as ``__mp_main__`` (``sys.argv[0]`` is ``filename`` meanwhile), which then
    becomes ``__main__`` too: what ``spawn``'s fix-ups do."""
    from multiprocessing import spawn

    from conhook._compiler.versions import MODULES_HAVE_CACHED
    from conhook._runtime.prejoin import prepare_namespace
    if not MODULES_HAVE_CACHED:  # (3.15: runpy sets no __cached__)
        del attributes["__cached__"]
    spawn.old_main_modules.append(sys.modules["__main__"])
    module = types.ModuleType("__mp_main__")
    namespace = module.__dict__
    namespace.update(attributes)
    prepare_namespace(namespace)
    argv0 = sys.argv[0] if sys.argv else None
    sys.modules["__mp_main__"] = module
    if argv0 is not None:
        sys.argv[0] = filename
    try:
        exec(code, namespace)
    except BaseException:
        del sys.modules["__mp_main__"]
        raise
    finally:
        if argv0 is not None:
            sys.argv[0] = argv0
    sys.modules["__main__"] = module
