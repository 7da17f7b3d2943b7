"""The socket stream: a connected socket with ``read@``, ``write@`` and friends (docs/spec.md §3).

It keeps the stream contract (``stream_contract``).  Design rules (the costs behind them:
docs/benchmarks.md, "What the machine costs"):
* Try the system call first, and park only when it says EAGAIN; a call that completes at once
  returns without a trip through the scheduler.  Exception: after a short read the socket is
  most likely drained, so the next read waits for readiness first and does not pay for a
  ``recv`` that fails.
* The fd is registered with the backend by the kernel on the first wait and stays registered;
  the traps for waiting (``FdWait``) are made once per stream.  Nothing else is allocated per
  operation but the coroutine and the bytes read.
* Every ``read@`` and ``write@`` is an interruption point, even when it could complete at once
  (docs/spec.md §1.4); that costs one test of ``interrupted_threads``, which is empty unless some thread
  is interrupted.  Outside a scheduler, the first operation that has to wait raises the
  explanatory RuntimeError (one that completes at once needs no scheduler).
* ``close()`` unregisters the fd first and wakes any thread waiting on it with
  ``OSError(EBADF)`` saying the stream was closed; from another OS thread it leaves that to
  the scheduler's thread (``notify_closing_threadsafe``).  A socket closed behind the stream's
  back leaves a record that the next fd with its number replaces (``fd_opened``).
* SIGPIPE never kills the process: Python ignores it at start-up, and on top of that sends use
  ``MSG_NOSIGNAL`` (Linux) or the socket has ``SO_NOSIGPIPE`` (macOS, BSD), so that a program
  that restored the default handler gets ``BrokenPipeError`` too.
"""
from __future__ import annotations

import errno
import socket

from .._runtime.fd_waits import ReadWait, WriteWait
from .._runtime.kernel import current_thread, current_kernel, state
from .._runtime.threads import interrupted_threads
from .._runtime.traps import IDLE, interrupted, reusable
from .stream_contract import BUDGET, LOOK, READ_SIZE, SECOND, ByteStream, SocketOwner, spent

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_SO_NOSIGPIPE = getattr(socket, "SO_NOSIGPIPE", None)


def _interruption_point():
    """Raise Interrupted in an interrupted thread (called only when some thread somewhere is)."""
    thread = current_thread()
    if thread.interrupt is not None:
        raise interrupted(thread)


class _ClosedSocket:
    """What a closed stream reads from and writes to: every call raises OSError(EBADF)."""
    __slots__ = ()

    def recv(self, *args):
        raise OSError(errno.EBADF, "I/O on a closed stream")

    send = recv


_CLOSED = _ClosedSocket()


class Stream(SocketOwner, ByteStream):
    """A connected socket (TCP or Unix-domain) for one scheduler's threads.

    The stream contract (``read@``, ``write@``, ``shutdown_write()``, ``close()``, ``closed``,
    ``with``), plus ``fileno()``, ``local_address``, ``peer_address`` and ``socket``.
    """
    __slots__ = ("_sock", "_fd", "_io", "_rwait", "_wwait", "_drained", "_budget", "_since",
                 "_address_of", "_peer")

    def __init__(self, sock, address_of=None, peer=None):
        sock.setblocking(False)
        if _SO_NOSIGPIPE is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)
        self._sock = sock
        self._fd = fd = sock.fileno()
        self._io = sock  # the socket until closed, then _CLOSED (a method call on it is quicker
                         # than calling a bound sock.recv kept in a slot)
        self._rwait = reusable(ReadWait(fd))
        self._wwait = reusable(WriteWait(fd))
        self._drained = False
        self._budget = BUDGET
        self._since = 0.0  # when the 2nd operation of the current run began (stream_contract.spent)
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
            if self._budget <= SECOND and LOOK[self._budget] and spent(self):
                await IDLE
        while True:
            try:
                data = self._io.recv(max_bytes)
                break
            except ValueError:  # a negative size
                raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}") from None
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
        if self._budget <= SECOND and LOOK[self._budget] and spent(self):
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

    def write_nowait(self, data):
        """Send what of `data` the kernel takes at once; how many bytes went (never waits)."""
        try:
            return self._io.send(data, _SEND_FLAGS)
        except BlockingIOError:
            return 0

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
        if sock.fileno() >= 0:  # (-1: closed behind its back; the number may be another fd's)
            kernel = state.kernel
            # The kernel that has waited on the fd, if any, is this OS thread's, unless close()
            # runs in another OS thread (a to_thread@ worker): its record is then left to it.
            owner = self._rwait[0].kernel or self._wwait[0].kernel
            if owner is None or owner is kernel:
                if kernel is not None:
                    kernel.notify_closing(self._fd, self._closed_while_waiting)
            else:
                owner.notify_closing_threadsafe(self._fd, self._closed_while_waiting)
        sock.close()

    def _closed_while_waiting(self):
        return OSError(errno.EBADF, f"the stream (fd {self._fd}) was closed by another "
                                    f"thread while this one was waiting on it")

    # -- facts (fileno(), socket, closed: SocketOwner) -------------------------------------

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
