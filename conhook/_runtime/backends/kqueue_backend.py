"""Readiness through kqueue (macOS and the BSDs).

Facts relied on:
* Reading and writing are two separate filters (EVFILT_READ, EVFILT_WRITE) of one fd, each
  added and deleted on its own; ``modify`` changes only the filters whose interest changed.
* EV_EOF and EV_ERROR are reported on the filter itself; both wake the waiters, which then
  see the error or the end of file from their own system call.
* A closed fd leaves the kqueue by itself, so deleting its filters may fail harmlessly.
"""
from __future__ import annotations

import select

from .interest import READ, WRITE

_MAX_EVENTS = 1024


class KqueueBackend:
    name = "kqueue"
    readable = just_readable = READ
    writable = just_writable = WRITE
    __slots__ = ("_kqueue", "_masks")

    def __init__(self):
        self._kqueue = select.kqueue()
        self._masks = {}

    def register(self, fd, mask):
        self._masks[fd] = 0
        self.modify(fd, mask)

    def modify(self, fd, mask):
        old = self._masks.get(fd, 0)
        changes = []
        for bit, kfilter in ((READ, select.KQ_FILTER_READ), (WRITE, select.KQ_FILTER_WRITE)):
            if mask & bit and not old & bit:
                changes.append(select.kevent(fd, kfilter, select.KQ_EV_ADD))
            elif old & bit and not mask & bit:
                changes.append(select.kevent(fd, kfilter, select.KQ_EV_DELETE))
        self._masks[fd] = mask
        if changes:
            self._kqueue.control(changes, 0, 0)

    def unregister(self, fd):
        old = self._masks.pop(fd, 0)
        for bit, kfilter in ((READ, select.KQ_FILTER_READ), (WRITE, select.KQ_FILTER_WRITE)):
            if old & bit:
                try:
                    self._kqueue.control([select.kevent(fd, kfilter, select.KQ_EV_DELETE)], 0, 0)
                except OSError:
                    pass  # closed already: the kqueue dropped it

    def poll(self, timeout):
        events = {}
        for kev in self._kqueue.control(None, _MAX_EVENTS, timeout):
            if kev.flags & select.KQ_EV_ERROR:
                bit = READ | WRITE
            else:
                bit = READ if kev.filter == select.KQ_FILTER_READ else WRITE
            events[kev.ident] = events.get(kev.ident, 0) | bit
        return list(events.items())

    def fileno(self):
        """The kqueue fd: itself readable while some watched fd is ready (a hosted kernel's host watches it)."""
        return self._kqueue.fileno()

    def close(self):
        self._kqueue.close()
