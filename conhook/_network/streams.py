"""Streams: a connected socket with ``read@``, ``write@`` and friends (docs/spec.md §3).

Design rules (the costs behind them: docs/benchmarks.md, "What the machine costs"):
* Try the system call first, and park only when it says EAGAIN; a call that completes at once
  returns without a trip through the scheduler.  Exception: after a short read the socket is
  most likely drained, so the next read waits for readiness first and does not pay for a
  ``recv`` that fails.
* Fairness (docs/spec.md §1.5): a stream counts the operations it completed at once in a row; after
  ``BUDGET`` of them it yields (``idle``), so one fast peer cannot starve the other threads or
  keep the scheduler from polling.  Any wait resets the count.
* The fd is registered with the backend by the kernel on the first wait and stays registered;
  the traps for waiting are made once per stream.  Nothing else is allocated per operation but
  the coroutine and the bytes read.
* Every ``read@`` and ``write@`` is an interruption point, even when it could complete at once
  (docs/spec.md §1.4); that costs one test of ``interrupted_threads``, which is empty unless some thread
  is interrupted.  Outside a scheduler, the first operation that has to wait raises the
  explanatory RuntimeError (one that completes at once needs no scheduler).  A thread
  interrupted while it waits leaves the stream as it was, except a write that had already
  sent part of its data: the peer could never tell where it stopped, so the stream is closed.
* ``close()`` never blocks and is idempotent.  It unregisters the fd first and wakes any thread
  waiting on it with ``OSError(EBADF)`` saying the stream was closed.
* SIGPIPE never kills the process: Python ignores it at start-up, and on top of that sends use
  ``MSG_NOSIGNAL`` (Linux) or the socket has ``SO_NOSIGPIPE`` (macOS, BSD), so that a program
  that restored the default handler gets ``BrokenPipeError`` too.
"""
from __future__ import annotations

import errno
import socket
import warnings

from .._runtime.backends import READ, WRITE
from .._runtime.kernel import current_kernel, state
from .._runtime.threads import interrupted_threads
from .._runtime.traps import IDLE, Trap, interrupted

BUDGET = 128  # operations completed at once in a row before a stream yields (as Tokio does)
READ_SIZE = 65536

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_SO_NOSIGPIPE = getattr(socket, "SO_NOSIGPIPE", None)


class _Wait(Trap):
    """Park the thread until the stream's fd is ready (an interruption point).

    The same as ``_io.wait_readable``/``wait_writable``, made once per stream and parked with
    fewer steps: this is the hot path of every server.  After the first wait it keeps the
    kernel's record of the fd, which stays the same object until the fd is closed (and a
    closed stream never waits again), so every later wait is a few attribute stores.
    """
    __slots__ = ("fd", "kernel", "rec")
    direction = None  # READ or WRITE: each twin below says which

    def __init__(self, fd):
        self.fd = fd
        self.kernel = self.rec = None

    def first_park(self, kernel, thread):
        """Park the slow way, through the kernel, and remember its record of the fd."""
        if thread.interrupt is not None:
            return interrupted(thread)
        exc = kernel.wait_io(thread, self.fd, self.direction)
        if exc is None:
            thread.parked_on = self
            self.kernel, self.rec = kernel, kernel.io[self.fd]
        return exc

    def abort(self, kernel, thread):
        kernel.abort_io(thread, self.fd, self.direction)


# Whether a record's mask (READ | WRITE, 0 to 3) watches for each: indexing a tuple is
# quicker than ``&`` on 3.11, which does not specialise it.
_WATCHED_FOR_READ = tuple(bool(mask & READ) for mask in range(4))
_WATCHED_FOR_WRITE = tuple(bool(mask & WRITE) for mask in range(4))


class _ReadWait(_Wait):
    # Two twin classes, not one with a direction test: park runs once per wait of every
    # stream, and the twins spare it that test and its attribute loads.
    __slots__ = ()
    direction = READ

    def park(self, kernel, thread):
        rec = self.rec
        # The fast path of kernel.wait_io: the fd is watched for reading already, nobody
        # else waits to read it, and no thread is interrupted (this one included).
        if (kernel is self.kernel and rec.reader is None and _WATCHED_FOR_READ[rec.mask]
                and not interrupted_threads):
            rec.reader = thread
            thread.parked_on = self
            return None
        return self.first_park(kernel, thread)


class _WriteWait(_Wait):
    __slots__ = ()
    direction = WRITE

    def park(self, kernel, thread):
        rec = self.rec
        if (kernel is self.kernel and rec.writer is None and _WATCHED_FOR_WRITE[rec.mask]
                and not interrupted_threads):
            rec.writer = thread
            thread.parked_on = self
            return None
        return self.first_park(kernel, thread)


class _Await(list):
    """``await _Await([trap])`` yields `trap` to the kernel with no Python frame of its own.

    Its ``__await__`` is ``list.__reversed__``: a C method that the interpreter calls
    directly (``tuple.__iter__``, a slot wrapper, goes through a generic call first), and
    the reversed iterator of a one-item list yields that item.
    """
    __slots__ = ()
    __await__ = list.__reversed__


def _interruption_point():
    """Raise Interrupted in an interrupted thread (called only when some thread somewhere is)."""
    thread = current_kernel().current
    if thread.interrupt is not None:
        raise interrupted(thread)


class _ClosedSocket:
    """What a closed stream reads from and writes to: every call raises OSError(EBADF)."""
    __slots__ = ()

    def recv(self, *args):
        raise OSError(errno.EBADF, "I/O on a closed stream")

    send = recv


_CLOSED = _ClosedSocket()


class Stream:
    """A connected socket (TCP or Unix-domain) for one scheduler's threads.

    ``read@(max_bytes)``, ``write@(data)``, ``shutdown_write()``, ``close()``, ``fileno()``,
    ``local_address``, ``peer_address``; ``with stream:`` closes it at the end of the block.
    One thread may read while another writes; two threads reading (or writing) the same
    stream at once is an error.
    """
    __slots__ = ("_sock", "_fd", "_io", "_rwait", "_wwait", "_drained", "_budget",
                 "_address_of", "_peer")

    def __init__(self, sock, address_of=None, peer=None):
        sock.setblocking(False)
        if _SO_NOSIGPIPE is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)
        self._sock = sock
        self._fd = fd = sock.fileno()
        self._io = sock  # the socket until closed, then _CLOSED (a method call on it is quicker
                         # than calling a bound sock.recv kept in a slot)
        self._rwait = _Await([_ReadWait(fd)])
        self._wwait = _Await([_WriteWait(fd)])
        self._drained = False
        self._budget = BUDGET
        self._address_of = address_of  # turns a socket address into an address value
        self._peer = peer  # the peer's socket address, kept: the OS forgets it once disconnected

    # -- reading and writing --------------------------------------------------------------

    async def read(self, max_bytes=READ_SIZE):
        """``read@(max_bytes=65536)``: the bytes available now (at least one, at most
        `max_bytes`), waiting until some arrive; ``EOFError`` at the end of the stream."""
        if self._drained:
            await self._rwait  # the last read was short: wait for more before trying
            self._budget = BUDGET
        else:
            if interrupted_threads:
                _interruption_point()
            self._budget -= 1
            if self._budget == 0:
                self._budget = BUDGET
                await IDLE
        while True:
            try:
                data = self._io.recv(max_bytes)
                break
            except BlockingIOError:
                current_kernel()  # outside a scheduler, a wait is an error that says so
                await self._rwait
                self._budget = BUDGET
        if data:
            if len(data) < max_bytes:  # (compare-and-jump: quicker than storing the bool)
                self._drained = True
            else:
                self._drained = False
            return data
        self._drained = False
        if max_bytes <= 0:
            raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}")
        raise EOFError("end of stream: the peer closed its side of the connection")

    async def write(self, data):
        """``write@(data)``: hand all of `data` to the kernel, waiting while the peer is slow."""
        if interrupted_threads:
            _interruption_point()
        self._budget -= 1
        if self._budget == 0:
            self._budget = BUDGET
            await IDLE
        try:
            sent = self._io.send(data, _SEND_FLAGS)
        except BlockingIOError:
            sent = 0
        if type(data) is bytes:
            total = len(data)
            if sent == total:
                return
            view = memoryview(data)
        else:
            view = memoryview(data).cast("B")
            total = view.nbytes
        # The kernel took part of it (or nothing): wait for room, then send the rest.
        current_kernel()  # outside a scheduler, a wait is an error that says so
        with view:
            while sent < total:
                try:
                    await self._wwait
                except BaseException:
                    if sent:
                        self.close()  # part of the data is out: the stream cannot be resumed
                    raise
                self._budget = BUDGET
                try:
                    sent += self._io.send(view[sent:], _SEND_FLAGS)
                except BlockingIOError:
                    pass

    def shutdown_write(self):
        """Close the sending side: the peer reads end of stream, and can still send to us."""
        if self._sock is None:
            _CLOSED.send()
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:  # the peer is gone already: nothing left to shut
                raise

    # -- closing --------------------------------------------------------------------------

    def close(self):
        """Close the stream at once (it never blocks); closing again does nothing.

        A thread waiting to read or write it is woken with ``OSError(EBADF)``.
        """
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        self._io = _CLOSED
        self._drained = False
        kernel = state.kernel
        if kernel is not None:
            kernel.notify_closing(self._fd, self._closed_while_waiting)
        sock.close()

    def _closed_while_waiting(self):
        return OSError(errno.EBADF, f"the stream (fd {self._fd}) was closed by another "
                                    f"thread while this one was waiting on it")

    @property
    def closed(self):
        return self._sock is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def __del__(self):
        if self._sock is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
            try:
                self.close()
            except Exception:
                pass

    # -- facts ----------------------------------------------------------------------------

    def fileno(self):
        """The socket's file descriptor, or -1 once closed."""
        return -1 if self._sock is None else self._fd

    @property
    def socket(self):
        """The underlying (non-blocking) socket object; None once closed."""
        return self._sock

    @property
    def local_address(self):
        """This end's address: an ``ipv4addr``/``ipv6addr`` value, or a path (Unix)."""
        return self._address(self._sock.getsockname())

    @property
    def peer_address(self):
        """The other end's address: an ``ipv4addr``/``ipv6addr`` value, or a path (Unix)."""
        if self._peer is None:
            self._peer = self._sock.getpeername()
        return self._address(self._peer)

    def _address(self, raw):
        return raw if self._address_of is None else self._address_of(raw)

    def __repr__(self):
        if self._sock is None:
            return "<con stream (closed)>"
        try:
            return f"<con stream {self.local_address!r} <-> {self.peer_address!r}>"
        except OSError:
            return f"<con stream fd={self._fd}>"
