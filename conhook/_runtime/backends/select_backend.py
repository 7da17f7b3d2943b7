"""Readiness through select(2): the last resort (limited to FD_SETSIZE descriptors).

select() fails as a whole (EBADF) when one of its fds was closed behind the kernel's back: each
closed one is then reported ready for everything, so that its waiters wake and meet the error in
their own system call, and is no longer watched.
"""
from __future__ import annotations

import errno
import os
import select
import time

from .interest import READ, WRITE


class SelectBackend:
    name = "select"
    readable = just_readable = READ
    writable = just_writable = WRITE
    __slots__ = ("_readers", "_writers")

    def __init__(self):
        self._readers = set()
        self._writers = set()

    def register(self, fd, mask):
        self.modify(fd, mask)

    def modify(self, fd, mask):
        (self._readers.add if mask & READ else self._readers.discard)(fd)
        (self._writers.add if mask & WRITE else self._writers.discard)(fd)

    def unregister(self, fd):
        self._readers.discard(fd)
        self._writers.discard(fd)

    def poll(self, timeout):
        readers, writers = self._readers, self._writers
        if not readers and not writers:
            # select() with three empty sets is an error on Windows; sleeping is what is meant.
            if timeout:
                time.sleep(timeout)
            return []
        try:
            r, w, x = select.select(readers, writers, readers | writers, timeout)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            return self._closed()
        events = {}
        for fd in r:
            events[fd] = READ
        for fd in w:
            events[fd] = events.get(fd, 0) | WRITE
        for fd in x:
            events[fd] = READ | WRITE
        return list(events.items())

    def _closed(self):
        """The watched fds that are closed, each ready for everything; no longer watched."""
        closed = []
        for fd in self._readers | self._writers:
            try:
                os.fstat(fd)
            except OSError:
                closed.append(fd)
                self.unregister(fd)
        return [(fd, READ | WRITE) for fd in closed]

    def close(self):
        pass
