"""Helpers shared by the runtime tests."""
from __future__ import annotations

import functools

from conhook import _scope as __con__
from conhook.api import bootstrap


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
            await __con_scope__.join()
    return function


def run(fn, *args):
    """bootstrap(fn, *args): a shorter name for tests."""
    return bootstrap(fn, *args)
