"""Time: ``sleep`` and ``timeout`` blocks (docs/spec.md §3), on the kernel's timers.

Deadlines are taken on ``kernel.clock`` (the monotonic clock, or a test's virtual clock).
"""
from __future__ import annotations

import math

from .errors import Interrupted
from .kernel import current_kernel
from .threads import clear_interrupt, interrupt
from .traps import IDLE, Trap


class _Sleep(Trap):
    __slots__ = ("seconds", "entry")
    label = "sleep"

    def __init__(self, seconds):
        self.seconds = seconds

    def wait(self, kernel, thread):
        # The deadline is taken on the kernel's clock (conhook.testing may replace it).
        self.entry = kernel.call_at(kernel.clock() + self.seconds, thread)
        thread.parked_on = self

    def abort(self, kernel, thread):
        kernel.cancel_timer(self.entry)


def sleep(seconds):
    """``sleep@(seconds)``: park the calling thread for `seconds` (an interruption point).

    ``sleep@(0)`` is ``idle@()``.  Time is measured on the scheduler's clock: the monotonic
    clock, or a test's ``conhook.testing.VirtualClock``.
    """
    try:
        if seconds > 0:
            return _Sleep(seconds)
        if math.isnan(seconds):
            raise ValueError("sleep() needs a number of seconds, not NaN")
    except TypeError:
        raise TypeError(f"sleep() needs a number of seconds (an int or a float), not {seconds!r}") from None
    return IDLE


class timeout:
    """``with timeout(seconds):`` interrupt the block's body when `seconds` have passed.

    When the time runs out, the thread running the block is interrupted (its blocking calls
    raise ``Interrupted``, and so do those of the threads it started inside the block); when
    the ``Interrupted`` leaves the block, or the block ends normally after it was interrupted,
    the block raises ``TimeoutError``.  Entering and leaving never block.  Threads started
    inside the block by a scope opened outside it (``sibling`` in a function whose own body
    holds the ``with``) are not part of the block and are not interrupted.
    Timeouts nest; an outer one that runs out first wins.
    """
    __slots__ = ("seconds", "deadline", "_kernel", "_thread", "_entry", "fired")
    children = ()  # a timeout block starts no threads of its own (see threads.interrupt)

    def __init__(self, seconds):
        try:
            if math.isnan(seconds):
                raise ValueError("timeout() needs a number of seconds, not NaN")
        except TypeError:
            raise TypeError(f"timeout() needs a number of seconds (an int or a float), not {seconds!r}") from None
        self.seconds = seconds
        self.fired = False
        self._entry = None

    @property
    def reason(self):
        return f"timeout of {self.seconds} s ran out"

    def __enter__(self):
        kernel = self._kernel = current_kernel()
        thread = self._thread = kernel.current
        if thread.scopes is None:
            thread.scopes = [self]
        else:
            thread.scopes.append(self)
        self.deadline = kernel.clock() + self.seconds
        self._entry = kernel.call_at(self.deadline, self._fire)
        return self

    def _fire(self):
        thread = self._thread
        scopes = thread.scopes
        if scopes and self in scopes and thread.coro is not None:
            self.fired = True
            interrupt(self._kernel, thread, self, scopes.index(self) + 1)

    def __exit__(self, exc_type, exc, tb):
        thread = self._thread
        self._kernel.cancel_timer(self._entry)
        scopes = thread.scopes
        if scopes[-1] is self:
            scopes.pop()
        else:
            scopes.remove(self)
        if thread.interrupt is self:
            clear_interrupt(thread)
            if exc_type is None or issubclass(exc_type, Interrupted):
                raise TimeoutError(f"timed out after {self.seconds} s") from None
        return False

