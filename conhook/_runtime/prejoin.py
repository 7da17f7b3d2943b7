"""Prejoin scopes: what the compiler wraps around each function that starts siblings (docs/spec.md §1.3).

The compile pipeline injects this module as ``__con__`` and emits, for such a function::

    __con_scope__ = __con__.prejoin()
    try:
        ...body...                  # each `sibling F@(A, k=v)` is  __con_scope__.start(F, A, k=v)
    except BaseException as __con_exc__:
        if await __con_scope__.failed(__con_exc__):
            raise
    finally:
        try:
            await __con_scope__.join()
        except BaseException as __con_exc__:
            __con_scope__.rethrown(__con_exc__)
            raise

The rule: the invocation cannot return, with a value or an exception, until every thread it
started has finished.  The first failure (of the body or of a child; not the ``Interrupted``
this scope delivered itself) interrupts the others and the body; when all have finished it
propagates unwrapped with its own traceback.  Later failures are attached to it: a PEP 678
note naming the thread and the error, and the exception object in its ``later_failures``
list.  Waiting for the children is not an interruption point.

Discussion: a child's failure is raised by ``join`` into the awaiting frame through the
kernel (a ``Throw`` trap, or ``thread.pending`` when the owner was waiting), never by a
``raise`` here, so its traceback reads: the owner's frame, then the child's own frames.
``failed`` returns False when the body's exception is not the first failure; then the
compiled code leaves its ``except`` block and ``join`` raises the first failure outside it,
so the body's exception does not become its ``__context__``.

Where the owner's frame points: where the owner was when the scope caught the failure.  If
it had finished its body, that is the wait at its end, which the compiler places on the
body's last statement.  If the failure interrupted it in a non-atomic call, the
``Interrupted`` that came back to ``failed`` holds the frame's entry at that call (the
``sibling`` statement's, if the start failed there); ``_close`` puts a copy of that entry
(``types.TracebackType``: same frame, same instruction, so the same line and carets) in
front of the failure's traceback.  Raising it at the wait adds the wait's entry in front of
that one again; ``rethrown`` drops it, and the bare ``raise`` after it adds none.  (asyncio's
TaskGroup shows its ``async with`` line instead: a prejoin scope has no statement of its
own, and the line the owner was at says more.  docs/spec.md §1.3.)
"""
from __future__ import annotations

import sys
import types
from collections.abc import Awaitable
from contextvars import copy_context

from .._reserved_names import CO_COROUTINE, CO_ITERABLE_COROUTINE, RUNTIME_NAME
from .errors import Interrupted
from .kernel import current_kernel, state, strip_internal_frames
from .threads import (Thread, clear_interrupt, interrupt, interrupt_threads, interrupted_threads,
                       set_interrupt, thread_name)
from .traps import DONE, Throw, Trap

_OPEN, _FAILED_WAIT, _JOIN_WAIT, _CLOSED = range(4)
_new_thread = object.__new__


def prepare_namespace(namespace: dict) -> dict:
    """Give a namespace what compiled con code refers to: this module, as ``__con__``."""
    namespace[RUNTIME_NAME] = sys.modules[__name__]
    return namespace


def prejoin():
    """Open the prejoin scope of a new invocation, owned by the current thread."""
    kernel = state.kernel
    if kernel is None:
        kernel = current_kernel()  # raises the explanatory RuntimeError
    owner = kernel.current
    scope = Scope(kernel, owner)
    scopes = owner.scopes
    if scopes is None:
        owner.scopes = [scope]
    else:
        scopes.append(scope)
    return scope


def background():
    """Open the scope of an input's top level whose threads outlive the input: a session's
    background scope (``session``; the compiler emits this call for such input instead of
    ``prejoin()``)."""
    kernel = state.kernel
    if kernel is None:
        kernel = current_kernel()  # raises the explanatory RuntimeError
    scope = getattr(kernel.current.scope, "background", None)
    if scope is None:
        raise RuntimeError("this input was compiled to leave its threads in the background, which only "
                           "an input run by a session can (%%con --background in Jupyter)")
    return scope


def isawaitable(value):
    """``inspect.isawaitable``."""
    return (type(value) is types.CoroutineType or isinstance(value, Awaitable)
            or (type(value) is types.GeneratorType and value.gi_code.co_flags & CO_ITERABLE_COROUTINE != 0))


async def plain_call(fn, args, kwargs):
    """A thread that runs an ordinary function; if it returns an awaitable, that is run too."""
    result = fn(*args, **kwargs)
    if isawaitable(result):
        result = await result
    return result


class Scope(Trap):
    __slots__ = ("kernel", "owner", "children", "live", "first", "first_in_body", "state",
                 "closing", "caught_at")
    interruptible = False  # waiting for the children is not an interruption point
    label = None

    def __init__(self, kernel, owner):
        self.kernel = kernel
        self.owner = owner
        # The threads it started, in the order they were started.  A finished thread has no
        # coroutine any more; finished ones are dropped from the list in bulk, once they are
        # more than half of it, so memory stays proportional to the live threads.
        self.children = []
        self.live = 0
        self.first = self.caught_at = None
        self.first_in_body = self.closing = False
        self.state = _OPEN

    @property
    def reason(self):
        first = self.first
        where = "the function that started it" if self.first_in_body else "a sibling thread"
        return f"{where} failed with {type(first).__qualname__}: {first}"

    def __repr__(self):
        return f"<conhook prejoin scope of {thread_name(self.owner)}, {self.live} live threads>"


    # -- what the compiled code calls ---------------------------------------------------------

    def start(self, fn, /, *args, **kwargs):
        """Start a thread running ``fn(*args, **kwargs)``; it is queued, nothing switches."""
        if self.state == _CLOSED:
            raise RuntimeError("sibling started on a prejoin scope that has already been joined")
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_flags & CO_COROUTINE:
            coro = fn(*args, **kwargs)
        else:
            if not callable(fn):
                raise TypeError(f"sibling cannot start a thread running {fn!r}: it is not callable "
                                f"(a thread runs a function: sibling f@(args))")
            coro = plain_call(fn, args, kwargs)
            name = getattr(fn, "__qualname__", None)
            if type(name) is str:
                coro.__qualname__ = coro.__name__ = name
        thread = _new_thread(Thread)
        thread.coro = coro
        thread.context = copy_context()  # the creator's, as it is now (it runs this call)
        thread.scope = self
        thread.scopes = thread.interrupt = thread.parked_on = thread.pending = thread.value = None
        self.children.append(thread)
        self.live += 1
        source = self.owner.interrupt
        if source is not None and self._covered_by(source):
            set_interrupt(thread, source)  # started while its owner unwinds: it is interrupted too
        self.kernel.ready.append(thread)

    async def failed(self, exc):
        """The body raised `exc`: record it, wait for the children; True if it is the first failure."""
        owner = self.owner
        if owner.interrupt is not None and isinstance(exc, Interrupted) and (
                owner.interrupt is self or self.first is not None):
            # The interruption this scope delivered has come back to it (or one from further
            # out, after this scope had already failed): a consequence, not a failure.
            if owner.interrupt is self:
                clear_interrupt(owner)
            carry_over(exc, self.first)  # failures met while unwinding are not lost
            tb = exc.__traceback__  # the owner's frame, at the call it was interrupted in
            if tb is not None:
                self.caught_at = (tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
            first = False
        elif self.first is None:
            tb = exc.__traceback__
            if tb is not None and tb.tb_next is not None and tb.tb_next.tb_frame.f_code is _START:
                tb.tb_next = None  # a thread that could not start: the sibling statement's line is the end
            self.first = exc
            self.first_in_body = True
            first = True
            self.interrupt_children(self.kernel, self)
        else:
            if exc is not self.first:
                attach(self.first, exc, f"the body of {thread_name(owner)}")
            first = False
        if isinstance(exc, GeneratorExit):
            self.closing = True  # the coroutine is being closed: it must not yield
            return first
        if self.live:
            self.state = _FAILED_WAIT
            await self
        return first

    def join(self):
        """Wait until every child has finished; raise the first failure if a child's was first."""
        if self.live and not self.closing:
            self.state = _JOIN_WAIT
            return self
        exc = self._close()
        return DONE if exc is None else Throw(exc)

    # -- kernel side ----------------------------------------------------------------------

    def park(self, kernel, thread):  # not interruptible: no check of thread.interrupt
        thread.parked_on = self

    def child_returned(self, kernel, thread):
        """A thread of this scope has returned (the common case of ``child_finished``)."""
        if thread.interrupt is not None:  # it caught its Interrupted and returned
            interrupted_threads.discard(thread)
        self._leave(kernel, thread)

    def child_finished(self, kernel, thread, exc):
        """A thread of this scope has finished: with an exception `exc`, or None."""
        if exc is not None:
            if thread.interrupt is not None and isinstance(exc, Interrupted):
                # Not a failure: the interruption it was given.  What failed while it unwound
                # is, and is carried over.
                for later, note in attached(exc):
                    strip_internal_frames(later)  # (failures the kernel throws are stripped)
                    self._child_failed(kernel, later, note)
            else:
                self._child_failed(kernel, exc, note_for(exc, f"thread {thread_name(thread)}"))
        self._leave(kernel, thread)

    def _leave(self, kernel, thread):
        """`thread` has finished and leaves the scope; the last to leave ends the wait for them."""
        thread.coro = thread.context = None
        self.live -= 1
        if not self.live:
            self.children.clear()
            if self.state != _OPEN:
                self._all_finished(kernel)
        elif self.live * 2 < len(self.children) > 64:
            self.children[:] = [t for t in self.children if t.coro is not None]

    def _child_failed(self, kernel, exc, note):
        first = self.first
        if first is None:
            self.first = exc
            owner = self.owner
            scopes = owner.scopes
            if self.state != _CLOSED and scopes and self in scopes:
                interrupt(kernel, owner, self, scopes.index(self) + 1)
            self.interrupt_children(kernel, self)
        elif first is not exc:
            attach_note(first, exc, note)

    def _all_finished(self, kernel):
        """The last child has finished while the owner waits for them: wake it."""
        owner = self.owner
        if self.state == _JOIN_WAIT:
            owner.pending = self._close()
        else:
            self.state = _OPEN
        kernel.wake(owner)

    def running(self):
        """The threads it started that have not finished, in the order they were started."""
        return [t for t in self.children if t.coro is not None]

    def interrupt_children(self, kernel, source):
        interrupt_threads(kernel, self.children, source)

    def _covered_by(self, source):
        """Whether an interruption of the owner by `source` reaches the threads of this scope."""
        scopes = self.owner.scopes
        for scope in scopes:
            if scope is source:
                return True  # source is below this scope (or is it)
            if scope is self:
                return False
        return True  # source lies outside the owner

    def _close(self):
        """Leave the owner's scope stack; the exception join must raise, if any."""
        self.state = _CLOSED
        owner = self.owner
        scopes = owner.scopes
        if scopes:
            if scopes[-1] is self:
                scopes.pop()
            elif self in scopes:
                scopes.remove(self)
        if owner.interrupt is self:
            clear_interrupt(owner)
        # Let go of the failure: the owner's frame holds this scope (``__con_scope__``) and the
        # failure's traceback holds that frame, a cycle that would keep the frame's locals
        # (sockets, listeners) open until the next garbage collection.
        first, self.first = self.first, None
        caught_at, self.caught_at = self.caught_at, None
        if first is not None and not self.first_in_body and not self.closing:
            if caught_at is not None:  # where the owner was, in front (module docstring)
                first.__traceback__ = types.TracebackType(first.__traceback__, *caught_at)
            return first
        return None

    @staticmethod
    def rethrown(exc):
        """``join`` raised `exc` in the owner's frame: if the traceback says where the owner
        was (an entry of the same frame, next), drop the entry of the wait in front of it."""
        tb = exc.__traceback__
        if tb is not None and tb.tb_next is not None and tb.tb_next.tb_frame is tb.tb_frame:
            exc.__traceback__ = tb.tb_next


_START = Scope.start.__code__


def note_for(exc, who):
    return f"conhook: {who} also failed: {type(exc).__qualname__}: {exc}"


def attach(first, exc, who):
    """Keep a later failure on the first one: a PEP 678 note and ``first.later_failures``."""
    attach_note(first, exc, note_for(exc, who))


def attach_note(first, exc, note):
    first.add_note(note)
    try:
        first.later_failures.append(exc)
        first._conhook_notes.append(note)
    except AttributeError:
        first.later_failures = [exc]
        first._conhook_notes = [note]


def attached(exc):
    """The (exception, note) pairs that conhook attached to `exc`."""
    return list(zip(getattr(exc, "later_failures", ()), getattr(exc, "_conhook_notes", ())))


def carry_over(source, target):
    """Attach to `target` what is attached to `source` (an Interrupted that is dropped)."""
    for later, note in attached(source):
        if later is not target:
            attach_note(target, later, note)
