"""The hosted kernel: conhook's scheduler as a guest of a running asyncio event loop (docs/hosted.md).

``con.bootstrap(main, loop="asyncio" | "uvloop")`` and ``python -m conhook --loop ...`` run
the program here.  The kernel is the standalone one; only who blocks changes.  The host loop
(asyncio's own or uvloop's) is driven through its public methods only:

* ``add_reader`` on the kernel's backend fd: an epoll or kqueue fd is itself readable while
  some fd it watches is ready (the kernel's wake-up socket included, so ``post`` from a signal
  handler or a worker OS thread wakes the host too).  The poll and select backends have no
  such fd: a kernel on them (``CONHOOK_BACKEND``) cannot be hosted, and says so.
* ``call_soon``: a turn (``Kernel.run_loop(once=True)``: poll without blocking, fire due
  timers, run each ready thread once).  While threads are ready, one turn is queued at a
  time, so the host's own callbacks and I/O take their turns between the kernel's: neither
  side starves the other.
* ``call_later``: the kernel's next timer, mirrored; rearmed only when the first deadline changes.

Nothing of this runs in a standalone kernel: it reaches hosting only through this module,
which ``bootstrap`` imports when a loop is asked for.

Deadlock, hosted: as standalone, no con thread is ready and nothing can wake one, where a
thread waiting on asyncio (``con.aio@``) counts as a pending wake-up.  A con thread that asyncio
code started (``con.from_aio``) is a con thread like any other (a pending wake-up only while it
waits in ``aio@``).  A thread that waits on a con primitive which only asyncio code could later
set is a deadlock, as it is standalone: wait on asyncio instead
(``aio@(server.serve_forever())``).

When the root thread has finished, con threads that asyncio code started and still awaits are
interrupted, and ``bootstrap`` returns once they have finished (as ``asyncio.run`` cancels the
Tasks left over): the kernel's own rule for threads started from outside (``outside_threads``).
"""
from __future__ import annotations

import asyncio
import threading


class _Hosts(threading.local):
    host = None  # the Host of the kernel hosted last in this OS thread (maybe finished), if any


hosts = _Hosts()

LOOPS = ("asyncio", "uvloop")


def loop_factory(name):
    """The event loop factory for ``loop=name``; ValueError or ImportError that says what to do."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ImportError("loop='uvloop' needs the uvloop package: pip install uvloop "
                              "(or run on loop='asyncio')") from None
        return uvloop.new_event_loop
    raise ValueError(f"unknown host loop {name!r}: choose one of {', '.join(LOOPS)} "
                     f"(con.bootstrap(main, loop=...) or python -m conhook --loop ...)")


class Host:
    """The kernel's side of the host loop: the reader, the queued turn and the mirrored timer."""
    __slots__ = ("kernel", "loop", "fd", "scheduled", "timer", "deadline", "finished", "over", "library")

    def __init__(self, kernel, loop, sniffio=None):
        fileno = getattr(kernel.backend, "fileno", None)
        if fileno is None:
            raise RuntimeError(
                f"the {kernel.backend.name} backend cannot be hosted on an asyncio loop: it has no "
                f"fd that the loop could watch; unset CONHOOK_BACKEND (epoll or kqueue can be hosted)")
        self.kernel, self.loop, self.fd = kernel, loop, fileno()
        self.scheduled = False
        self.timer = self.deadline = None
        self.finished = loop.create_future()
        self.over = False  # (finished.done(), read at every turn without a call)
        # sniffio's thread_local as a dict: its attributes in this OS thread, the loop's (a Host
        # is made there), whose "name" is "conhook" during a turn.  (At every turn, and so at
        # every aio@: 0.9k instructions through the dict, 2.0k through threading.local's own
        # getattr and setattr, 3.11.)
        self.library = None if sniffio is None else sniffio.__dict__

    def start(self):
        hosts.host = self
        self.loop.add_reader(self.fd, self.turn)
        self.schedule()

    def schedule(self):
        """Queue a turn on the host loop (one at a time)."""
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.turn)

    def turn_now(self):
        """Run a turn from a host callback (a Task's done callback), unless one is queued already."""
        if not self.scheduled:
            self.turn()

    def turn(self):
        self.scheduled = False
        kernel = self.kernel
        if self.over:
            return
        library = self.library
        if library is not None:
            previous = library.get("name")
            library["name"] = "conhook"
            try:
                kernel.run_loop(True)
            finally:
                library["name"] = previous
        else:
            kernel.run_loop(True)
        if not kernel.done:
            if kernel.ready:
                self.schedule()
                return
            if kernel.outside_waits and not kernel.timers and self.timer is None and kernel.on_block is None:
                return  # a thread waits on asyncio, no timer: no deadlock, nothing to mirror
            timeout = kernel.poll_timeout()  # (finds a deadlock, which readies threads)
            if not kernel.done:
                if kernel.ready:
                    self.schedule()
                else:
                    self._mirror_timer(timeout)
                return
        self._finish()

    def _mirror_timer(self, timeout):
        timers = self.kernel.timers
        deadline = timers[0][0] if timers else None
        if deadline == self.deadline and self.timer is not None:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadline = deadline
        if timeout is not None:
            self.timer = self.loop.call_later(timeout, self._timer_fired)

    def _timer_fired(self):
        self.timer = self.deadline = None
        self.turn()

    def _finish(self):
        self.over = True
        self.kernel.close_orphans()
        self.close()
        if not self.finished.done():
            self.finished.set_result(None)

    def close(self):
        # (hosts.host stays: from_aio in the loop's leftover Tasks says the program has finished)
        self.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


async def host_run(kernel, root_coro, sniffio=None):
    """Run `root_coro` as the root thread of `kernel`, a guest of the running loop; return
    (value, exception) once the root (and every thread asyncio code started) has finished."""
    kernel.start(root_coro)
    try:
        host = Host(kernel, asyncio.get_running_loop(), sniffio)
    except BaseException:
        kernel.stop()
        kernel.root.coro.close()
        raise
    try:
        host.start()
        await asyncio.shield(host.finished)  # (a cancelled main Task must not lose the threads)
    finally:
        host.close()
        kernel.stop()
    return kernel.outcome


def run(kernel, root_coro, loop, sniffio=None):
    """``bootstrap(..., loop=...)``: a new `loop` event loop that hosts `kernel` until the program ends."""
    factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(host_run(kernel, root_coro, sniffio))
