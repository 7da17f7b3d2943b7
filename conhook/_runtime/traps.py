"""Traps: how a thread's coroutine hands control to the scheduler, every way of it.

Design rules:
* A thread switches only when its coroutine yields, and it yields only a trap object: every
  blocking operation ends in ``await trap``.  The kernel then calls ``trap.park(kernel, thread)``.
* This module holds every ``__await__`` that yields to the kernel, three in all:
  ``Trap.__await__`` (any trap), the shared ``IDLE``'s own, and ``reusable(trap)``, an
  awaitable made once for a trap that is awaited again and again (a stream's fd waits).  Each
  returns a plain one-item iterator, not a generator.  So the yield costs no Python frame,
  and when the kernel throws ``Interrupted`` (or another error) into the coroutine it is
  raised directly in the awaiting frame: tracebacks show the user's line, not ours.
  Resuming sends None; a result travels in ``thread.value``.  (``DONE`` is awaitable too,
  and completes at once without yielding.)
* ``park`` either parks the thread (it records where, in ``thread.parked_on``, and returns
  None) or returns an exception that the kernel throws into the thread at once, without a
  switch.  An interruptible trap refuses to park an interrupted thread: it returns
  ``Interrupted`` (docs/spec.md §1.4, level-triggered).  ``abort`` undoes a park when an interrupted
  thread is woken early.

``idle`` is the hot path: its trap is one shared object that the run loop recognises by
identity, and both ``idle()`` and ``await`` on its result are C calls (functools.partial and
itertools.repeat), which measured fastest of the options on 3.11-3.13.
"""
from __future__ import annotations

import functools
import itertools
from collections import deque

from .errors import Interrupted

TYPE_CHECKING = False  # (typing costs an import; type checkers take this as true)
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any


def interrupted(thread):
    """A new Interrupted exception for `thread`, naming why it was interrupted."""
    return Interrupted(getattr(thread.interrupt, "reason", "interrupted"))


class Trap:
    """Base of everything a thread may yield to the kernel."""
    __slots__ = ()
    interruptible = True
    label = None  # shown by tree() after the thread's call chain, e.g. "sleep"

    def __await__(self) -> Generator[Trap, Any, Any]:  # an iterator: what await needs of it
        return iter((self,))  # type: ignore[return-value]

    def __repr__(self):
        # What asyncio.run(f()) or trio.run(f) of a non-atomic f shows ("Task got bad yield: ...").
        return (f"<conhook operation {self.label or type(self).__name__!r}: non-atomic code runs under "
                f"con.bootstrap(f, *args), not under another framework's event loop>")

    def park(self, kernel, thread):
        if thread.interrupt is not None:
            return interrupted(thread)
        return self.wait(kernel, thread)

    def wait(self, kernel, thread):
        """Record `thread` as waiting here and set ``thread.parked_on``; or return an exception."""
        raise NotImplementedError

    def abort(self, kernel, thread):
        """Forget the parked `thread` (it was interrupted)."""

    def interrupting(self, kernel, thread):
        """The parked `thread` was interrupted, and this wait is not interruptible: it may start
        ending itself (``aio@`` cancels its Task, and wakes the thread once the Task is done)."""


class _Idle(Trap):
    """The trap of ``idle``: go to the back of the ready queue."""
    __slots__ = ()
    label = "idle"

    def park(self, kernel, thread):
        if thread.interrupt is not None:
            return interrupted(thread)
        thread.parked_on = self
        kernel.ready.append(thread)


IDLE = _Idle()
_Idle.__await__ = staticmethod(functools.partial(iter, (IDLE,)))


class _IdleFunction:
    """``idle@()``: let every other ready thread run once and poll I/O, then go on.

    It is the explicit thread switch.  While the calling thread is interrupted it raises
    ``Interrupted`` instead.
    """
    __slots__ = ()

    def __repr__(self):
        return "<con.idle>"

    @property
    def __signature__(self):
        """``idle()``, for inspect.signature and help() (its ``__call__`` is a C method)."""
        from inspect import Signature
        return Signature()


idle = _IdleFunction()
_IdleFunction.__call__ = staticmethod(itertools.repeat(IDLE).__next__)


class Throw(Trap):
    """Resume the thread at once by raising `exc` in it, with no switch."""
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc

    def park(self, kernel, thread):
        return self.exc


class _Reusable(list):
    """See ``reusable``.  Its ``__await__`` is ``list.__reversed__``: a C method that the
    interpreter calls directly (``tuple.__iter__``, a slot wrapper, goes through a generic call
    first), and the reversed iterator of a one-item list yields that item."""
    __slots__ = ()
    __await__ = list.__reversed__


def reusable(trap):
    """An awaitable that yields `trap` each time it is awaited, with no Python frame and no
    allocation but the iterator: for a trap awaited at every wait of a hot path."""
    return _Reusable((trap,))


class _Done:
    """An awaitable that completes at once with None (a blocking call that need not block)."""
    __slots__ = ()
    __await__ = staticmethod(functools.partial(iter, ()))


DONE = _Done()


class WaitQueue(Trap):
    """Threads parked in FIFO order on a primitive (Event, Lock, Semaphore, Queue).

    Awaiting it parks the current thread at the back.  ``wake_first`` wakes the front one.
    """
    __slots__ = ("_threads", "label")

    def __init__(self, label=None):
        self._threads = deque()
        self.label = label

    def __len__(self):
        return len(self._threads)

    def __bool__(self):
        return bool(self._threads)

    def wait(self, kernel, thread):
        self._threads.append(thread)
        thread.parked_on = self

    def abort(self, kernel, thread):
        # Interruption walks threads in the order they were started, which is usually the order
        # they parked in (or its reverse, for timeouts set in that order): the thread is usually
        # at one end, and leaves from there at once; only from the middle is it searched for.
        # (An OrderedDict would make every case O(1) at about 150 bytes more per parked thread.)
        threads = self._threads
        if threads[0] is thread:
            threads.popleft()
        elif threads[-1] is thread:
            threads.pop()
        else:
            threads.remove(thread)

    def first(self):
        return self._threads[0]

    def wake_first(self, kernel, value=None):
        thread = self._threads.popleft()
        thread.value = value
        kernel.wake(thread)
        return thread

    def wake_all(self, kernel):
        threads = self._threads
        while threads:
            kernel.wake(threads.popleft())
