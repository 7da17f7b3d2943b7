"""``to_thread``: run a blocking function in a worker OS thread while the caller is parked.

Workers are shared by the whole process, started on demand (at most ``MAX_WORKERS`` at a
time; further calls queue) and leave after ``IDLE_SECONDS`` without work.  They are daemon
threads, so an abandoned call does not keep the process alive.  A finished call is handed back
to its scheduler with ``kernel.post``, which wakes the scheduler through its backend.  The
function runs in a copy of the caller's ``contextvars`` context (docs/spec.md §3).

Name lookups (``to_resolver``, for ``tcpconnect@`` by name) have a pool of their own, of
``RESOLVER_WORKERS``: user calls that never return can fill the ``to_thread`` pool, and must
not starve them.  A call queued behind a full pool says so where the cactus stack draws it
(``tree()``, the SIGUSR1 dump, a ``Deadlock``, a test's timeout): ``to_thread (queued: all 64
workers busy)``.

An interrupted caller does not wait: it raises ``Interrupted`` at once.  A call that has not
started yet is then skipped; one that is running finishes in its worker and its result (or
exception) is dropped.  Until then the scheduler counts the worker as busy, so a program that
only waits for it is not declared deadlocked.
"""
from __future__ import annotations

import threading
from collections import deque
from contextvars import copy_context
from types import CoroutineType

from .kernel import strip_internal_frames
from .traps import Trap

MAX_WORKERS = 64
RESOLVER_WORKERS = 16
IDLE_SECONDS = 10.0


class _Job(Trap):
    __slots__ = ("fn", "args", "kwargs", "context", "pool", "started", "kernel", "thread",
                 "value", "exc")

    def __init__(self, fn, args, kwargs, pool):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.context = copy_context()  # the caller's, as it is now
        self.pool = pool
        self.started = False
        self.value = self.exc = self.thread = None

    @property
    def label(self):
        """What the cactus stack shows after the waiting thread's calls."""
        pool = self.pool
        if not self.started and pool.running >= pool.size:
            return f"{pool.label} (queued: all {pool.size} workers busy)"
        return pool.label

    def wait(self, kernel, thread):
        self.kernel, self.thread = kernel, thread
        kernel.workers_busy += 1
        thread.parked_on = self
        self.pool.submit(self)

    def abort(self, kernel, thread):
        self.thread = None  # the caller is gone: the result will be dropped

    def run(self):
        """In a worker OS thread."""
        self.started = True
        if self.thread is not None:
            try:
                self.value = self.context.run(self.fn, *self.args, **self.kwargs)
            except BaseException as exc:  # noqa: BLE001  (the call's failure is its outcome)
                strip_internal_frames(exc)
                self.exc = exc
        self.fn = self.args = self.kwargs = self.context = None
        self.kernel.post(self._done)

    def _done(self):
        """Back in the scheduler."""
        kernel = self.kernel
        kernel.workers_busy -= 1
        thread = self.thread
        if thread is not None and thread.parked_on is self:
            thread.pending = self.exc
            kernel.wake(thread)
        self.thread = None


class _Pool:
    """At most `size` worker OS threads, started on demand, taking jobs from one queue.

    The counts live under one lock: a job is handed to an idle worker only while there are at
    least as many idle workers as queued jobs, else a worker is started (up to `size`), else it
    waits its turn.  (Counting idle workers with a semaphore that a worker releases after each
    job counts one too many for every job that had to queue: once such workers leave on their
    idle timeout, a call waits for a worker that no longer exists.)
    """

    def __init__(self, size, label):
        self.size = size
        self.label = label  # what the cactus stack shows for a call waiting here
        self.running = 0  # jobs in a worker now
        self._jobs = deque()
        self._cond = threading.Condition(threading.Lock())
        self._workers = 0  # alive
        self._idle = 0  # waiting for a job

    def submit(self, job):
        with self._cond:
            self._jobs.append(job)
            if self._idle >= len(self._jobs):
                self._cond.notify()
                return  # an idle worker will take it
            if self._workers >= self.size:
                return  # it waits in the queue for the next free worker
            self._workers += 1
        threading.Thread(target=self._work, name=f"conhook {self.label} worker", daemon=True).start()

    def _work(self):
        cond, jobs = self._cond, self._jobs
        while True:
            with cond:
                self._idle += 1
                while not jobs:
                    if not cond.wait(IDLE_SECONDS) and not jobs:
                        self._idle -= 1
                        self._workers -= 1
                        return
                self._idle -= 1
                job = jobs.popleft()
                self.running += 1
            try:
                job.run()
            finally:
                with cond:
                    self.running -= 1
            job = None


_pool = _Pool(MAX_WORKERS, "to_thread")
_resolvers = _Pool(RESOLVER_WORKERS, "resolve")


async def to_thread(fn, /, *args, **kwargs):
    """``to_thread@(fn, *args, **kwargs)``: call ``fn(*args, **kwargs)`` in a worker OS thread.

    The calling thread is parked meanwhile (the others keep running); the result or the
    exception comes back to it.  If the caller is interrupted it raises ``Interrupted`` at once
    without waiting for the worker; the function's result is then dropped.  The function runs
    in a copy of the caller's ``contextvars`` context.
    """
    job = _Job(fn, args, kwargs, _pool)
    await job
    value = job.value
    if type(value) is CoroutineType:  # fn is non-atomic: calling it only made a call object
        value.close()
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise TypeError(f"to_thread@({name}): {name} is non-atomic, and to_thread runs an ordinary "
                        f"(blocking) function in a worker OS thread; call it in this thread as "
                        f"{name}@(...), or start a thread with `sibling {name}@(...)`")
    return value


async def to_resolver(fn, /, *args):
    """``to_thread`` for a name lookup (``socket.getaddrinfo``), in the resolvers' own pool."""
    job = _Job(fn, args, {}, _resolvers)
    await job
    return job.value
