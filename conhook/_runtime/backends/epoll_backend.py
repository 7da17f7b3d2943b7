"""Readiness through Linux epoll, level-triggered.

Facts relied on:
* EPOLLERR and EPOLLHUP are always reported, whether asked for or not; they are among both
  ``readable`` and ``writable`` so that the waiters wake and see the error from their own
  system call.
* Closing an fd removes it from the epoll set only when no duplicate of it remains open, so
  the kernel always unregisters an fd before it is closed (``notify_closing``).
* Interest is level-triggered: the kernel narrows it when nobody waits any more, so a
  readable socket that nobody reads from does not make every poll return at once.
"""
from __future__ import annotations

import select

from .interest import READ, WRITE

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_TO_EPOLL = tuple((_IN if mask & READ else 0) | (_OUT if mask & WRITE else 0) for mask in range(4))


class EpollBackend:
    name = "epoll"
    readable = _IN | _ERR
    writable = _OUT | _ERR
    just_readable = _IN
    just_writable = _OUT
    __slots__ = ("_epoll",)

    def __init__(self):
        self._epoll = select.epoll()

    def register(self, fd, mask):
        self._epoll.register(fd, _TO_EPOLL[mask])

    def modify(self, fd, mask):
        self._epoll.modify(fd, _TO_EPOLL[mask])

    def unregister(self, fd):
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # already closed: the OS forgot it together with the fd

    def poll(self, timeout):
        return self._epoll.poll(-1 if timeout is None else timeout)

    def fileno(self):
        """The epoll fd: itself readable while some watched fd is ready (a hosted kernel's host watches it)."""
        return self._epoll.fileno()

    def close(self):
        self._epoll.close()
