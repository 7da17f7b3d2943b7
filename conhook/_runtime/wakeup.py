"""Waking a scheduler that may be blocked in its backend, from a signal handler or another OS thread.

A non-blocking socket pair.  Its read end is registered with the
backend for READ like any other fd; ``wake()`` makes the next (or current) poll return, and the
kernel drains it when it reports readable.  Repeated wakes before a drain cost nothing more.
"""
from __future__ import annotations

import socket


class Wakeup:
    __slots__ = ("_reader", "_writer", "wake", "drain", "__weakref__")

    def __init__(self):
        # A socket pair, not an eventfd: it also serves as the signal wake-up fd, to which
        # CPython's C-level signal handler writes one byte (an eventfd refuses that).
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._reader, self._writer = reader, writer
        send, recv = writer.send, reader.recv

        def wake():
            try:
                send(b"\0")
            except OSError:
                pass  # buffer full (a wake-up is pending already) or closed (nobody listens)

        def drain():
            try:
                while recv(4096):
                    pass
            except OSError:
                pass

        self.wake = wake
        self.drain = drain

    def fileno(self):
        return self._reader.fileno()

    def signal_fileno(self):
        """The write end, for ``signal.set_wakeup_fd``: a signal then wakes a blocked poll."""
        return self._writer.fileno()

    def close(self):
        self._reader.close()
        self._writer.close()

    def __del__(self):
        self.close()
