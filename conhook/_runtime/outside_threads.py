"""Threads started from outside the kernel's threads (``kernel.outside``): no con function
started them, so no prejoin scope holds them.

Code outside the scheduler starts them: an OS thread with ``con.from_thread(fn,
token=...)`` (``from_thread``), asyncio code with ``con.from_aio`` on a hosted kernel
(``aio``), an interactive session's inputs (``session``).  Each starter keeps its own scope
for its threads (what the thread's end hands back to whoever waits for it); what the starters
share is here, answered once:

* Which threads: ``threads``, each with the name ``tree()`` draws its line under
  (``from_thread - fn - ...``, ``from_aio - fn - ...``, ``bootstrap - <module> - ...``), after
  the root thread's lines.
* The program's end: when the root thread finishes, no more may start (``closed``; what a
  starter still has queued is refused by its ``on_close`` callback), those running are
  interrupted, and the kernel is done when the last of them has finished, so nothing outlives
  ``bootstrap`` (as trio cancels its system tasks and ``asyncio.run`` its leftover Tasks).
* Deadlock: they are con threads like any other and wake nobody by existing.  What may start
  one later is the starter's to count in ``kernel.outside_waits`` (a live token does: an OS
  thread may call at any time; asyncio code does not, docs/hosted.md).

Part of the kernel's core: it imports nothing above it.
"""
from __future__ import annotations

from .threads import interrupt, interrupted_threads


class _RootFinished:
    """The interruption source of these threads at the program's end."""
    __slots__ = ()
    reason = "the program's root thread has finished"


ROOT_FINISHED = _RootFinished()


class OutsideThreads:
    """The kernel's threads that code outside it started (see the module docstring)."""
    __slots__ = ("threads", "closed", "_on_close", "calls")

    # (The kernel is passed to each method, not kept: the kernel holds this object, and a
    # reference back would make every kernel a cycle for the garbage collector.)

    def __init__(self):
        self.threads = {}  # thread -> the name its tree() line starts with, in starting order
        self.closed = False  # the root thread has finished (or the kernel is closed)
        self._on_close = []
        self.calls = None  # from_thread's queue of calls from OS threads holding a token

    def start(self, kernel, thread, name):
        """Make `thread` (its scope the starter's) ready; in the kernel's OS thread, not closed."""
        self.threads[thread] = name
        kernel.ready.append(thread)

    def finished(self, kernel, thread):
        """`thread`'s scope says it has finished; the last one after the root's ends the kernel."""
        interrupted_threads.discard(thread)
        thread.coro = thread.context = None
        self.threads.pop(thread, None)
        if self.closed and not self.threads:
            kernel.done = True

    def on_close(self, callback):
        """Call ``callback()`` once, when no more threads may start."""
        self._on_close.append(callback)

    def close(self):
        if not self.closed:
            self.closed = True
            callbacks, self._on_close = self._on_close, []
            for callback in callbacks:
                callback()

    def root_finished(self, kernel):
        """The root thread has finished: close, interrupt the running threads.  True if none
        runs (the kernel is done); else the last to finish ends it."""
        self.close()
        for thread in list(self.threads):
            interrupt(kernel, thread, ROOT_FINISHED)
        return not self.threads
