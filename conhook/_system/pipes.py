"""A pipe's end as a byte stream: a child process's stdin, stdout or stderr.

It keeps the stream contract (``conhook._network.stream_contract``) in the one direction a
pipe has: the read end has ``read@`` (``EOFError`` once the writer closed and all was read),
the write end ``write@`` (``BrokenPipeError`` once the reader is gone; SIGPIPE is ignored by
Python) and ``shutdown_write()``, which closes it so that the reader sees end of stream.  The
other direction raises ``io.UnsupportedOperation``.  As on sockets: the fd is non-blocking, the
system call is tried first and the thread parks only on EAGAIN, every ``read@``/``write@`` is an
interruption point, the fairness budget applies, a write interrupted after part of its data
went out closes the pipe, and ``close()`` never blocks and wakes a waiter with ``OSError(EBADF)``.
"""
from __future__ import annotations

import errno
import io
import os
import warnings

from .._network.stream_contract import BUDGET, READ_SIZE, ByteStream
from .._runtime.fd_waits import ReadWait, WriteWait
from .._runtime.kernel import current_kernel, current_thread, state
from .._runtime.threads import interrupted_threads
from .._runtime.traps import IDLE, interrupted, reusable


def _interruption_point():
    thread = current_thread()
    if thread.interrupt is not None:
        raise interrupted(thread)


class PipeStream(ByteStream):
    """One end of a pipe, owning its fd (made non-blocking).  `name` says which pipe it is
    (``"stdout of process 1234"``), for errors and ``repr``."""
    __slots__ = ("_fd", "_writable", "_wait", "_budget", "name")

    def __init__(self, fd, writable, name):
        os.set_blocking(fd, False)
        self._fd = fd
        self._writable = writable
        self._wait = reusable(WriteWait(fd) if writable else ReadWait(fd))
        self._budget = BUDGET
        self.name = name

    def _turn(self):
        """The interruption point and the fairness budget of every operation."""
        if self._fd < 0:
            raise OSError(errno.EBADF, f"I/O on the closed {self.name}")
        if interrupted_threads:
            _interruption_point()
        self._budget -= 1
        return self._budget == 0

    async def read(self, max_bytes=READ_SIZE):
        """``read@(max_bytes=65536)``: the bytes available now (at least one, at most
        `max_bytes`), waiting until some arrive; ``EOFError`` at the end of the stream."""
        if self._writable:
            raise io.UnsupportedOperation(f"the {self.name} is for writing, not reading")
        if max_bytes < 1:
            raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}")
        if self._turn():
            self._budget = BUDGET
            await IDLE
        while True:
            try:
                data = os.read(self._fd, max_bytes)
                break
            except BlockingIOError:
                current_kernel()  # outside a scheduler, a wait is an error that says so
                await self._wait
                self._budget = BUDGET
                if self._fd < 0:
                    raise OSError(errno.EBADF, f"I/O on the closed {self.name}") from None
        if data:
            return data
        raise EOFError(f"end of stream: the {self.name} was closed by the process")

    async def write(self, data):
        """``write@(data)``: hand all of `data` to the pipe, waiting while it is full."""
        if not self._writable:
            raise io.UnsupportedOperation(f"the {self.name} is for reading, not writing")
        if self._turn():
            self._budget = BUDGET
            await IDLE
        view = memoryview(data).cast("B")
        with view:
            total, sent = view.nbytes, 0
            while True:
                try:
                    sent += os.write(self._fd, view[sent:])
                except BlockingIOError:
                    pass
                if sent >= total:
                    return
                current_kernel()
                try:
                    await self._wait
                except BaseException:
                    if sent:
                        self.close()  # part of the data is out: the pipe cannot be resumed
                    raise
                self._budget = BUDGET
                if self._fd < 0:
                    raise OSError(errno.EBADF, f"I/O on the closed {self.name}")

    def shutdown_write(self):
        """Close the write end: the process reads end of stream."""
        if not self._writable:
            raise io.UnsupportedOperation(f"the {self.name} is for reading: close() it instead")
        self.close()

    def close(self):
        """Close the pipe's end at once (it never blocks); closing again does nothing."""
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        kernel = state.kernel
        if kernel is not None:
            kernel.notify_closing(fd, self._closed_while_waiting)
        os.close(fd)

    def _closed_while_waiting(self):
        return OSError(errno.EBADF, f"the {self.name} was closed by another thread while "
                                    f"this one was waiting on it")

    @property
    def closed(self):
        return self._fd < 0

    def fileno(self):
        """The pipe's file descriptor, or -1 once closed."""
        return self._fd

    def __del__(self):
        if self._fd >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            try:
                self.close()
            except Exception:  # noqa: BLE001  (a finaliser must not raise)
                pass

    def __repr__(self):
        return f"<con pipe: {self.name}{' (closed)' if self._fd < 0 else ''}>"
