"""Waiting for file descriptors: the traps the networking layer builds on.

``await wait_readable(fd)`` parks the calling thread until `fd` (an int or an object with
``fileno()``) is readable, ``await wait_writable(fd)`` until it is writable.  Both are
interruption points.  The fd is registered with the backend on the first wait and stays
registered; its interest is narrowed only when the backend reports readiness that nobody waits
for.  Call ``notify_closing(fd)`` before closing an fd that may have been waited on: it
unregisters it and wakes its waiters with ``OSError(EBADF)``.

Use them only after the system call said it would block (EAGAIN): readiness may be reported
for data that was already consumed, so callers loop on "try, then wait".

Fairness (docs/spec.md §1.5): an I/O call that completes without waiting makes no switch, so a thread
with a fast peer could starve the others.  Such a call asks ``spend()``, and yields when told::

    if spend():
        await idle()

Each turn of the run loop grants ``BUDGET`` (128) such operations, shared by the threads that
run in it; once they are spent, the caller yields and the others run and I/O is polled.
"""
from __future__ import annotations

from .backends import READ, WRITE
from .kernel import BUDGET, current_kernel, state  # noqa: F401  (BUDGET: documented here)
from .traps import Trap


class _IOWait(Trap):
    __slots__ = ("fd", "direction")

    def __init__(self, fd, direction):
        self.fd = fd if type(fd) is int else fd.fileno()
        self.direction = direction

    def wait(self, kernel, thread):
        exc = kernel.wait_io(thread, self.fd, self.direction)
        if exc is None:
            thread.parked_on = self
        return exc

    def abort(self, kernel, thread):
        kernel.abort_io(thread, self.fd, self.direction)


def wait_readable(fd):
    """Park the calling thread until `fd` is readable (an interruption point)."""
    return _IOWait(fd, READ)


def wait_writable(fd):
    """Park the calling thread until `fd` is writable (an interruption point)."""
    return _IOWait(fd, WRITE)


def notify_closing(fd):
    """`fd` is about to be closed: forget it and wake its waiters with OSError(EBADF)."""
    kernel = current_kernel()
    kernel.notify_closing(fd if type(fd) is int else fd.fileno())


def spend():
    """Count one operation that completed without waiting; True when the caller must now
    ``await idle()`` because this turn's budget is spent."""
    kernel = state.kernel
    kernel.budget -= 1
    return kernel.budget < 0
