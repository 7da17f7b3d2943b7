"""Synchronisation between threads: Event, Lock, Semaphore, Queue (docs/spec.md §3).

All wake their waiters in FIFO order, and hand over directly: a released Lock or Semaphore
unit goes to the first waiter, an item put into a Queue goes to the first waiting getter, so
a thread that comes later cannot barge in.  Every blocking call is an interruption point, even
when it could complete at once: while the calling thread is interrupted it raises
``Interrupted`` and changes nothing (an item stays in its queue).  Non-blocking calls
(``set``, ``release``, ``put_nowait``, ``get_nowait``, ``close``) never raise ``Interrupted``.

A Queue can be closed, as ``asyncio.Queue.shutdown()`` (3.13) and trio's channels are: after
``close()`` no item goes in (``put@`` raises ``QueueClosed``, and so do the putters waiting
on a full queue, whose items are dropped), and ``get@()`` drains what is left, then raises
``QueueClosed``, or returns its `default` when one is given, the loop form of a consumer::

    while (item := queue.get@(default=None)) is not None:
        ...
"""
from __future__ import annotations

from collections import deque
from queue import Empty as QueueEmpty
from queue import Full as QueueFull

from .kernel import current_kernel, current_thread
from .traps import DONE, Throw, WaitQueue, interrupted

__all__ = ["Event", "Lock", "Semaphore", "Queue", "QueueEmpty", "QueueFull", "QueueClosed"]

_NO_DEFAULT = object()  # get@() without a default
_CLOSED = object()  # what close() hands the waiting getters and putters


class QueueClosed(Exception):
    """The queue was closed: raised by ``put@`` after ``close()``, and by ``get@()`` (without a
    default) once a closed queue is empty.  As asyncio's ``QueueShutDown``."""


class Event:
    """A flag that threads can wait for.  ``set()`` wakes every waiter; it stays set."""
    __slots__ = ("_flag", "_waiters")

    def __init__(self):
        self._flag = False
        self._waiters = WaitQueue("wait")

    def is_set(self):
        """Whether ``set()`` has been called."""
        return self._flag

    def set(self):
        """Set the flag and wake every waiting thread, in the order they started waiting."""
        if not self._flag:
            self._flag = True
            if self._waiters:
                self._waiters.wake_all(current_kernel())

    def wait(self):
        """``wait@()``: return once the flag is set (at once if it is)."""
        thread = current_thread()
        if thread.interrupt is not None:
            return Throw(interrupted(thread))
        if self._flag:
            return DONE
        return self._waiters

    def __repr__(self):
        return f"<con.Event {'set' if self._flag else 'unset'}, {len(self._waiters)} waiting>"


class _Holder:
    """What ``hold@()`` returns: a context manager whose exit releases (it never blocks).

    Made at each ``hold@()``, not kept by the primitive: a primitive holding its own bound
    ``release`` would be a reference cycle, left to the cycle collector (whose passes, with a
    lock or two per connection, cost a server more than the locks themselves)."""
    __slots__ = ("_primitive",)

    def __init__(self, primitive):
        self._primitive = primitive

    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        self._primitive.release()
        return False


class Lock:
    """A mutual-exclusion lock, owned by the thread that acquired it; not reentrant.

    ``with lock.hold@(): ...`` acquires it (waiting as needed) and releases it at the end of
    the block.
    """
    __slots__ = ("_owner", "_waiters")

    def __init__(self):
        self._owner = None
        self._waiters = WaitQueue("acquire")

    def locked(self):
        """Whether some thread holds the lock."""
        return self._owner is not None

    def acquire(self):
        """``acquire@()``: wait until the lock is free, then hold it."""
        thread = current_thread()
        if thread.interrupt is not None:
            return Throw(interrupted(thread))
        owner = self._owner
        if owner is None:
            self._owner = thread
            return DONE
        if owner is thread:
            return Throw(RuntimeError("this thread already holds the Lock (it is not reentrant)"))
        return self._waiters  # release() hands the lock over before waking us

    def release(self):
        """Release the lock; the first waiting thread, if any, gets it."""
        if self._owner is not current_thread():
            raise RuntimeError("release() of a Lock that this thread does not hold")
        if self._waiters:
            self._owner = self._waiters.wake_first(current_kernel())
        else:
            self._owner = None

    async def hold(self):
        """``with lock.hold@():`` acquire the lock; the block's end releases it."""
        await self.acquire()
        return _Holder(self)

    def __repr__(self):
        state = "locked" if self._owner is not None else "unlocked"
        return f"<con.Lock {state}, {len(self._waiters)} waiting>"


class Semaphore:
    """A counter of `value` units: ``acquire@()`` takes one (waiting while none is left),
    ``release()`` gives one back.  ``with sem.hold@():`` holds one for the block."""
    __slots__ = ("_value", "_waiters")

    def __init__(self, value=1):
        if value < 0:
            raise ValueError(f"Semaphore value must be >= 0, not {value!r}")
        self._value = value
        self._waiters = WaitQueue("acquire")

    @property
    def value(self):
        """The units available now."""
        return self._value

    def acquire(self):
        """``acquire@()``: take one unit, waiting until one is available."""
        thread = current_thread()
        if thread.interrupt is not None:
            return Throw(interrupted(thread))
        if self._value and not self._waiters:
            self._value -= 1
            return DONE
        return self._waiters  # release() hands a unit over before waking us

    def release(self):
        """Give one unit back; the first waiting thread, if any, gets it."""
        if self._waiters:
            self._waiters.wake_first(current_kernel())
        else:
            self._value += 1

    async def hold(self):
        """``with sem.hold@():`` take a unit; the block's end gives it back."""
        await self.acquire()
        return _Holder(self)

    def __repr__(self):
        return f"<con.Semaphore value={self._value}, {len(self._waiters)} waiting>"


class Queue:
    """A FIFO queue of at most `maxsize` items (0: unbounded) between threads.

    ``put@(item)`` waits while the queue is full, ``get@()`` while it is empty.  ``close()``
    says no more items will come: ``get@()`` drains the rest, then raises ``QueueClosed``
    (or returns its `default`).
    """
    __slots__ = ("maxsize", "_items", "_getters", "_putters", "_closed", "_closing")

    def __init__(self, maxsize=0):
        if maxsize < 0:
            raise ValueError(f"Queue maxsize must be >= 0, not {maxsize!r}")
        self.maxsize = maxsize
        self._items = deque()
        self._getters = WaitQueue("get")
        self._putters = WaitQueue("put")
        self._closed = False
        self._closing = None  # the threads in wait_closed@(), once there is one

    def qsize(self):
        """The number of items in the queue."""
        return len(self._items)

    @property
    def closed(self):
        """Whether ``close()`` was called (items may still be left to get)."""
        return self._closed

    def _full(self):
        return self.maxsize and len(self._items) >= self.maxsize

    async def put(self, item):
        """``put@(item)``: add `item` at the back, waiting while the queue is full.

        ``QueueClosed`` if the queue is closed, or is closed while this waits (the item is
        then not added)."""
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)
        if self._closed:
            raise self._closed_error("put@() on")
        if self._getters:
            self._getters.wake_first(current_kernel(), item)
        elif not self._full():
            self._items.append(item)
        else:
            thread.value = item
            await self._putters  # a getter moves our item into the queue before waking us
            if thread.value is _CLOSED:
                thread.value = None
                raise QueueClosed("the Queue was closed while put@() waited for room: the item "
                                  "was not added")
            thread.value = None

    def put_nowait(self, item):
        """Add `item` at once; raise ``QueueFull`` if the queue is full, ``QueueClosed`` if it
        is closed."""
        if self._closed:
            raise self._closed_error("put_nowait() on")
        if self._getters:
            self._getters.wake_first(current_kernel(), item)
        elif not self._full():
            self._items.append(item)
        else:
            raise QueueFull(f"the queue is full ({self.maxsize} items)")

    async def get(self, *, default=_NO_DEFAULT):
        """``get@()``: remove and return the front item, waiting while the queue is empty.

        Once the queue is closed and empty: return `default` if given, else raise
        ``QueueClosed``.  So ``while (item := queue.get@(default=None)) is not None:`` takes
        every item until the producer closes the queue."""
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)
        if self._items:
            item = self._items.popleft()
            self._refill()
            return item
        if not self._closed:
            await self._getters  # a putter (or close) hands us its item in thread.value
            item = thread.value
            thread.value = None
            if item is not _CLOSED:
                return item
        if default is _NO_DEFAULT:
            raise self._closed_error("get@() on")
        return default

    def get_nowait(self):
        """Remove and return the front item at once; raise ``QueueEmpty`` if there is none,
        ``QueueClosed`` if there is none and the queue is closed."""
        if not self._items:
            if self._closed:
                raise self._closed_error("get_nowait() on")
            raise QueueEmpty("the queue is empty")
        item = self._items.popleft()
        self._refill()
        return item

    def close(self):
        """No more items: later puts raise ``QueueClosed``; getters take what is left, then
        get ``QueueClosed`` (or their default).  Waiting getters and putters are woken at once
        (the putters' items are dropped).  It never blocks; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._getters or self._putters or self._closing:
            kernel = current_kernel()
            if self._closing:
                self._closing.wake_all(kernel)
            while self._getters:
                self._getters.wake_first(kernel, _CLOSED)
            while self._putters:
                self._putters.wake_first(kernel, _CLOSED)

    def wait_closed(self):
        """``wait_closed@()``: return once ``close()`` has been called (at once if it has):
        a producer learns that its consumer has had enough."""
        thread = current_thread()
        if thread.interrupt is not None:
            return Throw(interrupted(thread))
        if self._closed:
            return DONE
        if self._closing is None:
            self._closing = WaitQueue("wait_closed")
        return self._closing

    def _closed_error(self, what):
        return QueueClosed(f"{what} a closed Queue ({len(self._items)} items left): "
                           f"close() said no more items would come")

    def _refill(self):
        putters = self._putters
        if putters:
            self._items.append(putters.first().value)
            putters.wake_first(current_kernel())

    def __repr__(self):
        state = "closed, " if self._closed else ""
        return (f"<con.Queue {state}{len(self._items)}/{self.maxsize or 'unbounded'} items, "
                f"{len(self._getters)} getting, {len(self._putters)} putting>")
