"""Waiting for file descriptors: how streams, listeners and everything above wait for an fd.

Only the kernel's module reads and writes its per-fd records: the traps here park a thread
through the kernel's methods (``wait_io``, ``wait_any_readable``, ``abort_io``,
``notify_closing``), or are the kernel's own (``FdWait``):

* ``ReadWait(fd)`` / ``WriteWait(fd)`` (both ``FdWait``): park until `fd` is readable /
  writable.  A stream or a listener makes one per direction and awaits it at every wait,
  through ``traps.reusable`` (no allocation, no Python frame per wait).
* ``await wait_readable(fd)`` / ``await wait_writable(fd)``: a one-off wait, for code that
  waits on an fd now and then (`fd` is an int or has ``fileno()``).
* ``AnyReadable(fds)``: park until any of several fds is readable (a listener on several
  addresses).

All are interruption points.  The fd is registered with the backend on its first wait and
stays registered; its interest is narrowed only when the backend reports readiness that nobody
waits for.  Call ``notify_closing(fd)`` before closing an fd that may have been waited on: it
unregisters it and wakes its waiters with ``OSError(EBADF)``.

Wait only after the system call said it would block (EAGAIN): readiness may be reported for
data that was already consumed, so callers loop on "try, then wait".
"""
from __future__ import annotations

from .backends import READ
from .kernel import FdWait, ReadWait, WriteWait, current_kernel  # noqa: F401  (FdWait: documented here)
from .traps import Trap


def wait_readable(fd):
    """Park the calling thread until `fd` is readable (an interruption point)."""
    return ReadWait(fd if type(fd) is int else fd.fileno())


def wait_writable(fd):
    """Park the calling thread until `fd` is writable (an interruption point)."""
    return WriteWait(fd if type(fd) is int else fd.fileno())


class AnyReadable(Trap):
    """Park a thread until any of several fds is readable.

    It stands in the kernel's records as the ``any_reader`` of each fd (see
    ``Kernel.wait_any_readable``); the first fd that becomes readable calls it, and it then
    withdraws from the others and hands the kernel the thread to wake.
    """
    __slots__ = ("fds", "kernel", "thread")

    def __init__(self, fds):
        self.fds = fds
        self.kernel = self.thread = None

    def wait(self, kernel, thread):
        self.kernel = kernel
        for i, fd in enumerate(self.fds):
            exc = kernel.wait_any_readable(self, fd)
            if exc is not None:
                for done in self.fds[:i]:
                    kernel.abort_io(self, done, READ)
                return exc
        self.thread = thread
        thread.parked_on = self

    def __call__(self):
        """One of the fds is readable (or closing): withdraw from all, return the thread to
        wake (the kernel has already forgotten us for that fd)."""
        thread = self.thread
        self._withdraw(self.kernel)
        return thread

    def abort(self, kernel, thread):
        self._withdraw(kernel)

    def _withdraw(self, kernel):
        for fd in self.fds:
            kernel.abort_io(self, fd, READ)  # a no-op where we no longer wait
        self.thread = None

    def cancel(self, exc):
        """Wake the waiting thread, if any, with `exc` (its listener is being closed)."""
        thread = self.thread
        if thread is not None:
            kernel = self.kernel
            self._withdraw(kernel)
            thread.pending = exc
            kernel.wake(thread)


def notify_closing(fd):
    """`fd` is about to be closed: forget it and wake its waiters with OSError(EBADF)."""
    kernel = current_kernel()
    kernel.notify_closing(fd if type(fd) is int else fd.fileno())
