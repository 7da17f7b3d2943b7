"""Waking a scheduler that may be blocked in its backend, from a signal handler or another OS thread.

An eventfd on Linux, a non-blocking socket pair elsewhere.  Its read end is registered with the
backend for READ like any other fd; ``wake()`` makes the next (or current) poll return, and the
kernel drains it when it reports readable.  Repeated wakes before a drain cost nothing more.
"""
from __future__ import annotations

import os
import socket


class Wakeup:
    __slots__ = ("_rfd", "_wfd", "_closers", "wake", "drain", "__weakref__")

    def __init__(self):
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._rfd = self._wfd = fd
            self._closers = (lambda: os.close(fd),)
            self.wake = self._wake_eventfd  # (a bound method: it keeps the fd open while held)
            self.drain = self._drain_eventfd
        else:
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._rfd, self._wfd = r.fileno(), w.fileno()
            self._closers = (r.close, w.close)
            send, recv = w.send, r.recv

            def wake():
                try:
                    send(b"\0")
                except OSError:
                    pass  # buffer full: wake-ups are pending already

            def drain():
                try:
                    while recv(4096):
                        pass
                except OSError:
                    pass

            self.wake = wake
            self.drain = drain

    def fileno(self):
        return self._rfd

    def _wake_eventfd(self):
        try:
            os.eventfd_write(self._wfd, 1)
        except OSError:
            pass  # counter saturated or closed: a wake-up is pending anyway, or nobody listens

    def _drain_eventfd(self):
        try:
            os.eventfd_read(self._rfd)
        except OSError:
            pass

    def close(self):
        closers, self._closers = self._closers, ()
        for close in closers:
            close()

    def __del__(self):
        self.close()
