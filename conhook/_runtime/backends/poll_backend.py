"""Readiness through poll(2): the portable fallback where neither epoll nor kqueue exists.

POLLERR, POLLHUP and POLLNVAL are always reported; they are among both ``readable`` and
``writable``.  The timeout
is in milliseconds, rounded up so that a timer is never woken early.
"""
from __future__ import annotations

import math
import select

from .interest import READ, WRITE

_IN = select.POLLIN | select.POLLPRI
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL
_TO_POLL = tuple((_IN if mask & READ else 0) | (_OUT if mask & WRITE else 0) for mask in range(4))


class PollBackend:
    name = "poll"
    readable = _IN | _ERR
    writable = _OUT | _ERR
    just_readable = select.POLLIN
    just_writable = _OUT
    __slots__ = ("_poll",)

    def __init__(self):
        self._poll = select.poll()

    def register(self, fd, mask):
        self._poll.register(fd, _TO_POLL[mask])

    def modify(self, fd, mask):
        self._poll.modify(fd, _TO_POLL[mask])

    def unregister(self, fd):
        try:
            self._poll.unregister(fd)
        except KeyError:
            pass

    def poll(self, timeout):
        ms = None if timeout is None else math.ceil(timeout * 1000)
        return self._poll.poll(ms)

    def close(self):
        pass
