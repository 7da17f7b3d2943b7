"""The kernel: one scheduler per OS thread, its ready queue, timers and I/O waits.

Design rules:
* The kernel only runs threads and parks them; primitives (``primitives``, ``timeouts``,
  ``prejoin``) are built outside it from traps (``traps``) and ``wake``.
* The run loop has three phases per turn: poll I/O, fire timers, run the ready threads.  One
  turn runs each thread that was ready at its start once (a generation), so ``idle`` lets
  every other ready thread run once and I/O be polled before it resumes (docs/spec.md §1.5).
* Nothing is allocated per switch.  While threads are ready the backend is polled (without
  blocking) once a turn, and only when some fd is registered or a wake-up was posted; never
  on a timer.  Nothing counts the waits for fds: a wait or a wake-up is a few stores into
  the fd's record, and only a kernel about to block looks for a waiter (``awaits_io``).
* Each step of a thread runs in the thread's own ``contextvars.Context`` (``Context.run``,
  about 10 ns a switch; docs/spec.md §1.2).
* Wake-ups from signal handlers and other OS threads go through ``post``: a thread-safe deque
  plus an eventfd (or socket pair) registered with the backend.
* Hosted on an asyncio loop (``hosted``), the loop calls ``run_loop(once=True)``: one such
  turn, whose poll never blocks; the host blocks instead, watching the backend's own fd.
* Nothing here imports upward.  What lives above the kernel reaches it through hooks, all
  None or the default when unused, none read per switch: ``clock`` (the time source of
  timers, ``time.monotonic``), ``on_block`` (asked for the poll timeout when nothing is
  ready: a virtual clock jumps there, ``wait_all_threads_blocked`` wakes there), ``on_turn``
  (called with the ready queue at the start of each phase 3: schedule fuzzing, watchdog;
  read at each turn), all three for ``conhook.testing`` and ``diagnostics``;
  and ``describe_threads`` (draws the threads for the ``Deadlock`` message: ``bootstrap``
  sets it to the cactus stack).
"""
from __future__ import annotations

import errno
import heapq
import threading
import types
from collections import deque
from contextvars import copy_context
from os import getpid
from time import monotonic

from .backends import READ, WRITE, backend_class
from .errors import Deadlock
from .outside_threads import OutsideThreads
from .traps import IDLE, Trap, interrupted
from .threads import Thread, interrupt, interrupted_threads, thread_name
from .wakeup import Wakeup

MAX_TIMEOUT = 86400.0  # longest single poll; longer sleeps simply poll again

# Each step of a thread runs in its context: ``thread.context.run(_send, thread.coro, None)``.
# The unbound methods cost what calling the coroutine's own method costs (a bound one made per
# step would allocate, and costs 30 ns more); a thread's coroutine is always a native one.
_send = types.CoroutineType.send
_throw = types.CoroutineType.throw
_close = types.CoroutineType.close


class _State(threading.local):
    kernel = None  # the kernel running in this OS thread, if any


state = _State()


def current_kernel():
    """The kernel of this OS thread; RuntimeError when no scheduler runs here."""
    kernel = state.kernel
    if kernel is None:
        raise RuntimeError(
            "no conhook scheduler is running in this OS thread: call this from code that "
            "con.bootstrap() runs (or from a non-atomic test function under pytest)")
    return kernel


def refuse_nested_run():
    """RuntimeError if a scheduler already runs in this OS thread (one per OS thread)."""
    if state.kernel is not None:
        raise RuntimeError(
            "con.bootstrap() was called while a conhook scheduler is already running in this "
            "OS thread; start more threads with `sibling f@()` instead")


def current_thread():
    """The conhook thread running now in this OS thread; RuntimeError when no scheduler runs here."""
    kernel = state.kernel
    if kernel is None:
        kernel = current_kernel()  # raises the explanatory RuntimeError
    return kernel.current


class _IORecord:
    """What the kernel knows about one fd: who waits for it and what the backend watches.

    ``reader`` and ``writer`` are threads (or None); ``any_reader`` is a waiter on several fds
    at once (see ``wait_any_readable``).  ``mask`` is READ | WRITE, or FORGOTTEN once the kernel
    has let go of the record (the fd was closed): a trap that still holds it then refuses to wait.
    """
    __slots__ = ("reader", "writer", "any_reader", "mask")

    def __init__(self):
        self.reader = self.writer = self.any_reader = None
        self.mask = 0


class FdWait(Trap):
    """Park the thread until `fd` is ready: the trap of every wait for one fd.

    ``ReadWait(fd)`` and ``WriteWait(fd)`` (see ``fd_waits``) are made once per stream or
    listener and awaited at every wait.  The first wait goes through ``wait_io``; it keeps the
    kernel's record of the fd, which stays the same object until the fd is closed, so that a
    later wait is a few stores (the hot path of every server: ``wait_io`` would cost a call
    and a lookup more, 1,000 instructions per echoed request).  These traps and the kernel's
    methods are the only code that touches a record.
    """
    __slots__ = ("fd", "kernel", "rec")
    direction = None  # READ or WRITE: each twin below says which

    def __init__(self, fd):
        self.fd = fd
        self.kernel = self.rec = None

    def first_park(self, kernel, thread):
        """Park the slow way, through the kernel, and remember its record of the fd."""
        if thread.interrupt is not None:
            return interrupted(thread)
        if self.kernel is kernel and self.rec.mask == FORGOTTEN:
            # Its fd was closed (maybe behind its owner's back): the number may be another
            # fd's by now, whose record this wait must not take.
            return OSError(errno.EBADF, f"fd {self.fd} was closed")
        exc = kernel.wait_io(thread, self.fd, self.direction, self)
        if exc is None:
            self.kernel, self.rec = kernel, kernel.io[self.fd]
        return exc

    def abort(self, kernel, thread):
        kernel.abort_io(thread, self.fd, self.direction)


FORGOTTEN = 4  # the mask of a record the kernel has let go of

# Whether a record's mask (READ | WRITE, 0 to 3, or FORGOTTEN) watches for each: indexing a
# tuple is quicker than ``&`` on 3.11, which does not specialise it.
_WATCHED_FOR_READ = tuple(bool(mask & READ) for mask in range(4)) + (False,)
_WATCHED_FOR_WRITE = tuple(bool(mask & WRITE) for mask in range(4)) + (False,)


class ReadWait(FdWait):
    # Two twin classes, not one with a direction test: park runs once per wait of every
    # stream, and the twins spare it that test and its attribute loads.
    __slots__ = ()
    direction = READ

    def park(self, kernel, thread):
        rec = self.rec
        # The fast path of wait_io: the fd is watched for reading already, nobody else waits
        # to read it, and no thread is interrupted (this one included).
        if (kernel is self.kernel and rec.reader is None and rec.any_reader is None
                and _WATCHED_FOR_READ[rec.mask] and not interrupted_threads):
            rec.reader = thread
            thread.parked_on = self
            return None
        return self.first_park(kernel, thread)


class WriteWait(FdWait):
    __slots__ = ()
    direction = WRITE

    def park(self, kernel, thread):
        rec = self.rec
        if (kernel is self.kernel and rec.writer is None and _WATCHED_FOR_WRITE[rec.mask]
                and not interrupted_threads):
            rec.writer = thread
            thread.parked_on = self
            return None
        return self.first_park(kernel, thread)


class _Program:
    """The outermost interruption source: the whole program (Ctrl-C, deadlock)."""
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


class Kernel:
    __slots__ = ("ready", "spare", "current", "backend", "_wakeup", "_wakeup_fd", "io",
                 "timers", "_timer_seq", "timers_cancelled", "posted", "workers_busy",
                 "outside_waits", "root", "outcome", "done", "deadlock", "sigint", "aborting",
                 "clock", "on_block", "on_turn", "describe_threads", "pid", "outside", "__weakref__")

    def __init__(self, backend=None):
        self.ready = deque()
        self.spare = deque()  # the next turn's ready queue, kept between hosted turns
        self.current = None
        self.backend = backend_class(backend)()
        self._wakeup = Wakeup()
        self._wakeup_fd = self._wakeup.fileno()
        self.backend.register(self._wakeup_fd, READ)
        self.io = {}
        self.timers = []  # heap of [deadline, seq, target]; target None once cancelled
        self._timer_seq = 0
        self.timers_cancelled = 0
        self.posted = deque()  # callables posted from signal handlers and other OS threads
        self.workers_busy = 0
        self.outside_waits = 0  # threads parked until a signal handler posts (con.signals)
        self.root = None
        self.outcome = (None, None)  # (value, exception) of the root thread
        self.done = False
        self.deadlock = None
        self.sigint = False
        self.aborting = False  # a second Ctrl-C: stop at once, abandon the threads
        self.clock = monotonic  # the time source of timers (conhook.testing.VirtualClock)
        self.on_block = None  # () -> poll timeout or None (default), when nothing is ready
        self.on_turn = None  # (ready queue) -> None, at the start of each phase 3
        self.describe_threads = None  # (kernel) -> str, for the Deadlock message
        self.pid = getpid()  # a forked child's copy of this kernel shares the parent's backend
        self.outside = OutsideThreads()  # threads that OS threads or asyncio code started

    def close(self):
        self.outside.close()  # calls still queued by OS threads fail: none will run
        self.backend.close()
        if not self.workers_busy:
            self._wakeup.close()
        # else a worker thread still running an abandoned call will post its result: its
        # wake-up fd must not be closed (and its number reused) under it.  It is closed when
        # the last reference goes.

    # -- waking and posting ----------------------------------------------------------------

    def wake(self, thread):
        """Make a parked thread ready; it resumes from its blocking call."""
        thread.parked_on = None
        self.ready.append(thread)

    def signal_wakeup_fd(self):
        """An fd for ``signal.set_wakeup_fd``: a signal arriving just before the poll blocks wakes it."""
        return self._wakeup.signal_fileno()

    def post(self, fn):
        """Run ``fn()`` in the kernel soon; safe from signal handlers and other OS threads."""
        self.posted.append(fn)
        self._wakeup.wake()

    # -- timers --------------------------------------------------------------------------

    def call_at(self, deadline, target):
        """At `deadline` (monotonic), wake the thread `target` or call `target()`."""
        self._timer_seq += 1
        entry = [deadline, self._timer_seq, target]
        heapq.heappush(self.timers, entry)
        return entry

    def cancel_timer(self, entry):
        if entry[2] is not None:
            entry[2] = None
            self.timers_cancelled += 1
            timers = self.timers
            if self.timers_cancelled > 64 and self.timers_cancelled * 2 > len(timers):
                timers[:] = [e for e in timers if e[2] is not None]
                heapq.heapify(timers)
                self.timers_cancelled = 0

    def _fire_timers(self):
        timers = self.timers
        now = self.clock()
        while timers and timers[0][0] <= now:
            target = heapq.heappop(timers)[2]
            if target is None:
                self.timers_cancelled -= 1
            elif type(target) is Thread:
                self.wake(target)
            else:
                target()

    def poll_timeout(self):
        """How long phase 1 may block when nothing is ready; None means until woken.  (Finds a
        deadlock, which readies threads.  A host loop asks it too: ``hosted``.)"""
        timers = self.timers
        while timers and timers[0][2] is None:
            heapq.heappop(timers)
            self.timers_cancelled -= 1
        if self.on_block is not None:
            timeout = self.on_block()
            if timeout is not None:
                return timeout
        if timers:
            return min(max(timers[0][0] - self.clock(), 0.0), MAX_TIMEOUT)
        if self.awaits_wakeup():
            return None
        return self._on_deadlock()

    # -- I/O -----------------------------------------------------------------------------

    def wait_io(self, thread, fd, direction, trap):
        """Park `thread` on `trap` until `fd` is ready for `direction` (READ or WRITE); or
        return the error.  (Every wait of every stream comes here: keep it short.)"""
        rec = self.io.get(fd)
        if rec is None:
            rec = self.io[fd] = _IORecord()
        if direction == READ:
            if rec.reader is not None or rec.any_reader is not None:
                return _already_waiting("read from", fd)
            rec.reader = thread
        else:
            if rec.writer is not None:
                return _already_waiting("write to", fd)
            rec.writer = thread
        if not rec.mask & direction:
            exc = self._watching(thread, fd, rec, direction)
            if exc is not None:
                return exc
        thread.parked_on = trap

    def wait_any_readable(self, waiter, fd):
        """Make `waiter` wait until `fd` is readable, as one of several fds it waits on.

        Readiness calls ``waiter()``, which withdraws from its other fds and returns the
        thread to wake.  That is how one thread waits on several fds at once (a listener on
        several addresses, ``conhook._network.sockets``).  The result is what ``wait_io`` returns."""
        rec = self.io.get(fd)
        if rec is None:
            rec = self.io[fd] = _IORecord()
        if rec.reader is not None or rec.any_reader is not None:
            return _already_waiting("read from", fd)
        rec.any_reader = waiter
        if not rec.mask & READ:
            return self._watching(waiter, fd, rec, READ)

    def _watching(self, waiter, fd, rec, direction):
        """Have the backend watch `fd` for `direction` too, now that `waiter` waits there."""
        try:
            self._watch(fd, rec.mask, rec.mask | direction)
        except (OSError, ValueError) as exc:
            self.abort_io(waiter, fd, direction)
            return exc
        rec.mask |= direction

    def awaits_wakeup(self):
        """Whether anything but a timer can still wake this kernel: I/O that a thread waits
        for, a worker thread's result, or a call posted (or awaited) from a signal handler or OS thread."""
        return bool(self.workers_busy or self.outside_waits or self.posted or self.awaits_io())

    def awaits_io(self):
        """Whether any thread waits for an fd.

        Not counted as waits come and go, which would cost every wait and wake-up an update:
        only a kernel with nothing ready and no timer asks, and the first record with a
        waiter answers (in a server, the listener's, which comes first).
        """
        for rec in self.io.values():
            if rec.reader is not None or rec.writer is not None or rec.any_reader is not None:
                return True
        return False

    @property
    def io_waiting(self):
        """How many waits for fds there are now (for tests and diagnostics)."""
        return sum((rec.reader is not None) + (rec.writer is not None) + (rec.any_reader is not None)
                   for rec in self.io.values())

    def _watch(self, fd, old, new):
        """Change what the backend watches `fd` for, from `old` to `new` (both non-zero: modify).

        An fd closed and reopened under the same number without ``notify_closing`` is unknown
        to the backend although we remember it (or the reverse): fall back to the other call.
        """
        backend = self.backend
        if old:
            try:
                backend.modify(fd, new)
            except FileNotFoundError:
                backend.register(fd, new)
        else:
            try:
                backend.register(fd, new)
            except FileExistsError:
                backend.modify(fd, new)

    def abort_io(self, waiter, fd, direction):
        """`waiter` (a thread, or a waiter on several fds) no longer waits on `fd`."""
        rec = self.io.get(fd)
        if rec is None:
            return
        if direction == READ and rec.reader is waiter:
            rec.reader = None
        elif direction == READ and rec.any_reader is waiter:
            rec.any_reader = None
        elif direction == WRITE and rec.writer is waiter:
            rec.writer = None

    def notify_closing(self, fd, exc_factory=None):
        """`fd` is about to be closed: stop watching it and wake its waiters with OSError(EBADF).

        In a forked child this kernel is the parent's (the backend's epoll or kqueue instance
        too): the child closing its copy of an fd must not unregister the parent's.
        """
        if self.pid != getpid():
            return
        rec = self.io.pop(fd, None)
        if rec is None:
            return
        if rec.mask:
            self.backend.unregister(fd)
        rec.mask = FORGOTTEN
        any_reader = rec.any_reader
        threads = [rec.reader, rec.writer, any_reader() if any_reader is not None else None]
        for thread in threads:
            if thread is not None:
                thread.pending = (exc_factory() if exc_factory else
                                  OSError(errno.EBADF, f"fd {fd} was closed while a thread waited on it"))
                self.wake(thread)

    def fd_opened(self, fd):
        """The OS has just handed out `fd` (a new socket, an accepted connection).

        A record under that number belongs to an fd that was closed behind the kernel's back
        (its socket closed directly, or in another OS thread), which the backend may have
        forgotten (epoll, kqueue): it is let go of as ``notify_closing`` would, its waiters
        woken with EBADF, so that the new fd registers and wakes like any other.
        """
        if fd in self.io:
            self.notify_closing(fd)

    def notify_closing_threadsafe(self, fd, exc_factory=None):
        """``notify_closing`` for an fd closed in another OS thread: done in the kernel's own
        thread soon, unless the kernel has let go of that record meanwhile (then the number
        may be a new fd's already, registered through ``fd_opened``)."""
        rec = self.io.get(fd)
        if rec is not None:
            def forget():
                if self.io.get(fd) is rec:
                    self.notify_closing(fd, exc_factory)
            self.post(forget)

    def _poll(self, timeout):
        """Phase 1: wake the threads whose fds are ready, then run what was posted."""
        io = self.io
        ready = self.ready
        backend = self.backend
        just_readable, just_writable = backend.just_readable, backend.just_writable
        for fd, events in backend.poll(timeout):
            try:
                rec = io[fd]
            except KeyError:
                self._unwatched(fd)
                continue
            # The hot path: one thread waits for what the fd is ready for, and nothing else
            # happened.  Every other case goes through _dispatch.
            if events == just_readable:
                thread = rec.reader
                if thread is not None:
                    rec.reader = None
                    thread.parked_on = None  # self.wake(thread), inlined
                    ready.append(thread)
                    continue
            elif events == just_writable:
                thread = rec.writer
                if thread is not None:
                    rec.writer = None
                    thread.parked_on = None
                    ready.append(thread)
                    continue
            self._dispatch(fd, rec, events)
        posted = self.posted
        while posted:
            posted.popleft()()

    def _dispatch(self, fd, rec, events):
        """Readiness off the hot path: several events at once, errors and hang-ups (both
        directions wake), a waiter on several fds, or readiness that nobody waits for."""
        backend = self.backend
        if events & backend.readable:
            if rec.reader is not None:
                thread, rec.reader = rec.reader, None
                self.wake(thread)
            elif rec.any_reader is not None:
                waiter, rec.any_reader = rec.any_reader, None
                self.wake(waiter())
            elif rec.mask & READ:
                self._narrow(fd, rec, READ)
        if events & backend.writable:
            if rec.writer is not None:
                thread, rec.writer = rec.writer, None
                self.wake(thread)
            elif rec.mask & WRITE:
                self._narrow(fd, rec, WRITE)

    def _unwatched(self, fd):
        """Readiness of an fd that no thread waits on: the wake-up fd, or one forgotten."""
        if fd == self._wakeup_fd:
            self._wakeup.drain()
        else:
            self.backend.unregister(fd)

    def _narrow(self, fd, rec, direction):
        """Level-triggered readiness that nobody waits for: narrow the interest, so that the
        next poll does not return at once.  A waiter that comes later widens it again."""
        rec.mask &= ~direction
        if rec.mask:
            self.backend.modify(fd, rec.mask)
        else:
            self.backend.unregister(fd)

    # -- running ---------------------------------------------------------------------------

    def run(self, root_coro):
        """Run `root_coro` as the root thread until it finishes; return (value, exception)."""
        self.start(root_coro)
        try:
            self.run_loop()
            self.close_orphans()
        finally:
            self.stop()
        return self.outcome

    def start(self, root_coro):
        """Make `root_coro` the root thread, ready, and this the OS thread's kernel."""
        refuse_nested_run()
        self.root = root = Thread(root_coro, copy_context(), None)  # nothing it sets leaks out
        self.ready.append(root)
        state.kernel = self

    def stop(self):
        state.kernel = None
        self.current = None

    def abandon(self):
        """After a second Ctrl-C: close every live thread's coroutine (the root's and those
        started from outside), deepest first.

        Their scopes are marked as closing first, so that ``failed`` and ``join`` do not wait
        (a closing coroutine must not yield).  Exceptions from the closing are dropped.
        """
        order = []
        stack = [t for t in (self.root, *self.outside.threads) if t is not None and t.coro is not None]
        while stack:
            thread = stack.pop()
            order.append(thread)
            for scope in thread.scopes or ():
                if hasattr(scope, "closing"):
                    scope.closing = True
                    stack.extend(scope.running())
        for thread in reversed(order):
            interrupted_threads.discard(thread)
            if thread.coro is not None:
                try:
                    thread.context.run(_close, thread.coro)
                except BaseException:  # noqa: BLE001  (abandoned threads: their errors are dropped)
                    pass
        self.ready.clear()

    def close_orphans(self):
        """Close the threads still queued when the root finished (only a closed coroutine
        leaves threads behind: its scope could not wait for them)."""
        ready = self.ready
        while ready:
            thread = ready.popleft()
            interrupted_threads.discard(thread)
            if thread.coro is not None:
                try:
                    thread.context.run(_close, thread.coro)
                except BaseException:  # noqa: BLE001  (orphans: their errors are dropped)
                    pass

    def run_loop(self, once=False):
        """Run turns until the program is done; with `once`, one turn that never blocks (a
        hosted kernel's, run by its host loop: ``hosted``).

        (A hosted program calls this once a turn: what it does before its first turn and after
        its last costs at every ``aio@``.  So the timers and the ``on_turn`` hook are read
        where they are used, not kept in locals, and no bound method or deque is made here.)"""
        send = _send
        spare = self.spare  # the next turn's ready queue, while this turn's threads run
        if spare is self.ready:  # (a turn ended by an exception left it in use)
            spare = deque()
        while not self.done:
            ready = self.ready
            # Phase 1: poll I/O (and the wake-ups posted by signal handlers and OS threads).
            if ready:
                if self.io or self.posted:  # (some fd may be ready; whether anyone waits
                    self._poll(0)           # for it is not counted: see awaits_io)
            elif once:
                self._poll(0)  # a hosted turn: the host loop blocks, not the kernel
            else:
                timeout = self.poll_timeout()
                if self.done:
                    break
                self._poll(timeout)
            # Phase 2: fire the timers that are due.
            timers = self.timers
            if timers and timers[0][0] <= self.clock():
                self._fire_timers()
            # Phase 3: run every thread that is ready now, once, in FIFO order.  Threads made
            # ready meanwhile join the spare queue, which becomes the ready queue (so running
            # a thread takes no popleft, and nothing is allocated).
            if self.on_turn is not None:
                self.on_turn(ready)
            self.ready = spare
            for thread in ready:
                self.current = thread
                exc = thread.pending
                if exc is not None:
                    thread.pending = None
                    self._throw(thread, exc)
                    continue
                try:
                    trap = thread.context.run(send, thread.coro, None)
                except StopIteration as stop:
                    scope = thread.scope
                    if scope is None:
                        self._finish(thread, stop)
                    else:
                        scope.child_returned(self, thread)  # a sibling returned
                    continue
                except BaseException as exc:  # noqa: BLE001  (a thread's failure is its outcome)
                    self._finish(thread, exc)
                    continue
                if trap is IDLE and thread.interrupt is None:
                    thread.parked_on = IDLE  # in the ready queue, but interruptible there
                    spare.append(thread)
                    continue
                try:  # (quicker than testing isinstance(trap, Trap) first)
                    exc = trap.park(self, thread)
                except AttributeError:
                    if isinstance(trap, Trap):
                        raise  # a bug in park itself
                    exc = foreign_trap(thread, trap)
                if exc is not None:
                    self._throw(thread, exc)
            ready.clear()
            spare = ready
            self.current = None
            if once:
                break
        self.spare = spare
        # A frame that outlives its run keeps the frames below it (this one) and their locals:
        # do not let the last exception thrown into a thread close a cycle through them.
        exc = trap = thread = None

    def _throw(self, thread, exc):
        """Raise `exc` in the thread at once, without a switch; then park it on what it
        awaits next (or throw again, when that refuses to park it)."""
        while True:
            # What the kernel throws is new, or a failure that left another thread (stripped
            # then): if it comes out of this one, only what came before that is to be stripped.
            stripped = exc.__traceback__
            try:
                trap = thread.context.run(_throw, thread.coro, exc)
            except BaseException as failure:  # noqa: BLE001  (a thread's failure is its outcome)
                self._finish(thread, failure, stripped if failure is exc else None)
                exc = stripped = None  # no cycle through this frame: see the end of run_loop
                return
            if isinstance(trap, Trap):
                exc = trap.park(self, thread)
                if exc is None:
                    stripped = None
                    return
            else:
                exc = foreign_trap(thread, trap)

    def _finish(self, thread, exc, stripped=None):
        if self.aborting:
            raise exc
        if type(exc) is StopIteration:
            value, exc = exc.value, None
        else:
            value = None
            strip_internal_frames(exc, stripped)
        scope = thread.scope
        if scope is not None:
            scope.child_finished(self, thread, exc)  # (which may interrupt this thread too)
        else:
            self.outcome = (value, exc)
            # (threads started from outside, by OS threads or asyncio code, are interrupted
            # and waited for)
            self.done = self.outside.root_finished(self)
        thread.coro = thread.context = thread.scope = None
        if thread.interrupt is not None:
            interrupted_threads.discard(thread)

    # -- program-wide interruption ---------------------------------------------------------

    def interrupt_program(self, reason):
        """Interrupt every thread (Ctrl-C, deadlock)."""
        if self.root is not None and not self.done:
            interrupt(self, self.root, _Program(reason), 0)

    def _on_deadlock(self):
        """Nothing can ever happen: record Deadlock, then let every thread unwind."""
        if self.deadlock is None:
            message = ("deadlock: no conhook thread can make progress (none is ready, no I/O "
                       "or timer is awaited, no worker thread is busy).")
            if self.describe_threads is not None:
                message += " The threads and where they wait:\n" + self.describe_threads(self)
            self.deadlock = Deadlock(message)
            self.interrupt_program("deadlock: no thread could make progress")
            if self.ready:
                return 0.0
        # Still stuck after interrupting everything (or the root was not running): give up.
        self.done = True
        return 0.0


def _already_waiting(what, fd):
    return RuntimeError(f"another thread is already waiting to {what} fd {fd}")


def foreign_trap(thread, trap):
    """The error for a thread that yielded `trap`, which no conhook operation yields."""
    return TypeError(
        f"conhook thread {thread_name(thread)} awaited something that yielded {trap!r}, "
        f"which is not a conhook operation: are you awaiting asyncio code (or code of another "
        f"async framework)? Under conhook, await only conhook primitives (con.idle, "
        f"con.sleep, con.Event, ...) and functions built on them.")


def _internal(tb):
    return tb.tb_frame.f_globals.get("__name__", "").startswith("conhook.")


def strip_internal_frames(exc, stripped=None):
    """Drop conhook's own frames (run loop, thread wrappers, signal handler) from a traceback.

    A failure that leaves a thread is re-raised elsewhere (by ``join``, by ``bootstrap``); what
    the user sees is their own frames only (docs/spec.md §1.6).  `stripped` is an entry of the
    traceback from which on it was stripped already: a failure travelling up a chain of
    threads is stripped as it leaves each one, and each time only its new entries are walked,
    so that the whole journey costs time linear in the depth.  (A ``tb_next`` is assigned only
    where a frame is dropped: the assignment walks the rest of the chain, to refuse a loop.)
    """
    tb = exc.__traceback__
    while tb is not None and tb is not stripped and _internal(tb):
        tb = tb.tb_next
    head = tb
    while tb is not None and tb is not stripped:
        nxt = tb.tb_next
        if nxt is not None and nxt is not stripped and _internal(nxt):
            while nxt is not None and nxt is not stripped and _internal(nxt):
                nxt = nxt.tb_next
            tb.tb_next = nxt
        tb = nxt
    exc.__traceback__ = head
