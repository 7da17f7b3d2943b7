"""conhook: lightweight cooperative threads for Python with an explicit switch syntax.

``import conhook`` installs the import hook: from then on, modules that opt in (they
import ``con`` or ``conhook`` at top level, or lie under a path or package given to
``install``), installed con libraries' among them, may use ``f@(args)`` and ``sibling f@(args)``.  The API is the module
``con``; the runner is ``python -m conhook script.py``.
"""
from __future__ import annotations

from ._version import __version__, check_python

check_python()


def compile_con(source, filename="<con>", mode="exec", *, toplevel=False, optimize=-1):
    """Compile con source into a code object (see ``conhook._compiler.pipeline.compile_con``)."""
    from ._compiler.pipeline import compile_con as compile_
    return compile_(source, filename, mode, toplevel=toplevel, optimize=optimize)


def install(paths=(), packages=()):
    """Rewrite modules that opt in, and every module under ``paths`` or in ``packages``.

    Each call adds to the earlier ones (an application's and its libraries' alike); installed
    con libraries need none (docs/libraries.md).  ``import conhook`` calls it with no arguments.
    """
    from . import _import_hook
    _import_hook.add(paths, packages)


def uninstall():
    """Remove the import hook; modules already imported stay as they are."""
    from . import _import_hook
    _import_hook.uninstall()


def load_ipython_extension(ipython):
    """``%load_ext conhook``: register the ``%%con`` cell magic (docs/interactive.md)."""
    from ._ipython import load_ipython_extension as load
    load(ipython)


install()

__all__ = ["install", "uninstall", "compile_con", "__version__"]
