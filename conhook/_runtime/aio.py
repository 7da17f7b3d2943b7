"""Both directions between con threads and asyncio code, on a hosted kernel (``hosted``, docs/hosted.md).

``con.aio@(awaitable)``: a con thread runs an asyncio awaitable.  A coroutine becomes a real
asyncio Task on the host loop, made in the con thread's own context (what it sets there, the con
thread sees afterwards, as after ``await``), and on 3.12+ started eagerly (its first step runs at
once, as asyncio code); a Task or Future is awaited as it is.  The thread
is parked until it is done, then gets its result or its exception (with the asyncio frames).
An interrupted thread (a failing sibling, a ``timeout``, Ctrl-C) cancels the Task and waits,
uninterruptibly, until the Task has really finished: its cleanup runs inside the thread's
scope, and nothing outlives the prejoin.  Then it raises ``Interrupted``; or what the Task
raised instead, if its cleanup failed.  While a Task runs, its thread is a pending wake-up,
not a deadlock.

``con.from_aio(fn, *args, **kwargs)``: asyncio code awaits a con function, run as a new con
thread of the hosted kernel (in a copy of the awaiting Task's context), and gets its result or
its exception.  The rules are a sibling's: a cancelled awaiting Task interrupts the con thread
and waits for it to finish; then it raises ``CancelledError`` (or what the thread raised
instead).  Such threads belong to no con scope: they are threads started from outside
(``outside_threads``), which the program's end interrupts and waits for.
"""
from __future__ import annotations

import asyncio
import inspect
import sys
from contextvars import copy_context

from .._reserved_names import CO_COROUTINE
from .cactus_stack import hide
from .errors import Interrupted
from .hosted import hosts
from .kernel import current_kernel
from .prejoin import plain_call
from .threads import Thread, interrupt
from .traps import Throw, Trap, interrupted

_STANDALONE = (
    "con.aio@() runs asyncio code on the asyncio event loop that hosts the scheduler, and this "
    "scheduler runs standalone: run the program hosted, with `python -m conhook --loop asyncio "
    "script.py` (or --loop uvloop), or con.bootstrap(main, loop=\"asyncio\")")
_EAGER = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True)


class _Outcome(asyncio.Future, Trap):
    """What a con thread awaits in ``aio@``: a Future of the host loop that ends as its Task
    does, and a kernel trap.  Its ``__await__`` is asyncio's own, in C: it yields this object
    to the kernel, which parks the thread here, and once the Future is done it returns the
    result or raises the exception right in the user's frame (no frame of conhook's).

    On 3.12+ a coroutine's Task is made when the thread parks here, out of the thread's step,
    and started eagerly: its first step runs at once in the thread's context, which
    ``Context.run`` could not enter during the thread's own step.  A Task that finishes in that
    first step wakes the thread at once, through the ready queue.

    Not interruptible in the kernel's sense: an interruption cancels the Task (``interrupting``),
    and the thread wakes when the Task has finished, with ``Interrupted`` (or what the Task's
    cleanup raised)."""
    interruptible = False
    label = "aio"

    def __init__(self, host, task, coro=None, context=None):
        super().__init__(loop=host.loop)
        self.host, self.task, self.thread = host, task, None
        self.coro, self.context = coro, context  # (the Task to make in park, when task is None)
        if task is not None:
            self._watch(task)

    def _watch(self, task):
        self.host.kernel.outside_waits += 1  # a pending wake-up while the Task runs
        task.add_done_callback(self._task_done)

    def park(self, kernel, thread):  # (an interrupted thread waits here for the cancelled Task too)
        self.thread = thread
        thread.parked_on = self
        task = self.task
        if task is None:
            self.task = task = _start_eagerly(self.host, self.coro, self.context)
            self.coro = self.context = None
            if task.done():  # it finished in its eager first step
                self._settle(task)
                kernel.wake(thread)
                return None
            self._watch(task)
        if thread.interrupt is not None:
            task.cancel()
        return None

    def interrupting(self, kernel, thread):
        self.task.cancel()

    def _task_done(self, task):
        host = self.host
        kernel = host.kernel
        kernel.outside_waits -= 1
        thread = self._settle(task)
        if thread is not None and thread.parked_on is self:
            kernel.wake(thread)
            host.turn_now()  # (as a Task's own wake-up runs its step: no call_soon in between)

    def _settle(self, task):
        """End this Future as the finished `task` ended; return the thread parked here, if any."""
        thread, self.thread = self.thread, None
        if thread is not None and thread.interrupt is not None:
            exc = None if task.cancelled() else task.exception()
            self.set_exception(exc if exc is not None else interrupted(thread))
        elif task.cancelled():
            self.cancel()
        elif task.exception() is not None:
            self.set_exception(task.exception())
        else:
            self.set_result(task.result())
        return thread


def _start_eagerly(host, coro, context):
    """The Task of `coro` on the host loop, in `context`, its first step run now (3.12+), not
    one loop iteration later.  That step is asyncio code, not the con thread's: sniffio sees
    the Task, and Ctrl-C lets it finish its step (as between turns), with no con thread current."""
    kernel, sniffio = host.kernel, host.sniffio
    current, kernel.current = kernel.current, None
    if sniffio is not None:
        name, sniffio.name = sniffio.name, None
    try:
        return asyncio.Task(coro, loop=host.loop, context=context, eager_start=True)
    finally:
        kernel.current = current
        if sniffio is not None:
            sniffio.name = name


def _outcome(host, awaitable, context):
    loop = host.loop
    if asyncio.iscoroutine(awaitable):
        coro = awaitable
    elif asyncio.isfuture(awaitable):
        if awaitable.get_loop() is not loop:
            raise ValueError(f"con.aio@({awaitable!r}): that future belongs to another event loop "
                             f"than the one hosting this scheduler")
        return _Outcome(host, awaitable)
    elif inspect.isawaitable(awaitable):
        coro = _awaited(awaitable)
    else:
        raise TypeError(f"con.aio@() runs an asyncio awaitable (a coroutine, Task or Future), not {awaitable!r}")
    if _EAGER and loop.get_task_factory() is None:
        return _Outcome(host, None, coro, context)  # (its Task is started in park)
    return _Outcome(host, loop.create_task(coro, context=context))  # (3.11, or the loop's own factory)


async def _awaited(awaitable):
    return await awaitable


def aio(awaitable, /):
    """``con.aio@(awaitable)``: run an asyncio awaitable on the host loop; return its result."""
    kernel = current_kernel()
    thread = kernel.current
    host = hosts.host
    if host is None or host.kernel is not kernel:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # it will never run: no "never awaited" warning on top of this
        raise RuntimeError(_STANDALONE)
    if thread.interrupt is not None:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return Throw(interrupted(thread))
    return _outcome(host, awaitable, thread.context)


class _AioCall:
    """The scope of a con thread that asyncio code started: it tells the awaiting coroutine."""
    __slots__ = ("host", "thread", "future", "value", "exc")
    reason = "the asyncio Task awaiting it was cancelled"
    closing = False

    def __init__(self, host):
        self.host = host
        self.future = host.loop.create_future()
        self.value = self.exc = self.thread = None

    def running(self):
        return [self.thread] if self.thread.coro is not None else []

    def child_returned(self, kernel, thread):
        self._leave(kernel, thread, None)

    def child_finished(self, kernel, thread, exc):
        self._leave(kernel, thread, exc)

    def _leave(self, kernel, thread, exc):
        kernel.outside.finished(kernel, thread)
        self.exc = exc
        if not self.future.done():
            self.future.set_result(None)


async def _runs(call, fn, args, kwargs):
    """The con thread's coroutine: ``fn(*args, **kwargs)``, its value kept for the awaiter."""
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_flags & CO_COROUTINE:
        call.value = await fn(*args, **kwargs)
    else:  # an ordinary function: tree() names it, not the wrapper
        coro = plain_call(fn, args, kwargs)
        coro.__name__ = coro.__qualname__ = getattr(fn, "__name__", coro.__name__)
        call.value = await coro


hide(_runs)


async def from_aio(fn, /, *args, **kwargs):
    """``await con.from_aio(fn, *args, **kwargs)``, in asyncio code: run ``fn`` as a con thread of
    the hosted kernel and return its result (see the module docstring)."""
    host = hosts.host
    if host is None or host.loop is not asyncio.get_running_loop():
        raise RuntimeError(
            f"con.from_aio({getattr(fn, '__qualname__', fn)!r}): no conhook scheduler is hosted on "
            f"this asyncio event loop; run the program with con.bootstrap(main, loop=\"asyncio\") or "
            f"`python -m conhook --loop asyncio`, and call from_aio in that loop's thread")
    if host.finished.done() or host.kernel.outside.closed:
        raise RuntimeError(f"con.from_aio({getattr(fn, '__qualname__', fn)!r}): the conhook program hosted "
                           f"on this loop has finished (its main function returned)")
    if not callable(fn):
        raise TypeError(f"con.from_aio() runs a function in a con thread, not {fn!r}")
    call = _AioCall(host)
    coro = _runs(call, fn, args, kwargs)
    name = getattr(fn, "__qualname__", None)
    if type(name) is str:
        coro.__qualname__ = coro.__name__ = name
    call.thread = thread = Thread(coro, copy_context(), call)
    host.kernel.outside.start(host.kernel, thread, "from_aio")
    host.schedule()
    cancelled = None
    while True:
        try:
            await asyncio.shield(call.future)
            break
        except asyncio.CancelledError as exc:
            if call.future.done():
                break
            if cancelled is None:
                cancelled = exc
                interrupt(host.kernel, thread, call, 0)
                host.schedule()
    if call.exc is not None and not (cancelled is not None and isinstance(call.exc, Interrupted)):
        exc, call.exc = call.exc, None
        raise exc
    if cancelled is not None:
        raise cancelled
    return call.value
