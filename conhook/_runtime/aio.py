"""Both directions between con threads and asyncio code, on a hosted kernel (``hosted``, docs/hosted.md).

``con.aio@(awaitable)``: a con thread runs an asyncio awaitable.  A coroutine becomes a real
asyncio Task on the host loop, made in the con thread's own context (what it sets there, the con
thread sees afterwards, as after ``await``); a Task or Future is awaited as it is.  The thread
is parked until it is done, then gets its result or its exception (with the asyncio frames).
An interrupted thread (a failing sibling, a ``timeout``, Ctrl-C) cancels the Task and waits,
uninterruptibly, until the Task has really finished: its cleanup runs inside the thread's
scope, and nothing outlives the prejoin.  Then it raises ``Interrupted``; or what the Task
raised instead, if its cleanup failed.  While a Task runs, its thread is a pending wake-up,
not a deadlock.

The common case is the short one (issue 14's benchmark): a coroutine's Task is itself what the
thread awaits and the kernel parks it on (``_AioTask``, asyncio's own ``await`` of a Task, in
C), and its done callback wakes the thread and runs the kernel's turn in that same callback.
A Task or Future given to ``aio@``, or a Task made by the loop's own task factory, is awaited
through a Future of conhook's that ends as it does (``_Outcome``).

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
from contextvars import copy_context
from types import CoroutineType

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


# The name of the Tasks that aio@ makes, as asyncio.all_tasks() and a warning about a pending Task
# show it: it says where the Task came from, where asyncio's default would number it ("Task-7").
# (On 3.11 asyncio formats that number when the Task is made: 1,300 instructions per aio@.)
TASK_NAME = "con.aio@"


class _AioTask(asyncio.Task, Trap):
    """The Task of a coroutine given to ``aio@``, and the kernel trap its thread parks on: the
    thread awaits the Task itself (asyncio's ``await``, in C), so the result comes back, or the
    exception is raised, right in the user's frame (no frame of conhook's).

    Not interruptible in the kernel's sense: an interruption cancels the Task (``interrupting``),
    and the thread wakes when the Task has finished, with ``Interrupted`` (or what the Task's
    cleanup raised), thrown in by the kernel."""
    __slots__ = ("host", "thread")
    interruptible = False
    label = "aio"

    def park(self, kernel, thread):
        self.thread = thread
        thread.parked_on = self
        if thread.interrupt is not None:
            self.cancel()

    def interrupting(self, kernel, thread):
        self.cancel()


def _task_done(task):
    """The done callback of an ``_AioTask``: wake its thread and run the kernel's turn now (as a
    Task's own wake-up runs its step: no ``call_soon`` in between)."""
    host = task.host
    kernel = host.kernel
    kernel.outside_waits -= 1
    thread = task.thread
    if thread is not None and thread.parked_on is task:
        if thread.interrupt is not None:
            thread.pending = _failure(task, thread)
        thread.parked_on = None
        kernel.ready.append(thread)
        if not host.scheduled:
            host.turn()


def _failure(future, thread):
    """What the interrupted `thread` raises once `future`, cancelled for it, is done."""
    exc = None if future.cancelled() else future.exception()
    return exc if exc is not None else interrupted(thread)


class _Outcome(asyncio.Future, Trap):
    """What a con thread awaits in ``aio@`` of a Task or Future that is not an ``_AioTask``: a
    Future of the host loop that ends as that one does, and a kernel trap (asyncio's own
    ``await`` of a Future, in C, as ``_AioTask``'s).  Interruption cancels what it watches."""
    __slots__ = ("host", "thread", "future")
    interruptible = False
    label = "aio"

    def __init__(self, host, future):
        super().__init__(loop=host.loop)
        self.host, self.future, self.thread = host, future, None
        host.kernel.outside_waits += 1  # a pending wake-up while the future runs
        future.add_done_callback(self._future_done)

    def park(self, kernel, thread):
        self.thread = thread
        thread.parked_on = self
        if thread.interrupt is not None:
            self.future.cancel()

    def interrupting(self, kernel, thread):
        self.future.cancel()

    def _future_done(self, future):
        host = self.host
        host.kernel.outside_waits -= 1
        thread = self.thread
        if thread is None or thread.parked_on is not self:
            return
        if thread.interrupt is not None:
            thread.pending = _failure(future, thread)
        elif future.cancelled():
            self.cancel()
        elif future.exception() is not None:
            self.set_exception(future.exception())
        else:
            self.set_result(future.result())
        host.kernel.wake(thread)
        host.turn_now()


def aio(awaitable, /):
    """``con.aio@(awaitable)``: run an asyncio awaitable on the host loop; return its result."""
    host = hosts.host
    if host is not None and type(awaitable) is CoroutineType:
        kernel = host.kernel
        thread = kernel.current  # (None unless a turn of this OS thread's hosted kernel runs)
        loop = host.loop
        if thread is not None and thread.interrupt is None and loop.get_task_factory() is None:
            task = _AioTask(awaitable, loop=loop, name=TASK_NAME, context=thread.context)  # (_task, inlined)
            task.host = host
            task.thread = None
            kernel.outside_waits += 1
            task.add_done_callback(_task_done)
            return task
    return _aio(host, awaitable)


def _task(host, thread, coro):
    """The ``_AioTask`` of `coro`, made in `thread`'s context; a pending wake-up while it runs."""
    task = _AioTask(coro, loop=host.loop, name=TASK_NAME, context=thread.context)
    task.host = host
    task.thread = None
    host.kernel.outside_waits += 1
    task.add_done_callback(_task_done)
    return task


def _aio(host, awaitable):
    """``aio@`` off the short path: errors, an interrupted thread, a Task, Future or other
    awaitable, a loop with a task factory of its own."""
    kernel = current_kernel()
    thread = kernel.current
    if thread is None:  # asyncio code, between the kernel's turns
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("con.aio@() is for con threads; asyncio code awaits the awaitable itself")
    if host is None or host.kernel is not kernel:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # it will never run: no "never awaited" warning on top of this
        raise RuntimeError(_STANDALONE)
    if thread.interrupt is not None:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return Throw(interrupted(thread))
    loop = host.loop
    if asyncio.isfuture(awaitable):
        if awaitable.get_loop() is not loop:
            raise ValueError(f"con.aio@({awaitable!r}): that future belongs to another event loop "
                             f"than the one hosting this scheduler")
        return _Outcome(host, awaitable)
    if not asyncio.iscoroutine(awaitable):
        if not inspect.isawaitable(awaitable):
            raise TypeError(f"con.aio@() runs an asyncio awaitable (a coroutine, Task or Future), not {awaitable!r}")
        awaitable = _awaited(awaitable)
    if loop.get_task_factory() is None:
        return _task(host, thread, awaitable)
    return _Outcome(host, loop.create_task(awaitable, name=TASK_NAME, context=thread.context))  # (the loop's own Task)


async def _awaited(awaitable):
    return await awaitable


class AwaitedThread:
    """The scope of a con thread that asyncio code started and awaits (``from_aio``; a session's
    input, ``session``): a thread started from outside (``outside_threads``) whose end sets
    ``future``, its value or exception kept in ``value`` and ``exc`` for the awaiter."""
    __slots__ = ("thread", "future", "value", "exc")
    closing = False

    def __init__(self, loop):
        self.future = loop.create_future()
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


class _AioCall(AwaitedThread):
    """The scope of a con thread that ``from_aio`` started."""
    __slots__ = ()
    reason = "the asyncio Task awaiting it was cancelled"


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
    call = _AioCall(host.loop)
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
