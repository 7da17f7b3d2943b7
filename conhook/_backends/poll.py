"""Readiness through poll(2): the portable fallback where neither epoll nor kqueue exists.

POLLERR, POLLHUP and POLLNVAL are always reported and are mapped to READ | WRITE.  The timeout
is in milliseconds, rounded up so that a timer is never woken early.
"""
from __future__ import annotations

import math
import select

from . import READ, WRITE

_IN = select.POLLIN | select.POLLPRI
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL
_TO_POLL = (0, _IN, _OUT, _IN | _OUT)


class Backend:
    name = "poll"
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
        return [(fd, (READ if ev & _IN else 0) | (WRITE if ev & _OUT else 0)
                 | (READ | WRITE if ev & _ERR else 0)) for fd, ev in self._poll.poll(ms)]

    def close(self):
        pass
