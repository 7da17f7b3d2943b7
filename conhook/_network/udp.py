"""UDP: ``udpsocket@(bind_addr=None, connect_addr=None)`` and its datagram socket (docs/spec.md §3).

* ``sendto@(data, addr)`` sends one datagram to an address value (``ipv4addr``/``ipv6addr``);
  ``recvfrom@(max_bytes=65536)`` returns the next datagram and its sender, ``(data, address)``,
  the address as such a value.  A datagram longer than `max_bytes` is cut to it and the rest
  is lost (the socket API's rule; 65536 holds any UDP datagram).  On a connected socket
  ``send@(data)`` and ``recv@(max_bytes=65536)`` do the same without addresses (``recv@`` also
  works unconnected: the sender is dropped).
* As streams do (``stream_contract``): every operation is an interruption point, even one
  that completes at once; the system call is tried first and the thread parks only on EAGAIN;
  the fairness budget (docs/spec.md §1.5) is counted per socket; one thread receives and one
  sends at a time (a second one waiting is a ``RuntimeError``); ``close()`` is at once,
  idempotent, and wakes a waiting thread with ``OSError(EBADF)``; ``with`` closes it.
* ICMP errors: the OS reports one on a connected socket as the errno of a later operation
  (Linux: the next ``send``/``recv``), so a datagram to a port where nothing listens makes
  that operation raise ``ConnectionRefusedError``, naming the peer.  An unconnected socket is
  not told (the OS does not report them for it).
* An IPv6 socket is IPv6-only, as listeners are; a datagram to an address of the other family
  is a ``ValueError`` that says so.
"""
from __future__ import annotations

import errno
import socket

from .._runtime.fd_waits import ReadWait, WriteWait
from .._runtime.kernel import current_kernel, current_thread, state
from .._runtime.threads import interrupted_threads
from .._runtime.traps import IDLE, interrupted, reusable
from .sockets import Address, address_of, check_address, note_opened
from .stream_contract import BUDGET, LOOK, READ_SIZE, SECOND, SocketOwner, spent


class _Closed:
    """What a closed socket sends with and receives from: every call raises OSError(EBADF)."""
    __slots__ = ()

    def recvfrom(self, *args):
        raise OSError(errno.EBADF, "I/O on a closed UDP socket")

    recv = send = sendto = recvfrom


_CLOSED = _Closed()


class UDPSocket(SocketOwner):
    """A UDP socket for one scheduler's threads: what ``udpsocket@`` returns.

    ``sendto@``, ``recvfrom@``, ``send@``, ``recv@``, ``close()``, ``closed``, ``with``,
    ``fileno()``, ``local_address``, ``peer_address`` (None unless connected) and ``socket``.
    """
    __slots__ = ("_sock", "_fd", "_io", "_rwait", "_wwait", "_budget", "_since", "_peer")

    def __init__(self, sock, peer=None):
        sock.setblocking(False)
        self._sock = self._io = sock
        self._fd = fd = sock.fileno()
        self._rwait = reusable(ReadWait(fd))
        self._wwait = reusable(WriteWait(fd))
        self._budget = BUDGET
        self._since = 0.0  # (stream_contract.spent)
        self._peer = peer  # the connected address value, or None

    async def _turn(self):
        """Every operation's start: an interruption point, and the fairness budget."""
        if interrupted_threads:
            thread = current_thread()
            if thread.interrupt is not None:
                raise interrupted(thread)
        self._budget -= 1
        if self._budget <= SECOND and LOOK[self._budget] and spent(self):
            await IDLE

    async def _receive(self, method, max_bytes):
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"a UDP receive needs max_bytes >= 1, not {max_bytes!r}")
        await self._turn()
        while True:
            try:
                return getattr(self._io, method)(max_bytes)
            except BlockingIOError:
                current_kernel()  # outside a scheduler, a wait is an error that says so
                await self._rwait
                self._budget = BUDGET
            except OSError as exc:
                raise self._error(exc, self._peer) from None

    async def _send(self, data, addr):
        await self._turn()
        while True:
            try:
                if addr is None:
                    self._io.send(data)
                else:
                    self._io.sendto(data, addr.sockaddr)
                return
            except BlockingIOError:  # no room in the send buffer: wait for some
                current_kernel()
                await self._wwait
                self._budget = BUDGET
            except OSError as exc:
                raise self._error(exc, addr or self._peer) from None

    async def recvfrom(self, max_bytes=READ_SIZE):
        """``recvfrom@(max_bytes=65536)``: the next datagram and its sender, ``(data, address)``."""
        data, sockaddr = await self._receive("recvfrom", max_bytes)
        return data, address_of(sockaddr)

    async def recv(self, max_bytes=READ_SIZE):
        """``recv@(max_bytes=65536)``: the next datagram (from the peer, if connected)."""
        return await self._receive("recv", max_bytes)

    async def sendto(self, data, addr):
        """``sendto@(data, addr)``: send `data` as one datagram to `addr`."""
        if type(addr) is not Address or addr.family != self._family():
            raise self._wrong_address(addr)
        await self._send(data, addr)

    async def send(self, data):
        """``send@(data)``: send `data` as one datagram to the connected peer."""
        if self._peer is None and self._sock is not None:
            raise OSError(errno.EDESTADDRREQ, f"send() on {self!r}, which is not connected: use "
                                              f"sendto@(data, addr), or udpsocket@(connect_addr=...)")
        await self._send(data, None)

    # -- errors ---------------------------------------------------------------------------

    def _family(self):
        return self._sock.family if self._sock is not None else None

    def _wrong_address(self, addr):
        if type(addr) is not Address:
            return TypeError(f"sendto() needs an address made by ipv4addr() or ipv6addr(), not {addr!r}")
        if self._sock is None:
            return OSError(errno.EBADF, "I/O on a closed UDP socket")
        kind = "IPv6" if self._family() == socket.AF_INET6 else "IPv4"
        return ValueError(f"sendto() to {addr!r} on {self!r}, an {kind} socket: make a socket of "
                          f"the address's family (udpsocket@ with an address of that family)")

    @staticmethod
    def _error(exc, addr):
        """`exc` from the OS, naming the peer; an ICMP error reported for an earlier datagram
        says so."""
        if exc.errno == errno.EBADF or addr is None:
            return exc
        if exc.errno == errno.ECONNREFUSED:
            return OSError(exc.errno, f"{exc.strerror}: nothing listens on {addr!r} (its host "
                                      f"answered an earlier datagram with ICMP port unreachable)")
        return OSError(exc.errno, f"{exc.strerror} (UDP, to or from {addr!r})")

    # -- closing --------------------------------------------------------------------------

    def close(self):
        """Close the socket at once (it never blocks); closing again does nothing.

        A thread waiting to send or receive is woken with ``OSError(EBADF)``.
        """
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        self._io = _CLOSED
        if sock.fileno() >= 0:
            kernel = state.kernel
            owner = self._rwait[0].kernel or self._wwait[0].kernel
            if owner is None or owner is kernel:
                if kernel is not None:
                    kernel.notify_closing(self._fd, self._closed_while_waiting)
            else:  # closed from another OS thread: its kernel forgets the fd itself
                owner.notify_closing_threadsafe(self._fd, self._closed_while_waiting)
        sock.close()

    def _closed_while_waiting(self):
        return OSError(errno.EBADF, f"the UDP socket (fd {self._fd}) was closed by another "
                                    f"thread while this one was waiting on it")

    # -- facts (fileno(), socket, closed, with: SocketOwner) -------------------------------

    @property
    def local_address(self):
        """The bound address, as an ``ipv4addr``/``ipv6addr`` value."""
        if self._sock is None:
            raise OSError(errno.EBADF, "local_address of a closed UDP socket")
        return address_of(self._sock.getsockname())

    @property
    def peer_address(self):
        """The connected peer's address, or None if not connected."""
        return self._peer

    def __repr__(self):
        if self._sock is None:
            return "<con UDP socket (closed)>"
        peer = f" connected to {self._peer!r}" if self._peer is not None else ""
        return f"<con UDP socket on {self.local_address!r}{peer}>"


async def udpsocket(bind_addr=None, connect_addr=None):
    """``udpsocket@(bind_addr=None, connect_addr=None)``: a ``UDPSocket``, bound to
    `bind_addr` (else to a port the system picks, once it sends) and connected to
    `connect_addr` if given.  Either address chooses IPv4 or IPv6; both must agree."""
    for addr, what in ((bind_addr, "bind_addr"), (connect_addr, "connect_addr")):
        if addr is not None:
            check_address(addr, f"udpsocket({what}=...)")
    if bind_addr is None and connect_addr is None:
        raise TypeError("udpsocket() needs bind_addr or connect_addr, which says IPv4 or IPv6: "
                        "ipv4addr('', 0) binds a port the system picks on every interface")
    if bind_addr is not None and connect_addr is not None and bind_addr.family != connect_addr.family:
        raise ValueError(f"udpsocket() needs addresses of one family, not {bind_addr!r} and "
                         f"{connect_addr!r}")
    family = (bind_addr or connect_addr).family
    sock = socket.socket(family, socket.SOCK_DGRAM)
    note_opened(sock.fileno())
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for addr, verb, call in ((bind_addr, "bind", sock.bind), (connect_addr, "connect", sock.connect)):
            if addr is not None:
                try:
                    call(addr.sockaddr)  # (a UDP connect only records the peer: it never waits)
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot {verb} a UDP socket to {addr!r}: {exc.strerror}") from None
        return UDPSocket(sock, connect_addr)
    except BaseException:
        sock.close()
        raise
