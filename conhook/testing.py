"""Tools for testing con programs: virtual time, in-memory streams, schedule fuzzing.

* ``VirtualClock``: replaces the scheduler's time source.  With ``autojump`` (the default),
  whenever every thread is parked and at least one waits for a timer (``sleep@``,
  ``timeout``), time jumps at once to the next deadline, like trio's
  ``MockClock(autojump_threshold=0)``: a test of a 30-second timeout takes microseconds.
* ``memory_stream_pair()``: two connected streams with the API of the network streams
  (``read@``, ``write@`` with a bounded buffer and backpressure, ``shutdown_write()``,
  ``close()``, ``with``), for testing protocol code without sockets.
* ``wait_all_threads_blocked@()``: returns once every other thread is parked.
* Schedule fuzzing: ``CONHOOK_SCHEDULE_SEED=N`` in the environment shuffles, reproducibly,
  the order in which threads that are ready together run (see ``conhook._runtime.diagnostics``).
* pytest: the fixtures ``virtual_clock`` and ``memory_streams`` (``conhook.testing_fixtures``).

Example (a con module)::

    import con
    from conhook.testing import VirtualClock

    def main():
        clock = VirtualClock().install()
        with con.timeout(30):
            con.sleep@(3600)      # returns TimeoutError after 30 virtual seconds, at once
"""
from __future__ import annotations

import errno
import io
from collections import deque
from time import monotonic

from ._runtime import prejoin
from ._runtime.errors import Deadlock
from ._network.stream_contract import BUDGET, LOOK, READ_SIZE, SECOND, ByteStream, spent
from ._runtime.kernel import MAX_TIMEOUT, current_kernel, current_thread, state
from ._runtime.traps import IDLE, Trap, interrupted

# What the compile pipeline gives a con module (``prepare_namespace``): the pytest
# plugin runs this module's async fixtures on the test's scheduler as non-atomic fixtures, and a
# dropped ``read()``/``write()`` call object is reported in con's words, as for con code.
__con__ = prejoin

__all__ = ["VirtualClock", "current_time", "wait_all_threads_blocked", "MemoryStream",
           "memory_stream_pair", "virtual_clock_fixture", "memory_streams_fixture"]


# -- the scheduler side: one harness per kernel, behind kernel.on_block ------------------------

class _Harness:
    """What the test tools add to one kernel: its virtual clock and the threads waiting for
    every other thread to block.  Installed as ``kernel.on_block``, which the kernel calls
    only when no thread is ready."""
    __slots__ = ("kernel", "clock", "blocked_waiters")

    def __init__(self, kernel):
        self.kernel = kernel
        self.clock = None
        self.blocked_waiters = deque()

    @classmethod
    def of(cls, kernel):
        hook = kernel.on_block
        harness = getattr(hook, "__self__", None)
        if isinstance(harness, cls):
            return harness
        if hook is not None:
            raise RuntimeError(f"the scheduler's on_block hook is taken by {hook!r}")
        harness = kernel.on_block = cls(kernel).on_block
        return harness.__self__

    def on_block(self):
        """The poll timeout when nothing is ready; None leaves it to the kernel."""
        kernel = self.kernel
        waiters = self.blocked_waiters
        if waiters:
            while waiters:
                kernel.wake(waiters.popleft())
            return 0.0
        clock = self.clock
        if clock is None or kernel.deadlock is not None:
            return None
        timers = kernel.timers  # the kernel has dropped cancelled timers from the front
        if not timers:
            return None  # nothing waits for time: the kernel decides (I/O, or deadlock)
        if clock.autojump and not kernel.workers_busy:
            if timers[0][0] > clock._now:
                clock._now = timers[0][0]
            return 0.0  # the timer is due now: poll I/O without blocking, then fire it
        if kernel.awaits_wakeup():
            return MAX_TIMEOUT  # virtual time stands still; wait for I/O or a worker
        # Only timers are awaited, and virtual time does not move by itself: nothing can ever
        # call clock.jump().  That is a deadlock, not a hang.
        from ._runtime.cactus_stack import tree
        kernel.deadlock = Deadlock(
            "deadlock: every conhook thread waits for a timer, but the virtual clock does not "
            "advance by itself (autojump is off) and no thread is left to call clock.jump(). "
            "The threads and where they wait:\n" + tree(kernel))
        kernel.interrupt_program("deadlock: no thread could make progress")
        return 0.0


class VirtualClock:
    """A time source for the scheduler that moves only when told to, or by auto-jump.

    ``install()`` (from code the scheduler runs) makes it the scheduler's clock: ``sleep``
    and ``timeout`` are measured on it from then on, and timers already pending keep their
    remaining time.  ``now()`` is the virtual time; ``jump(seconds)`` moves it forward (the
    timers that fall due fire on the next turn).  With ``autojump`` true, whenever no thread
    is ready and a timer is pending, the clock jumps to that timer's deadline.

    Auto-jump looks only at the scheduler's own threads: it does not wait for I/O from outside
    the process (a real peer's reply), since in virtual time that reply takes no time at all.
    It does wait for ``to_thread@`` calls in progress.  Without auto-jump, a program whose
    threads all wait for timers while no I/O or worker can wake them raises ``Deadlock``.
    Code that reads ``time.monotonic()`` directly sees real time; use ``current_time()``.
    """
    __slots__ = ("_now", "autojump", "_kernel")

    def __init__(self, start=0.0, *, autojump=True):
        self._now = float(start)
        self.autojump = autojump
        self._kernel = None

    def now(self):
        """The virtual time, in seconds."""
        return self._now

    def jump(self, seconds):
        """Move the clock `seconds` forward (never back)."""
        if not seconds >= 0:
            raise ValueError(f"a virtual clock only moves forward; jump({seconds!r})")
        self._now += seconds

    def install(self):
        """Make this the running scheduler's clock; returns the clock."""
        kernel = current_kernel()
        if kernel.clock == self.now:
            return self
        if self._kernel is not None:
            raise RuntimeError("this VirtualClock is installed on another scheduler already")
        _shift_timers(kernel, self._now - kernel.clock())
        kernel.clock = self.now
        _Harness.of(kernel).clock = self
        self._kernel = kernel
        return self

    def uninstall(self):
        """Give the scheduler back its monotonic clock (pending timers keep their remaining
        virtual time, now in real seconds)."""
        kernel = self._kernel
        if kernel is None:
            return
        self._kernel = None
        if kernel.clock == self.now:
            _shift_timers(kernel, monotonic() - self._now)
            kernel.clock = monotonic
            _Harness.of(kernel).clock = None

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc_info):
        self.uninstall()
        return False

    def __repr__(self):
        return f"<conhook VirtualClock now={self._now!r} autojump={self.autojump}>"


def _shift_timers(kernel, delta):
    """Move every pending deadline by `delta`: the heap order is unchanged."""
    for entry in kernel.timers:
        entry[0] += delta


def current_time():
    """The running scheduler's time: its virtual clock's, or ``time.monotonic()``."""
    return current_kernel().clock()


# -- wait_all_threads_blocked ---------------------------------------------------------------

class _AllBlocked(Trap):
    """Park until the kernel finds no thread ready (``_Harness.on_block`` wakes us)."""
    __slots__ = ()
    label = "wait_all_threads_blocked"

    def wait(self, kernel, thread):
        _Harness.of(kernel).blocked_waiters.append(thread)
        thread.parked_on = self

    def abort(self, kernel, thread):
        waiters = _Harness.of(kernel).blocked_waiters
        if thread in waiters:
            waiters.remove(thread)


_ALL_BLOCKED = _AllBlocked()


async def wait_all_threads_blocked():
    """``wait_all_threads_blocked@()``: return once every other thread is parked.

    "Parked" means waiting on anything: a primitive, I/O, a timer, a worker.  It returns
    before a virtual clock jumps, so a test can check the state that a sleep leaves behind.
    Several threads waiting here are all woken together.  An interruption point.
    """
    await _ALL_BLOCKED


# -- in-memory streams ------------------------------------------------------------------------

DEFAULT_BUFFER = 65536  # bytes a memory connection holds per direction, by default


class _Pipe:
    """One direction: bytes written by one end, not yet read by the other."""
    __slots__ = ("data", "capacity", "eof", "reader_gone", "reader", "writer")

    def __init__(self, capacity):
        self.data = bytearray()
        self.capacity = capacity
        self.eof = False  # the writing end has shut down or closed
        self.reader_gone = False  # the reading end has closed
        self.reader = _Wait("read")  # the thread waiting for data
        self.writer = _Wait("write")  # the thread waiting for room


class _Wait(Trap):
    """At most one thread parked here (one reader and one writer per stream, as for sockets)."""
    __slots__ = ("thread", "what")

    def __init__(self, what):
        self.thread = None
        self.what = what

    def wait(self, kernel, thread):
        if self.thread is not None:
            return RuntimeError(f"another thread is already waiting to {self.what} on this "
                                f"memory stream")
        self.thread = thread
        thread.parked_on = self

    def abort(self, kernel, thread):
        if self.thread is thread:
            self.thread = None

    def wake(self, exc=None):
        thread = self.thread
        if thread is not None:
            self.thread = None
            if exc is not None:
                thread.pending = exc
            kernel = state.kernel
            if kernel is not None:
                kernel.wake(thread)


class MemoryStream(ByteStream):
    """One end of an in-memory connection, with the API of a network stream.

    ``read@(max_bytes=65536)`` returns the bytes available (at least one), waiting for some,
    and raises ``EOFError`` once the other end has shut down writing (or closed) and all was
    read.  ``write@(data)`` returns once all of `data` is in the connection's buffer (at most
    `max_buffer` bytes per direction), waiting while it is full: backpressure.  Writing to an
    end whose peer has closed raises ``BrokenPipeError``; any I/O on a closed end raises
    ``OSError(EBADF)``, and closing an end wakes a thread waiting on it with that error.
    Every ``read@``/``write@`` is an interruption point; a write interrupted after part of its
    data went in closes the stream (the peer could not tell where it stopped), as on sockets.
    """
    __slots__ = ("_in", "_out", "_closed", "_budget", "_since", "name", "peer", "__weakref__")

    def __init__(self, incoming, outgoing, name):
        self._in = incoming
        self._out = outgoing
        self._closed = False
        self._budget = BUDGET
        self._since = 0.0  # (stream_contract.spent)
        self.name = name
        self.peer = None

    # -- reading and writing --------------------------------------------------------------

    async def read(self, max_bytes=READ_SIZE):
        """``read@(max_bytes=65536)``: the bytes available now (at least one, at most
        `max_bytes`), waiting until some arrive; ``EOFError`` at the end of the stream."""
        if max_bytes < 1:
            raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}")
        await self._check()
        pipe = self._in
        while not pipe.data:
            if pipe.eof:
                raise EOFError("end of stream: the peer closed its side of the connection")
            await pipe.reader
            self._budget = BUDGET
            if self._closed:
                _closed()
        data = bytes(pipe.data[:max_bytes])
        del pipe.data[:max_bytes]
        pipe.writer.wake()
        return data

    async def write(self, data):
        """``write@(data)``: put all of `data` into the connection, waiting while it is full."""
        await self._check()
        view = memoryview(data).cast("B")
        total = len(view)
        pipe = self._out
        sent = 0
        with view:
            while True:
                if pipe.reader_gone:
                    raise BrokenPipeError(errno.EPIPE, "the peer closed the memory stream")
                room = pipe.capacity - len(pipe.data)
                if room > 0 and sent < total:
                    pipe.data += view[sent:sent + room]
                    sent += min(room, total - sent)
                    pipe.reader.wake()
                if sent >= total:
                    return
                try:
                    await pipe.writer
                except BaseException:
                    if sent:
                        self.close()  # part of the data is in: the stream cannot be resumed
                    raise
                self._budget = BUDGET
                if self._closed:
                    _closed()

    def write_nowait(self, data):
        """Put what of `data` fits into the connection at once; how many bytes went."""
        if self._closed:
            _closed()
        pipe = self._out
        if pipe.reader_gone:
            raise BrokenPipeError(errno.EPIPE, "the peer closed the memory stream")
        view = memoryview(data).cast("B")
        with view:
            taken = view[:max(0, pipe.capacity - len(pipe.data))]
            pipe.data += taken
            if len(taken):
                pipe.reader.wake()
            return len(taken)

    async def _check(self):
        """The checks before an operation: closed, interrupted (an interruption point even
        when the call completes at once), fairness budget."""
        if self._closed:
            _closed()
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)
        self._budget -= 1
        if self._budget <= SECOND and LOOK[self._budget] and spent(self):
            await IDLE

    def shutdown_write(self):
        """Close the sending side: the peer reads end of stream, and can still send to us."""
        if self._closed:
            _closed()
        self._out.eof = True
        self._out.reader.wake()

    # -- closing --------------------------------------------------------------------------

    def close(self):
        """Close this end at once (it never blocks); closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        out, inc = self._out, self._in
        out.eof = True
        out.reader.wake()  # the peer's reader: end of stream
        inc.reader_gone = True
        inc.data.clear()
        inc.writer.wake()  # the peer's writer: broken pipe
        error = OSError(errno.EBADF, "the memory stream was closed by another thread while "
                                     "this one was waiting on it")
        inc.reader.wake(error)  # our own waiters
        out.writer.wake(error)

    @property
    def closed(self):
        return self._closed

    # -- facts ----------------------------------------------------------------------------

    def fileno(self):
        """A memory stream has no file descriptor: ``io.UnsupportedOperation`` (an OSError)."""
        raise io.UnsupportedOperation("a memory stream has no file descriptor")

    @property
    def local_address(self):
        """A name for this end (``"memory-N-a"``)."""
        return self.name

    @property
    def peer_address(self):
        """The name of the other end."""
        return self.peer

    def buffered(self):
        """How many bytes written to this end wait to be read by the peer."""
        return len(self._out.data)

    def __repr__(self):
        state_ = "closed" if self._closed else f"{len(self._in.data)} bytes to read"
        return f"<conhook MemoryStream {self.name} <-> {self.peer} ({state_})>"


def _closed():
    raise OSError(errno.EBADF, "I/O on a closed memory stream")


_pairs = 0


def memory_stream_pair(max_buffer=DEFAULT_BUFFER):
    """Two connected in-memory streams ``(a, b)``: what ``a`` writes, ``b`` reads, and back.

    Each direction buffers at most `max_buffer` bytes (at least 1); a writer waits for room.
    Needs no scheduler to be made; reading and writing need one.
    """
    global _pairs
    if max_buffer < 1:
        raise ValueError(f"max_buffer must be at least 1, not {max_buffer!r}")
    _pairs += 1
    ab, ba = _Pipe(max_buffer), _Pipe(max_buffer)
    a = MemoryStream(ba, ab, f"memory-{_pairs}-a")
    b = MemoryStream(ab, ba, f"memory-{_pairs}-b")
    a.peer, b.peer = b.name, a.name
    return a, b


# -- pytest fixtures (plain functions; conhook.testing_fixtures makes them fixtures) -----------

async def virtual_clock_fixture():
    """Fixture ``virtual_clock``: an auto-jumping ``VirtualClock`` installed on the test's
    scheduler (a non-atomic fixture: the test must be non-atomic too)."""
    clock = VirtualClock().install()
    try:
        yield clock
    finally:
        clock.uninstall()


def memory_streams_fixture():
    """Fixture ``memory_streams``: a connected ``memory_stream_pair()``, closed afterwards."""
    a, b = memory_stream_pair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()
