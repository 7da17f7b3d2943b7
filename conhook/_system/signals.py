"""Signals delivered to a con thread: ``with signals(SIGHUP, ...) as received:`` (docs/spec.md §3).

Design rules:
* While the block is open, each signal it names has a Python handler of ours; on leaving, the
  previous handlers are put back.  Signals it does not name keep whatever handles them
  (conhook's own SIGINT, SIGTERM and SIGUSR1 included); naming one of those hands it to the
  block instead for its duration.
* The handler runs in the main OS thread between any two bytecodes, maybe half-way through an
  update of the kernel, so it touches nothing of the kernel's but ``post``: it adds the signal
  to the block's pending set and posts a delivery, which the kernel runs in its next poll.  A
  signal arriving just before the poll blocks still wakes it: the kernel's wake-up socket is
  the C-level wake-up fd (``signal.set_wakeup_fd``) while the block is open.
* Pending signals are an ordered set: ``get@()`` returns them in the order they first arrived
  (as Python ran their handlers: signals that arrive together run in the order of their
  numbers), and a signal that arrives again while it is still pending is coalesced with it.  So a flood
  costs no memory, and the last of each kind is never lost: one that arrives after its kind
  was taken is pending again.
* A thread waiting in ``get@()`` keeps the program from being declared deadlocked: a signal
  can still come (the kernel counts it in ``outside_waits``).
* Signals still pending when the block ends are raised again (``signal.raise_signal``) for the
  restored handlers, as trio does, so that none is silently dropped.  A thread still waiting in
  ``get@()`` then gets ``RuntimeError``.
"""
from __future__ import annotations

import signal
import threading

from .._runtime.kernel import current_kernel, current_thread
from .._runtime.traps import WaitQueue, interrupted

__all__ = ["signals"]

_ENDED = object()  # what a waiting get@() is handed when the block ends


class _Waiters(WaitQueue):
    """The threads in ``get@()``.  The kernel counts them (``outside_waits``): a program whose
    threads only wait for signals is waiting for the outside world, not deadlocked."""
    __slots__ = ()

    def wait(self, kernel, thread):
        kernel.outside_waits += 1
        super().wait(kernel, thread)

    def abort(self, kernel, thread):
        kernel.outside_waits -= 1
        super().abort(kernel, thread)

    def wake_first(self, kernel, value=None):
        kernel.outside_waits -= 1
        return super().wake_first(kernel, value)


class signals:
    """``with signals(signal.SIGHUP, ...) as received:`` deliver these signals to con threads:
    ``signum = received.get@()`` waits for the next one and returns it (a ``signal.Signals``).

    In the main OS thread of a running scheduler only.  See the module's docstring for the
    order, the coalescing and the handlers' restoration.
    """
    __slots__ = ("signums", "_pending", "_waiters", "_kernel", "_previous", "_previous_wakeup")

    def __init__(self, *signums):
        if not signums:
            raise ValueError("signals() needs at least one signal, e.g. signals(signal.SIGHUP)")
        self.signums = tuple(dict.fromkeys(signal.Signals(s) for s in signums))
        self._pending = {}  # signum -> None: an ordered set (a dict keeps insertion order)
        self._waiters = _Waiters("signal")
        self._kernel = self._previous = self._previous_wakeup = None

    def __enter__(self):
        kernel = current_kernel()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("con.signals() works in the main OS thread only (where Python "
                               "runs signal handlers)")
        if self._kernel is not None:
            raise RuntimeError(f"{self!r} is already open: make a new one")
        self._previous = {}
        try:
            for signum in self.signums:
                self._previous[signum] = signal.signal(signum, self._handler)
        except BaseException:
            self._restore()
            raise
        self._previous_wakeup = signal.set_wakeup_fd(kernel.signal_wakeup_fd(),
                                                     warn_on_full_buffer=False)
        self._kernel = kernel
        return self

    def __exit__(self, *exc_info):
        kernel, self._kernel = self._kernel, None
        signal.set_wakeup_fd(self._previous_wakeup)
        self._restore()
        while self._waiters:
            self._waiters.wake_first(kernel, _ENDED)
        pending, self._pending = self._pending, {}
        for signum in pending:
            signal.raise_signal(signum)  # for the restored handler: none is dropped
        return False

    def _restore(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = None

    def _handler(self, signum, frame):
        self._pending[signum] = None  # at its first arrival's place if still pending
        kernel = self._kernel
        if kernel is not None:
            kernel.post(self._deliver)

    def _deliver(self):
        """In the kernel: hand pending signals to the waiting threads, in order."""
        kernel, pending, waiters = self._kernel, self._pending, self._waiters
        while pending and waiters:
            signum = next(iter(pending))
            del pending[signum]
            waiters.wake_first(kernel, signum)

    async def get(self):
        """``get@()``: the next signal (a ``signal.Signals``), waiting until one arrives."""
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)
        if self._kernel is None:
            raise RuntimeError(f"get@() on {self!r} outside its with block")
        pending = self._pending
        if pending:
            signum = next(iter(pending))
            del pending[signum]
            return signal.Signals(signum)
        await self._waiters
        signum, thread.value = thread.value, None
        if signum is _ENDED:
            raise RuntimeError(f"the with block of {self!r} ended while get@() waited")
        return signal.Signals(signum)

    def __repr__(self):
        names = ", ".join(s.name for s in self.signums)
        return f"<con.signals({names}), {len(self._pending)} pending>"
