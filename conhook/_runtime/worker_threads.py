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

Each scheduler bounds its calls in flight with a ``CapacityLimiter`` (trio's name and default:
40 tokens; ``to_thread@(fn, limiter=...)`` takes another).  A call takes a token when it goes
to the pool, waiting in FIFO order, and gives it back when its worker has finished (an
abandoned call's token stays taken until then, as in trio).  An interrupted waiter leaves the
queue and takes nothing.  The waiting calls queue in the limiter itself, and a finishing
worker sends the next one to the pool, so that a queued call costs the scheduler nothing more.

An interrupted caller does not wait: it raises ``Interrupted`` at once.  A call that has not
started yet is then skipped; one that is running finishes in its worker and its result (or
exception) is dropped.  Until then the scheduler counts the worker as busy, so a program that
only waits for it is not declared deadlocked.

A worker may call back into its caller's scheduler with ``con.from_thread`` (module
``from_thread``): the call is handed to the waiting caller (``_Job.ask``), which runs it as
one of its own calls (``serve``) and parks on the job again, as trio runs ``from_thread.run``
in the task blocked in ``to_thread.run_sync``.  Once the caller has left (interrupted),
``ask`` refuses: the worker's ``from_thread`` raises ``Interrupted``.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque
from contextvars import copy_context
from types import CoroutineType

from .errors import Interrupted
from .kernel import current_kernel, strip_internal_frames
from .prejoin import isawaitable
from .traps import Trap

MAX_WORKERS = 64
RESOLVER_WORKERS = 16
IDLE_SECONDS = 10.0
DEFAULT_LIMIT = 40  # to_thread@ calls in flight per scheduler, as trio's default limiter

# The job a worker OS thread is running, for con.from_thread called in it.
worker_local = threading.local()


class CapacityLimiter:
    """At most `total_tokens` ``to_thread@`` calls in flight: ``to_thread@(fn, limiter=lim)``.

    A call takes a token when it goes to a worker and gives it back when the worker has
    finished; calls beyond the bound wait in FIFO order (an interrupted one leaves the queue).
    The queue holds the calls themselves, and a worker that finishes hands its token to the
    next one and sends it to the pool at once, without a trip through the scheduler; so the
    counts live under a lock, and a limiter may be shared by schedulers.  ``total_tokens`` may
    be changed; raising it lets waiting calls go at once.
    """
    __slots__ = ("_total", "_borrowed", "_queue", "_lock")

    def __init__(self, total_tokens):
        self._total = _checked_total(total_tokens)
        self._borrowed = 0
        self._queue = deque()  # the calls waiting for a token
        self._lock = threading.Lock()

    @property
    def total_tokens(self):
        return self._total

    @total_tokens.setter
    def total_tokens(self, value):
        value = _checked_total(value)
        going = []
        with self._lock:
            self._total = value
            while self._queue and self._borrowed < value:
                self._borrowed += 1
                job = self._queue.popleft()
                job.queued = False
                going.append(job)
        for job in going:
            job.go()

    @property
    def borrowed_tokens(self):
        """The calls in flight now (their workers have not finished)."""
        return self._borrowed

    @property
    def available_tokens(self):
        return max(self._total - self._borrowed, 0)

    @property
    def waiting(self):
        """The calls waiting for a token."""
        return len(self._queue)

    def _submit(self, job):
        """In the scheduler: `job` goes to its pool now, or waits its turn here."""
        with self._lock:
            if self._queue or self._borrowed >= self._total:
                job.queued = True
                self._queue.append(job)
                return
            self._borrowed += 1
        job.go()

    def _withdraw(self, job):
        """In the scheduler: take out `job`, whose caller was interrupted; whether it still waited."""
        with self._lock:
            if not job.queued:
                return False
            job.queued = False
            self._queue.remove(job)  # (usually at an end: interrupted in the order queued)
            return True

    def _release(self):
        """In a worker, its job done: the token goes to the first waiting call, if any."""
        with self._lock:
            if not self._queue or self._borrowed > self._total:
                self._borrowed -= 1
                return
            job = self._queue.popleft()
            job.queued = False
        job.go()

    def __repr__(self):
        return (f"<con.CapacityLimiter {self._borrowed}/{self._total} tokens borrowed, "
                f"{len(self._queue)} waiting>")


def _checked_total(value):
    if type(value) is not int or value < 1:
        raise ValueError(f"CapacityLimiter's total_tokens must be an int >= 1, not {value!r}")
    return value


_default_limiters = weakref.WeakKeyDictionary()  # kernel -> its default CapacityLimiter


def current_default_thread_limiter():
    """The running scheduler's default ``CapacityLimiter`` of ``to_thread@`` (40 tokens);
    change its ``total_tokens`` to change the bound for every call that takes no limiter."""
    kernel = current_kernel()
    limiter = _default_limiters.get(kernel)
    if limiter is None:
        limiter = _default_limiters[kernel] = CapacityLimiter(DEFAULT_LIMIT)
    return limiter


class _Job(Trap):
    __slots__ = ("fn", "args", "kwargs", "context", "pool", "started", "kernel", "thread",
                 "value", "exc", "limiter", "queued", "lock", "request")

    def __init__(self, fn, args, kwargs, pool, limiter=None):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.context = copy_context()  # the caller's, as it is now
        self.pool = pool
        self.limiter = limiter  # its token is given back when the worker has finished
        self.queued = self.started = False  # queued: waiting for a token of the limiter
        self.value = self.exc = self.thread = self.kernel = self.request = None
        self.lock = None  # made when the call goes to a worker (from_thread needs it)

    @property
    def label(self):
        """What the cactus stack shows after the waiting thread's calls."""
        pool = self.pool
        if self.queued:
            return f"{pool.label} (queued: all {self.limiter.total_tokens} tokens of its limiter borrowed)"
        if not self.started and pool.running >= pool.size:
            return f"{pool.label} (queued: all {pool.size} workers busy)"
        return pool.label

    def wait(self, kernel, thread):
        thread.parked_on = self
        if self.kernel is None:  # the first wait: the call goes to a worker
            self.kernel, self.thread = kernel, thread
            self.lock = threading.Lock()
            kernel.workers_busy += 1
            if self.limiter is None:
                self.go()
            else:
                self.limiter._submit(self)

    def go(self):
        """It has its token (or needs none): to the pool's queue."""
        self.pool.submit(self)

    def abort(self, kernel, thread):
        self.leave()  # the caller is gone: the result will be dropped

    def leave(self):
        """The caller leaves (done, or interrupted): a call still asked of it fails with
        Interrupted, later ones are refused; a call still waiting for a token is withdrawn."""
        if self.kernel is None:
            return  # interrupted before it went anywhere
        with self.lock:
            self.thread = None
            request, self.request = self.request, None
        if request is not None:
            request.finish(None, caller_gone())
        if self.queued and self.limiter._withdraw(self):
            self.kernel.workers_busy -= 1  # it will never run: no _done will come
            self.fn = self.args = self.kwargs = self.context = None

    def run(self):
        """In a worker OS thread."""
        self.started = True
        if self.thread is not None:
            worker_local.job = self
            try:
                self.value = self.context.run(self.fn, *self.args, **self.kwargs)
            except BaseException as exc:  # noqa: BLE001  (the call's failure is its outcome)
                strip_internal_frames(exc)
                self.exc = exc
            finally:
                worker_local.job = None
        self.fn = self.args = self.kwargs = self.context = None
        if self.limiter is not None:
            self.limiter._release()
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

    # -- con.from_thread in the worker -------------------------------------------------------

    def ask(self, request):
        """In the worker: hand `request` to the waiting caller; False if it has left."""
        with self.lock:
            if self.thread is None:
                return False
            self.request = request
        self.kernel.post(self._deliver)
        return True

    def _deliver(self):
        thread = self.thread
        if thread is not None and thread.parked_on is self:
            self.kernel.wake(thread)  # it finds self.request and serves it

    async def serve(self):
        """In the caller: run the request as one of its own calls; its outcome goes back."""
        request, self.request = self.request, None  # (before the worker, answered, asks again)
        try:
            value = request.fn(*request.args)
            if isawaitable(value):
                value = await value
        except GeneratorExit:
            request.finish(None, caller_gone())
            raise
        except BaseException as exc:  # noqa: BLE001  (the call's failure goes to the worker)
            strip_internal_frames(exc)
            request.finish(None, exc)
        else:
            request.finish(value, None)
        request = None


def caller_gone():
    """What from_thread raises in a worker whose caller has left ``to_thread@``."""
    return Interrupted("the conhook thread that called to_thread@ has been interrupted and no "
                       "longer waits for this worker")


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


async def to_thread(fn, /, *args, limiter=None, **kwargs):
    """``to_thread@(fn, *args, **kwargs)``: call ``fn(*args, **kwargs)`` in a worker OS thread.

    The calling thread is parked meanwhile (the others keep running); the result or the
    exception comes back to it.  If the caller is interrupted it raises ``Interrupted`` at once
    without waiting for the worker; the function's result is then dropped.  The function runs
    in a copy of the caller's ``contextvars`` context.  At most ``limiter.total_tokens`` calls
    are in flight (default: the scheduler's ``current_default_thread_limiter()``, 40); the
    others wait in order.  The worker may call back with ``con.from_thread(f, *args)``.
    """
    if limiter is None:
        limiter = current_default_thread_limiter()
    elif not isinstance(limiter, CapacityLimiter):
        raise TypeError(f"to_thread@(..., limiter={limiter!r}): limiter must be a "
                        f"con.CapacityLimiter (to pass a keyword named 'limiter' to the function, "
                        f"use functools.partial)")
    job = _Job(fn, args, kwargs, _pool, limiter)
    try:
        await job
        while job.request is not None:  # the worker called con.from_thread
            await job.serve()
            await job
    finally:
        job.leave()
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
