"""Helpers shared by the system tests (as tests/runtime/helpers.py: reached through
``importlib``, so that the import hook leaves this module alone)."""
from __future__ import annotations

import functools
import importlib

con = importlib.import_module("conhook.api")
__con__ = importlib.import_module("conhook._runtime.prejoin")


def prejoining(body):
    """Wrap ``async def body(scope, ...)`` as the compiler wraps a function with siblings;
    ``scope.start(f, *args)`` is ``sibling f@(*args)``."""
    @functools.wraps(body)
    async def function(*args, **kwargs):
        __con_scope__ = __con__.prejoin()
        try:
            return await body(__con_scope__, *args, **kwargs)
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()
    return function


def run(fn, *args):
    """bootstrap(fn, *args)."""
    return con.bootstrap(fn, *args)
