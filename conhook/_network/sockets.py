"""Addresses, listeners and connecting: ``tcplisten@``, ``tcpconnect@``, ``unixlisten@``,
``unixconnect@`` (docs/spec.md §3).

* ``ipv4addr(host, port)`` and ``ipv6addr(host, port)`` are address values: the host is a
  numeric address (``'127.0.0.1'``, ``'::1'``, ``'fe80::1%eth0'``; ``''`` means every
  interface), checked when the value is made.  Streams report their addresses as such values.
* A listener listens on every address it was given.  ``accept@()`` tries each socket in turn,
  starting after the one that gave the last connection (so a busy address cannot starve the
  others), and otherwise parks until any of them is readable.  One thread accepts at a time.
* Running out of file descriptors (EMFILE, ENFILE) or of kernel memory (ENOBUFS, ENOMEM) in
  ``accept`` must neither spin nor stop the server: the connection stays in the backlog, so
  ``accept@()`` sleeps (10 ms, doubling up to 100 ms) and tries again until it gets through.
  A connection the client gave up on before we took it (ECONNABORTED, EPROTO, ...) is
  skipped.
* A Unix listener removes the socket file it made when it is closed: the file it bound
  (its path made absolute), and only in the process that made it (a forked child's copy,
  closed or collected when the child exits, leaves the parent's file alone).
* Name resolution (``getaddrinfo``) runs in a worker OS thread unless the host is numeric, so
  it never blocks the scheduler; in a pool of its own (``to_resolver``), so that calls to
  ``to_thread@`` that never return cannot starve it.  ``tcpconnect@`` connects to a single
  address directly, and races several (Happy Eyeballs, ``happy_eyeballs``).  When every
  address fails it raises one ``OSError`` with the last one's errno, naming every address tried
  and its error; with several, their own errors are its cause (an ``ExceptionGroup``).
* ``SO_REUSEPORT``: when ``python -m conhook --workers N`` runs N copies of a program it sets
  ``CONHOOK_REUSEPORT=1``, and listeners then share each address among the copies (the kernel
  spreads connections).  ``tcplisten@(..., reuse_port=True)`` asks for it explicitly.
"""
from __future__ import annotations

import errno
import os
import socket
import stat

from .._runtime.bootstrap import raiser
from .._runtime.fd_waits import AnyReadable, wait_readable, wait_writable
from .._runtime.kernel import current_thread, state
from .._runtime.timeouts import sleep
from .._runtime.traps import IDLE, interrupted
from .._runtime.worker_threads import to_resolver
from . import happy_eyeballs
from .stream_contract import BUDGET, LOOK, SECOND, spent
from .streams import Stream

REUSEPORT_ENV = "CONHOOK_REUSEPORT"

_ACCEPT_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_SKIP = {errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET, errno.EPERM,
                errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH,
                errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.ETIMEDOUT}
_BACKOFF_FIRST, _BACKOFF_MAX = 0.01, 0.1


# -- addresses ------------------------------------------------------------------------------

class Address:
    """An IP address and port: what ``ipv4addr`` and ``ipv6addr`` return."""
    __slots__ = ("family", "host", "port", "sockaddr")

    def __init__(self, family, host, port, sockaddr):
        self.family, self.host, self.port, self.sockaddr = family, host, port, sockaddr

    def __repr__(self):
        maker = "ipv4addr" if self.family == socket.AF_INET else "ipv6addr"
        return f"{maker}({self.host!r}, {self.port!r})"

    def __eq__(self, other):
        if type(other) is not Address:
            return NotImplemented
        return self.sockaddr == other.sockaddr and self.family == other.family

    def __hash__(self):
        return hash((self.family, self.sockaddr))

    def __iter__(self):  # host, port = addr
        return iter((self.host, self.port))


def _numeric(maker, family, host, port):
    """The address, or an instance of `maker` that raises why there is none (``raiser``)."""
    name = maker.__name__
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        return raiser(maker, ValueError(f"{name}() needs a port number from 0 to 65535, not {port!r}"))
    if not isinstance(host, str):
        return raiser(maker, TypeError(f"{name}() needs the host as a str, not {host!r}"))
    try:
        infos = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST | socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        infos = None
    if infos is None:
        kind = "IPv4" if family == socket.AF_INET else "IPv6"
        return raiser(maker, ValueError(f"{name}() needs a numeric {kind} address, not {host!r}: "
                                        f"resolve names with tcpconnect@(host, port)"))
    return Address(family, host, port, infos[0][4])


# Classes, so that a refused address raises with no frame of ours (bootstrap.raiser): the
# traceback ends at the user's line.
class ipv4addr:
    """The IPv4 address `host` (numeric, ``''`` for every interface) with `port`."""
    __slots__ = ()

    def __new__(cls, host, port):
        return _numeric(cls, socket.AF_INET, host, port)


class ipv6addr:
    """The IPv6 address `host` (numeric, ``''`` for every interface) with `port`."""
    __slots__ = ()

    def __new__(cls, host, port):
        return _numeric(cls, socket.AF_INET6, host, port)


def address_of(sockaddr):
    """The address value of a socket address as ``getsockname``/``getpeername`` give it."""
    if len(sockaddr) == 2:
        return Address(socket.AF_INET, sockaddr[0], sockaddr[1], sockaddr)
    return Address(socket.AF_INET6, sockaddr[0], sockaddr[1], sockaddr)


def _unix_address_of(raw):
    return raw.decode(errors="surrogateescape") if isinstance(raw, bytes) else raw


def note_opened(fd):
    """`fd` was just handed out by the OS: the kernel forgets what it knew of an fd that had the
    number before and was closed behind its back (``Kernel.fd_opened``)."""
    kernel = state.kernel
    if kernel is not None:
        kernel.fd_opened(fd)


def check_address(addr, what):
    if type(addr) is not Address:
        raise TypeError(f"{what} needs addresses made by ipv4addr() or ipv6addr(), not {addr!r}")
    return addr


# -- listening -------------------------------------------------------------------------------

class Listener:
    """Listening sockets on one or more addresses; ``accept@()`` returns the next connection.

    ``close()`` closes them all (a thread waiting in ``accept@()`` is woken with
    ``OSError(EBADF)``); ``with listener:`` closes it at the end of the block.  ``addresses``
    are the addresses actually bound (with the port the system chose for port 0).
    """
    __slots__ = ("_socks", "_accepts", "_fds", "_kinds", "_next", "_empty", "_wait", "_budget", "_since", "_tcp",
                 "_address_of", "_unlink", "_tls", "__weakref__")

    def __init__(self, socks, tcp, address_of, unlink=None, tls=None):
        self._socks = socks
        self._accepts = [s._accept for s in socks]  # (fd, address): no socket object until it is ours
        self._fds = [s.fileno() for s in socks]
        # (family, type, proto) as ints: socket.family and .type make an enum at every get
        self._kinds = [(int(s.family), int(s.type), s.proto) for s in socks]
        for fd in self._fds:
            note_opened(fd)
        self._next = 0
        # Bit i: socket i said EAGAIN since the last wait or yield, so accept@ does not ask it
        # again (a failed accept costs a system call and an exception) until then; a wait
        # polls them all, and the fairness yield bounds how long one busy address keeps
        # another from being asked.
        self._empty = 0
        self._wait = wait_readable(self._fds[0]) if len(socks) == 1 else AnyReadable(self._fds)
        self._budget = BUDGET
        self._since = 0.0  # (stream_contract.spent)
        self._tcp = tcp
        self._address_of = address_of
        self._unlink = unlink  # (absolute path, (st_dev, st_ino), pid) of a Unix socket file we made
        self._tls = tls  # (context, handshake_timeout): streams handed out are TLS streams

    @property
    def addresses(self):
        """The bound addresses, in the order given."""
        return [self._address_of(s.getsockname()) for s in self._socks]

    def fileno(self):
        """The fd of the first listening socket (-1 once closed)."""
        return self._fds[0] if self._socks else -1

    async def accept(self):
        """``accept@()``: the next connection on any of the addresses, as a stream."""
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)
        self._budget -= 1
        if self._budget <= SECOND and LOOK[self._budget] and spent(self):
            await IDLE
            self._empty = 0
        backoff = _BACKOFF_FIRST
        while True:
            accepts = self._accepts
            n = len(accepts)
            if not n:
                raise OSError(errno.EBADF, "accept() on a closed listener")
            start = self._next
            empty = self._empty
            for i in range(start, start + n):
                i %= n
                if empty >> i & 1:
                    continue
                try:
                    fd, peer = accepts[i]()
                except BlockingIOError:
                    empty |= 1 << i
                    continue
                except OSError as exc:
                    if exc.errno in _ACCEPT_SKIP:
                        continue
                    if exc.errno not in _ACCEPT_RESOURCES:
                        raise
                    self._empty = empty
                    await sleep(backoff)  # out of descriptors: the connection waits in the backlog
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                    break
                self._next = i + 1
                self._empty = empty
                return self._stream(fd, i, peer)
            else:
                await self._wait
                self._budget = BUDGET
                self._empty = 0

    def _stream(self, fd, i, peer):
        note_opened(fd)
        sock = socket.socket(*self._kinds[i], fileno=fd)
        try:
            if self._tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = Stream(sock, self._address_of, peer or None)
        except BaseException:
            sock.close()
            raise
        if self._tls is None:
            return stream
        # The handshake runs later, in the thread that uses the stream, never in the acceptor.
        context, handshake_timeout = self._tls
        from .tls import TLSStream  # (ssl costs 10 ms to import: only a TLS program pays it)
        return TLSStream(stream, context, server_side=True, handshake_timeout=handshake_timeout)

    def close(self):
        """Close every listening socket at once; closing again does nothing."""
        socks = self._socks
        if not socks:
            return
        self._socks, self._accepts = [], []
        exc = OSError(errno.EBADF, "the listener was closed while this thread waited in accept()")
        if type(self._wait) is AnyReadable:
            self._wait.cancel(exc)
        kernel = state.kernel
        for sock in socks:
            if kernel is not None:
                kernel.notify_closing(sock.fileno(), lambda: exc)
            sock.close()
        if self._unlink is not None:
            path, ident, pid = self._unlink
            if pid != os.getpid():
                return  # a forked child's copy: the file belongs to the process that made it
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == ident:
                    os.unlink(path)
            except OSError:
                pass

    @property
    def closed(self):
        return not self._socks

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def __del__(self):
        if self._socks:
            try:
                self.close()
            except Exception:  # noqa: BLE001  (a finaliser must not raise)
                pass

    def __repr__(self):
        if not self._socks:
            return "<con listener (closed)>"
        return f"<con listener on {', '.join(map(repr, self.addresses))}>"


def _reuse_port(reuse_port):
    if reuse_port is None:
        reuse_port = os.environ.get(REUSEPORT_ENV, "") not in ("", "0")
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this system, so "
                                         "listeners cannot share an address between workers")
    return reuse_port


async def tcplisten(*addrs, backlog=socket.SOMAXCONN, reuse_port=None, tls=None,
                    handshake_timeout=10.0):
    """``tcplisten@(addr, ..., backlog=...)``: listen on every address given; a ``Listener``.

    If any address cannot be bound, the sockets already made are closed and ``OSError`` names
    the address.  With ``tls=context``, ``accept@()`` hands out TLS streams whose handshake
    runs on their first use, in the thread using them; a client that has not finished it
    within `handshake_timeout` seconds (None: no limit) is dropped.
    """
    if not addrs:
        raise TypeError("tcplisten() needs at least one address (ipv4addr(...) or ipv6addr(...))")
    for addr in addrs:
        check_address(addr, "tcplisten()")
    if tls is not None:
        from .tls import server_context
        tls = (server_context(tls), handshake_timeout)
    reuse_port = _reuse_port(reuse_port)
    socks = []
    try:
        for addr in addrs:
            sock = socket.socket(addr.family, socket.SOCK_STREAM)
            socks.append(sock)
            try:
                if os.name == "posix":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if addr.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr.sockaddr)
                sock.listen(backlog)
                sock.setblocking(False)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {addr!r}: {exc.strerror}") from None
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return Listener(socks, True, address_of, tls=tls)


async def unixlisten(path, *, backlog=socket.SOMAXCONN):
    """``unixlisten@(path)``: listen on a Unix-domain socket; the file is removed on close.

    Only by the process that made it (a forked child that closes its copy, or exits, leaves
    the parent's file alone), and the file it made even if the working directory changed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
            sock.listen(backlog)
        except OSError as exc:
            hint = " (remove the stale socket file first)" if exc.errno == errno.EADDRINUSE else ""
            raise OSError(exc.errno, f"cannot listen on Unix socket {path!r}: {exc.strerror}{hint}") from None
        sock.setblocking(False)
        unlink = None
        if isinstance(path, (str, bytes, os.PathLike)) and not str(os.fsdecode(path)).startswith("\0"):
            path = os.path.abspath(path)  # the same file after a chdir
            st = os.stat(path)
            if stat.S_ISSOCK(st.st_mode):
                unlink = (path, (st.st_dev, st.st_ino), os.getpid())
    except BaseException:
        sock.close()
        raise
    return Listener([sock], False, _unix_address_of, unlink)


# -- connecting ------------------------------------------------------------------------------

async def _connect(sock, sockaddr):
    """Connect a non-blocking socket, parking until the handshake is done."""
    sock.setblocking(False)
    err = sock.connect_ex(sockaddr)
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
        await wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def _discard(sock):
    """Close a socket that a thread may have waited on: the kernel forgets its fd first."""
    kernel = state.kernel
    if kernel is not None and sock.fileno() >= 0:
        kernel.notify_closing(sock.fileno())
    sock.close()


async def _resolve(host, port):
    """[(family, sockaddr)] for host and port; names are looked up in a worker OS thread.

    A name that cannot be resolved is a ``socket.gaierror`` that names it."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = None  # (resolved below, outside this handler: no "during handling" chain)
    if infos is None:
        try:
            infos = await to_resolver(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise socket.gaierror(exc.errno, f"cannot resolve {host!r} (port {port}): {exc.strerror}") from None
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


async def _open(family, sockaddr):
    """A TCP socket connected to `sockaddr`; closed again if that fails or is interrupted."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    note_opened(sock.fileno())
    try:
        await _connect(sock, sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        _discard(sock)
        raise
    return sock


async def tcpconnect(host, port=None, *, tls=None, server_hostname=None, https_compatible=False,
                     happy_eyeballs_delay=happy_eyeballs.DELAY):
    """``tcpconnect@(addr)`` or ``tcpconnect@(host, port)``: a stream connected to it.

    A host name is resolved without blocking the scheduler; its addresses are raced (Happy
    Eyeballs, ``happy_eyeballs``): the next attempt starts when one fails or after
    `happy_eyeballs_delay` seconds (None: one at a time), the first connection wins.
    With ``tls=True`` (the system's certificates) or ``tls=context`` the stream is a TLS stream
    whose handshake is done, for `server_hostname` (default: the host); a certificate that fails
    verification raises the ssl module's own ``ssl.SSLCertVerificationError``.
    """
    if tls is not None and tls is not False:
        from .tls import TLSStream, client_context
        context = client_context(tls)
        if server_hostname is None:
            server_hostname = host.host if port is None and type(host) is Address else host
        stream = TLSStream(await tcpconnect(host, port, happy_eyeballs_delay=happy_eyeballs_delay),
                           context, server_hostname=server_hostname, https_compatible=https_compatible)
        try:
            await stream.handshake()
        except BaseException:
            stream.close()
            raise
        return stream
    if happy_eyeballs_delay is not happy_eyeballs.DELAY:
        happy_eyeballs.check_delay(happy_eyeballs_delay)
    if port is None:
        addr = check_address(host, "tcpconnect(addr)")
        targets = [(addr.family, addr.sockaddr)]
    else:
        targets = await _resolve(host, port)
    if len(targets) == 1:  # the common case, one address: _open inlined (a connect costs as before)
        family, sockaddr = targets[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        note_opened(sock.fileno())
        try:
            await _connect(sock, sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Stream(sock, address_of, sockaddr)
        except OSError as exc:
            _discard(sock)
            errors = [(sockaddr, exc)]
        except BaseException:
            _discard(sock)
            raise
    else:
        winner, errors = await happy_eyeballs.race(_open, _discard, happy_eyeballs.interleave(targets),
                                                   happy_eyeballs_delay)
        if winner is not None:
            sock, sockaddr = winner
            return Stream(sock, address_of, sockaddr)
    raise _not_connected(host, port, errors)


def _not_connected(host, port, errors):
    """The OSError for a connect whose every address failed: it names the host and each
    address's error, and has the last address's errno (so ``ConnectionRefusedError`` when
    that one refused).  With several addresses, their own errors are its ``__cause__``, an
    ``ExceptionGroup`` (as trio chains them), each naming its address."""
    if not errors:
        return OSError(errno.EADDRNOTAVAIL, f"no address to connect to for {host!r} port {port}")
    last = errors[-1][1]
    tried = ", ".join(f"{address_of(a)!r}: {e.strerror or e}" for a, e in errors)
    target = repr(host) + (f" port {port}" if port is not None else "")
    error = OSError(last.errno, f"cannot connect to {target} ({tried})")
    if len(errors) > 1:
        error.__cause__ = ExceptionGroup(f"the attempts to connect to {target}", [
            OSError(e.errno, f"{address_of(a)!r}: {e.strerror or e}") for a, e in errors])
    return error


async def unixconnect(path):
    """``unixconnect@(path)``: a stream connected to the Unix-domain socket at `path`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    note_opened(sock.fileno())
    try:
        await _connect(sock, path)
    except OSError as exc:
        _discard(sock)
        raise OSError(exc.errno, f"cannot connect to Unix socket {path!r}: {exc.strerror}") from None
    except BaseException:
        _discard(sock)
        raise
    return Stream(sock, _unix_address_of, path)
