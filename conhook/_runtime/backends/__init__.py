"""Readiness backends: one module per OS mechanism, all with the same small interface.

Every backend is a class with these methods, and nothing else is used by the kernel::

    register(fd, mask)    start watching fd; mask is READ, WRITE or both (never 0)
    modify(fd, mask)      change what a registered fd is watched for (never 0)
    unregister(fd)        stop watching fd (it may already be closed)
    poll(timeout)         wait up to timeout seconds (None: forever, 0: do not block) and
                          return a list of (fd, events) pairs
    close()
    fileno()              epoll and kqueue only: an fd that is readable while some watched
                          fd is ready, for a host loop to watch (``hosted``); poll and select
                          have none, so they cannot be hosted
    readable, writable    class attributes: the bits of `events` that wake an fd's reader,
                          and its writer
    just_readable,        class attributes: the value of `events` that says "readable"
    just_writable         ("writable") and nothing else, the common cases, which the
                          kernel tests with one comparison

`events` are the mechanism's own bits where it has them (epoll, poll), so that the list the
system call returns is handed on as it is: the kernel tests each pair against ``readable``
and ``writable``, and nothing is translated per event on the hot path.  Errors and hang-ups
are among both sets of bits, so that whoever waits on the fd wakes up and learns what
happened from its own system call.  Each fd is registered once and its
interest changed only when needed; the kernel keeps track of what is registered.

The backend is chosen once per scheduler: epoll on Linux, kqueue on macOS and the BSDs,
poll elsewhere, select last.  ``CONHOOK_BACKEND`` (``epoll``, ``kqueue``, ``poll`` or
``select``) forces one.
"""
from __future__ import annotations

import os
import select

from .interest import READ, WRITE  # noqa: F401  (re-exported: the kernel's and the waiters' bits)

PREFERENCE = ("epoll", "kqueue", "poll", "select")


def available() -> list[str]:
    """The backends this machine has, best first (each is named after its ``select`` function)."""
    return [name for name in PREFERENCE if hasattr(select, name)]


def backend_class(name: str | None = None):
    """The backend class to use: `name`, else ``$CONHOOK_BACKEND``, else the best available."""
    if name is None:
        name = os.environ.get("CONHOOK_BACKEND") or None
    if name is None:
        name = available()[0]
    elif name not in PREFERENCE:
        raise ValueError(
            f"unknown conhook backend {name!r}: choose one of {', '.join(PREFERENCE)} "
            f"(CONHOOK_BACKEND or the backend argument)")
    elif name not in available():
        raise ValueError(
            f"conhook backend {name!r} is not available on this machine; "
            f"available: {', '.join(available())}")
    if name == "epoll":
        from .epoll_backend import EpollBackend
        return EpollBackend
    if name == "kqueue":
        from .kqueue_backend import KqueueBackend
        return KqueueBackend
    if name == "poll":
        from .poll_backend import PollBackend
        return PollBackend
    from .select_backend import SelectBackend
    return SelectBackend
