"""Helpers shared by the runtime tests.

The test modules that spell out the compiler's expansion by hand use its reserved ``__con_``
names, which the con rewrite refuses in a module that opts in (docs/spec.md §2.1: a module opts in by
importing ``con`` or ``conhook`` with an import statement).  So this module and those test
modules reach conhook through ``importlib`` and through the names below, and are left as they
are by the import hook.
"""
from __future__ import annotations

import functools
import importlib

con = importlib.import_module("conhook.api")
__con__ = importlib.import_module("conhook._runtime.prejoin")
_io = importlib.import_module("conhook._runtime.fd_waits")
_kernel = importlib.import_module("conhook._runtime.kernel")
_threads = importlib.import_module("conhook._runtime.threads")
_traps = importlib.import_module("conhook._runtime.traps")
bootstrap = con.bootstrap


def prejoining(body):
    """Wrap ``async def body(scope, ...)`` exactly as the compiler wraps a function with siblings.

    The body receives the scope; ``scope.start(f, *args)`` is ``sibling f@(*args)``.
    """
    @functools.wraps(body)
    async def function(*args, **kwargs):
        __con_scope__ = __con__.prejoin()
        try:
            return await body(__con_scope__, *args, **kwargs)
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            try:
                await __con_scope__.join()
            except BaseException as __con_exc__:
                __con_scope__.rethrown(__con_exc__)
                raise
    return function


def run(fn, *args):
    """bootstrap(fn, *args): a shorter name for tests."""
    return bootstrap(fn, *args)
