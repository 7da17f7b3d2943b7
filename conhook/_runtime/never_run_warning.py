"""A clear warning for a non-atomic call object that is dropped without being run.

Calling a non-atomic function without ``@`` makes a call object (a coroutine) that does
nothing; when it is garbage-collected un-started, CPython warns "coroutine 'f' was never
awaited" through ``warnings._warn_unawaited_coroutine``.  For coroutines of con code (their
module has the reserved ``__con__``) we replace that function's message by one that says
what went wrong in con's words and how to fix it; every other coroutine (asyncio, trio, ...)
gets CPython's own warning, unchanged.  It is still a ``RuntimeWarning`` that contains
"was never awaited", so filters written for CPython's keep working.

The warning is issued at the line where the object was dropped, which for the usual mistake
(``f()`` written for ``f@()``) is where it was made.  Where it was made is known only while
coroutine origin tracking is on (``CONHOOK_DEBUG=1``, see ``diagnostics``): measured on 3.12, it
makes a non-atomic call that does not suspend cost 180 ns instead of 100 ns at depth 1 and
760 ns at depth 16, so it is not on by default.

Cost otherwise: nothing per call; a few microseconds per dropped call object.
"""
from __future__ import annotations

import warnings

from .._reserved_names import RUNTIME_NAME

_original = getattr(warnings, "_warn_unawaited_coroutine", None)


def _is_con(coro):
    frame = getattr(coro, "cr_frame", None)
    return frame is not None and RUNTIME_NAME in frame.f_globals


def _warn_unrun(coro):
    if not _is_con(coro):
        return _original(coro)
    name = coro.__qualname__
    short = coro.__name__
    lines = [f"non-atomic call {name}() was created but never run (coroutine '{name}' was "
             f"never awaited): write {short}@(...) to run it in this thread, or "
             f"`sibling {short}@(...)` to start a thread that runs it.\n"]
    if coro.cr_origin is not None:
        import linecache
        import traceback

        def extract():
            for filename, lineno, funcname in reversed(coro.cr_origin):
                yield filename, lineno, funcname, linecache.getline(filename, lineno)
        lines.append("It was created at (most recent call last):\n")
        lines += traceback.format_list(list(extract()))
    else:
        lines.append("(Set CONHOOK_DEBUG=1 to see where it was created.)")
    # No source=coro (CPython's passes it): the warning would then end with tracemalloc's
    # "Enable tracemalloc to get the object allocation traceback", when CONHOOK_DEBUG is the
    # way to see where the call object was made.
    warnings.warn("".join(lines).rstrip("\n"), category=RuntimeWarning, stacklevel=2)


def install():
    """Make CPython's "never awaited" warning speak con for con coroutines (idempotent)."""
    if _original is not None and warnings._warn_unawaited_coroutine is _original:
        warnings._warn_unawaited_coroutine = _warn_unrun
