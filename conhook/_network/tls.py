"""TLS over any byte stream: ``tls_wrap@(stream, context, ...)`` (docs/spec.md §3, docs/networking.md).

A ``TLSStream`` keeps the stream contract (``stream_contract``) on top of another stream that
keeps it too (a socket stream, a memory stream, another TLS stream).  OpenSSL works on an
``ssl.SSLObject`` between two memory BIOs; the bytes travel through the underlying stream's own
``read@``/``write@``, so this module never waits on a file descriptor itself.

Rules:
* The handshake runs once, on the first ``read@``/``write@`` or on ``handshake@()``; a second
  thread arriving meanwhile waits for it.  The facts it settles (``version()``, ``cipher()``,
  ``selected_alpn_protocol()``, ``getpeercert()``) raise ``RuntimeError`` before it.
* One thread reads and one writes at a time (a second one is a ``RuntimeError``).  Only a
  read (and the handshake, ``unwrap@``) takes bytes from the underlying stream; a write never
  needs to, because renegotiation is refused (``OP_NO_RENEGOTIATION`` is set on the context,
  and a write that would still need the peer's bytes is an error).  A read may have to write
  (TLS 1.3 post-handshake messages: a KeyUpdate answered): the encrypted bytes are sent in the
  order they were made by whichever thread holds ``_sending``; a reader that finds a writer
  sending leaves its bytes to it (the sender drains everything before it stops).
* A read asks the SSL object for bytes only when something waits in it (``pending()``), or its
  incoming BIO holds the end of a record (or the end of stream); otherwise it receives first: an
  ``SSLWantReadError`` costs more to make than a small record costs to decrypt.  To know where
  records end, every byte fed to the BIO passes ``_track``, which follows the 5-byte record
  headers (type, version, length); a header announcing more than a record can hold stops the
  tracking, and the SSL object is then asked every time (it reports the error).
* The common case takes a fast path (same rules, fewer calls): a read that finds no record
  receives from the transport itself, then asks the SSL object once; a ``bytes`` write of at
  most ``WRITE_CHUNK`` while nobody is sending encrypts it and hands the records to the
  transport with ``write_nowait``, without taking ``_sending`` (nothing can switch in between);
  what the transport does not take ``_flush`` sends under ``_sending`` (before what a reader
  makes meanwhile), as the general case does.  The handshake hands its flights on the same
  way.  Not over a TLS transport, whose ``write_nowait`` is all or nothing.
* Every ``read@``/``write@`` is an interruption point at entry, and an interruption there leaves
  the stream as it was.  Once TLS work has begun, an interruption or any other failure leaves
  the stream *broken*: the operation's own exception propagates, and every later operation
  raises ``BrokenStreamError`` saying what broke it (trio#198: never an unknown state).
* The end: the peer's ``close_notify`` is ``EOFError``.  The underlying stream ending without
  it is truncation, ``ssl.SSLEOFError``; with ``https_compatible=True`` it is ``EOFError``
  (a ragged EOF, which HTTPS clients must accept).  ``shutdown_write()`` sends ``close_notify``
  (TLS 1.3 half-close).  ``close()`` never waits: it sends ``close_notify`` only if the
  underlying stream takes it at once (``write_nowait``), then closes that stream.
  ``unwrap@()`` exchanges ``close_notify`` both ways and returns the plain stream, reading the
  peer's records one at a time so that no byte after its ``close_notify`` is taken.
"""
from __future__ import annotations

import errno
import ssl

from .._runtime.errors import Interrupted
from .._runtime.kernel import current_thread
from .._runtime.primitives import Lock
from .._runtime.threads import interrupted_threads
from .._runtime.timeouts import timeout
from .._runtime.traps import IDLE, interrupted
from .stream_contract import BUDGET, READ_SIZE, ByteStream
from .streams import Stream

RECEIVE_SIZE = 65536  # bytes asked of the underlying stream per read
WRITE_CHUNK = 262144  # plaintext encrypted per step of a large write (bounds the records held)
_RECORD_HEADER = 5  # a TLS record: type, version (2), length (2), then the body
_MAX_RECORD = 16384 + 2048  # the longest body TLS allows (TLSCiphertext, RFC 5246 6.2.3)
_UNTRACKED = 1 << 62  # once record boundaries are unknown: _need is this, _tail its negative
# The context's options as a plain int: ssl.SSLContext.options makes an enum.Flag at every get
# and set (a few thousand instructions per connection), _ssl's own descriptor does not.
_context_options = ssl._SSLContext.__dict__["options"]
_NO_RENEGOTIATION = int(ssl.OP_NO_RENEGOTIATION)


class BrokenStreamError(OSError):
    """A stream that cannot be used any more because an earlier operation on it failed or was
    interrupted part way; the message says which, and ``__cause__`` is that failure."""


def tls_version_error(what):
    return RuntimeError(f"{what}: the TLS handshake has not happened yet; call handshake@() "
                        f"(or read@/write@, which do it first)")


class TLSStream(ByteStream):
    """TLS over another stream; made by ``tls_wrap@`` (and ``tcpconnect@``/``tcplisten@`` with
    ``tls=``).

    The stream contract, plus ``handshake@()``, ``unwrap@()``, the facts of the handshake
    (``version()``, ``cipher()``, ``selected_alpn_protocol()``, ``getpeercert()``),
    ``transport`` (the stream underneath), ``ssl_object``, ``write_nowait()``, ``fileno()``,
    ``local_address`` and ``peer_address`` (the transport's).
    """
    __slots__ = ("_transport", "_ssl", "_in", "_out", "_https_compatible", "_handshaken",
                 "_handshake_lock", "_sending", "_reading", "_writing", "_broken", "_closed",
                 "_budget", "_eof_sent", "_shut_transport", "_handshake_timeout", "_direct",
                 "_need", "_head", "_tail")

    def __init__(self, transport, context, server_side=False, server_hostname=None,
                 https_compatible=False, handshake_timeout=None):
        plain = type(transport) is Stream  # (the common case: no ABC check, 1,000 instructions)
        if not plain and not isinstance(transport, ByteStream):
            raise TypeError(f"tls_wrap() needs a con stream (tcpconnect@, accept@, a memory "
                            f"stream, another TLS stream), not {transport!r}")
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"tls_wrap() needs an ssl.SSLContext, not {context!r} (for a client: "
                            f"ssl.create_default_context())")
        options = _context_options.__get__(context)
        if not options & _NO_RENEGOTIATION:
            _context_options.__set__(context, options | _NO_RENEGOTIATION)
        self._transport = transport
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in, self._out, server_side=server_side,
                                     server_hostname=server_hostname)
        self._https_compatible = https_compatible
        self._handshaken = False
        self._handshake_lock = Lock()
        self._sending = Lock()  # held while encrypted bytes go to the transport
        self._reading = self._writing = False
        self._broken = None  # the BrokenStreamError later operations raise
        self._closed = False
        self._budget = BUDGET
        self._eof_sent = False  # close_notify queued (shutdown_write, close, unwrap)
        self._shut_transport = False  # shut the transport's writing side once it is all out
        self._handshake_timeout = handshake_timeout  # seconds; past them the peer is dropped
        # The write fast path hands records on with the transport's write_nowait, which is all
        # or nothing on a TLS transport (a partial write breaks it): not over TLS.
        self._direct = plain or not isinstance(transport, TLSStream)
        # Record boundaries of the bytes fed to the incoming BIO (_track): the bytes still to
        # come of the current record, the start of a header split between two feeds, and how
        # many bytes of an unfinished record were fed (0 at a boundary).
        self._need = 0
        self._head = b""
        self._tail = 0

    # -- the way in and out of every operation --------------------------------------------

    async def _begin(self, what):
        """Checks at the start of an operation: usable, interruption point, fairness."""
        self._refuse(what)
        self._budget -= 1
        if not self._budget:
            self._budget = BUDGET
            await IDLE

    def _refuse(self, what):
        """Raise if the stream is closed or broken or this thread interrupted."""
        if self._closed:
            raise OSError(errno.EBADF, f"{what} on a closed TLS stream")
        if self._broken is not None:
            raise self._broken
        thread = current_thread()
        if thread.interrupt is not None:
            raise interrupted(thread)

    def _break(self, what, exc):
        """Mark the stream broken by `exc`, raised part way through `what`."""
        if self._broken is None and not self._closed:
            kind = ("was interrupted" if isinstance(exc, Interrupted)
                    else f"failed ({type(exc).__name__}: {exc})")
            self._broken = BrokenStreamError(
                f"this TLS stream is broken: its {what} {kind} part way through a TLS exchange, "
                f"so where the connection stands is unknown; close it")
            self._broken.__cause__ = exc

    # -- moving encrypted bytes -------------------------------------------------------------

    async def _flush(self, wait=True, first=None):
        """Send every encrypted byte made so far, in order (`first`, made before what is in the
        BIO, first).  With ``wait=False`` (a reader), if another thread is sending, leave the
        bytes to it: it drains the BIO before it stops."""
        if self._sending.locked():
            if not wait:
                return
        await self._sending.acquire()
        try:
            if first is not None:
                await self._transport.write(first)
            out = self._out
            while out.pending:
                await self._transport.write(out.read())
            if self._shut_transport:
                self._shut_transport = False
                self._transport.shutdown_write()
        finally:
            self._sending.release()
        if self._closed:
            raise OSError(errno.EBADF, "the TLS stream was closed by another thread while this "
                                       "one was using it")

    def _sent_at_once(self):
        """Hand what the SSL object made to the transport without waiting, if nobody is sending
        (and the transport is not TLS, whose ``write_nowait`` is all or nothing): whether all of
        it went.  What did not go stays in the outgoing BIO, first, for ``_flush``."""
        if not self._direct or self._sending.locked():
            return False
        out = self._out
        records = out.read()
        sent = self._transport.write_nowait(records)
        if sent == len(records):
            return True
        out.write(records[sent:] if sent else records)  # (the BIO was empty: it comes first)
        return False

    async def _receive(self, max_bytes=RECEIVE_SIZE):
        """Feed the SSL object what the transport has (end of stream included)."""
        self._budget = BUDGET  # the transport keeps its own count
        try:
            self._feed(await self._transport.read(max_bytes))
        except EOFError:
            self._in.write_eof()

    def _feed(self, data):
        """Give `data`, the next bytes from the transport, to the SSL object."""
        self._in.write(data)
        self._track(data)

    async def _fill(self):
        """Receive until the incoming BIO holds the end of a record, or the end of stream."""
        incoming = self._in
        while True:
            await self._receive()
            if incoming.pending > self._tail or incoming.eof:
                return

    def _track(self, data):
        """Follow the record headers in `data`, the next bytes fed to the incoming BIO."""
        n = len(data)
        start = self._need  # where the next record begins in data
        if start > n:  # all of it inside the current record (bulk: the common case)
            self._need = start - n
            self._tail += n
            return
        if self._head:  # a header began in the last feed (start is 0): read it whole
            data = self._head + data
            n = len(data)
            self._head = b""
        last = start
        while start + _RECORD_HEADER <= n:
            last = start
            start += _RECORD_HEADER + (data[start + 3] << 8 | data[start + 4])
        if start == n:  # (one record in, the common case: nothing changes)
            self._need = self._tail = 0
        elif start > n:  # inside a record whose header is in
            if start - last > _RECORD_HEADER + _MAX_RECORD:  # not TLS: the SSL object judges
                self._need, self._tail = _UNTRACKED, -_UNTRACKED
            else:
                self._need = start - n
                self._tail = n - last
        else:  # a header split between this feed and the next
            self._need = 0
            self._head = data[start:]
            self._tail = n - start

    async def _retry(self, fn, *args):
        """Call `fn` (an SSLObject operation) until it no longer wants the peer's bytes."""
        while True:
            try:
                result = fn(*args)
            except ssl.SSLWantReadError:
                if self._out.pending:
                    await self._flush(wait=False)
                await self._fill()
                continue
            if self._out.pending:
                await self._flush(wait=False)
            return result

    def _send_alert(self):
        """After a failed handshake, send OpenSSL's alert if it can go at once (best effort)."""
        try:
            if not self._sending.locked():
                _write_nowait(self._transport, self._out.read())
        except OSError:
            pass  # the peer is gone: no one to tell

    # -- the handshake ---------------------------------------------------------------------

    async def handshake(self):
        """``handshake@()``: run the TLS handshake now, if it has not run; wait for it if another
        thread runs it.  Certificate and hostname failures are the ssl module's own errors
        (``ssl.SSLCertVerificationError``); they leave the stream broken."""
        if self._handshaken:
            if self._closed:
                raise OSError(errno.EBADF, "handshake() on a closed TLS stream")
            return
        await self._begin("handshake()")
        await self._handshake()

    async def _handshake(self):
        """The handshake, once (``read@`` and ``write@`` come here after their own entry checks)."""
        await self._handshake_lock.acquire()
        try:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise OSError(errno.EBADF, "the TLS stream was closed during its handshake")
            if not self._handshaken:
                seconds = self._handshake_timeout
                try:
                    if seconds is None:
                        await self._handshake_steps()
                    else:
                        try:
                            with timeout(seconds):
                                await self._handshake_steps()
                        except TimeoutError:
                            self.close()
                            raise TimeoutError(f"the peer did not finish its TLS handshake within "
                                               f"{seconds} s (handshake_timeout): the connection "
                                               f"was dropped") from None
                except BaseException as exc:
                    self._send_alert()
                    error = _truncation(exc, " during the handshake")
                    self._break("handshake", error)
                    if error is exc:
                        raise
                    raise error from None
                self._handshaken = True
        finally:
            self._handshake_lock.release()

    async def _handshake_steps(self):
        """``do_handshake`` until it is done, handing on what it makes and receiving what it
        wants (``_retry`` and ``_fill``, inlined: a handshake is a few steps, each a few calls)."""
        ssl_object, incoming, transport = self._ssl, self._in, self._transport
        if ssl_object.server_side and not incoming.pending:
            # A server speaks second: nothing to do before the ClientHello.
            self._budget = BUDGET
            try:
                self._feed(await transport.read(RECEIVE_SIZE))
            except EOFError:
                incoming.write_eof()
        while True:
            try:
                ssl_object.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self._out.pending and not self._sent_at_once():
                    await self._flush(wait=False)
                self._budget = BUDGET
                while True:  # until the end of a record is in (or the end of stream)
                    try:
                        self._feed(await transport.read(RECEIVE_SIZE))
                    except EOFError:
                        incoming.write_eof()
                        break
                    if incoming.pending > self._tail:
                        break
        if self._out.pending and not self._sent_at_once():
            await self._flush(wait=False)

    # -- reading and writing ---------------------------------------------------------------

    async def read(self, max_bytes=READ_SIZE):
        """``read@(max_bytes=65536)``: decrypted bytes (at least one, at most `max_bytes`),
        waiting until some arrive; ``EOFError`` after the peer's ``close_notify``."""
        if max_bytes < 1:
            raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}")
        if self._reading:
            raise RuntimeError("another thread is already reading this TLS stream")
        if self._closed or self._broken is not None or interrupted_threads:
            self._refuse("read()")
        self._budget -= 1
        if not self._budget:
            self._budget = BUDGET
            await IDLE
        self._reading = True
        try:
            if not self._handshaken:
                await self._handshake()
            try:
                ssl_object, incoming = self._ssl, self._in
                if (incoming.pending <= self._tail and not incoming.eof
                        and not ssl_object.pending()):
                    # No record to decrypt: receive first (_receive, inlined).
                    if self._out.pending:
                        await self._flush(wait=False)
                    self._budget = BUDGET  # the transport keeps its own count
                    try:
                        received = await self._transport.read(RECEIVE_SIZE)
                    except EOFError:
                        incoming.write_eof()
                    else:
                        incoming.write(received)
                        n = len(received)
                        if (self._need or self._head or n < _RECORD_HEADER
                                or n != _RECORD_HEADER + (received[3] << 8 | received[4])):
                            self._track(received)  # (not just one whole record, the common case)
                            if incoming.pending <= self._tail:  # part of a record
                                await self._fill()
                try:
                    data = ssl_object.read(max_bytes)
                except ssl.SSLWantReadError:  # (a record that was not data)
                    if self._out.pending:
                        await self._flush(wait=False)
                    await self._fill()
                    data = await self._retry(ssl_object.read, max_bytes)
                else:
                    if self._out.pending:
                        await self._flush(wait=False)
            except ssl.SSLZeroReturnError:
                data = b""
            except BaseException as exc:
                if _is_eof(exc) and self._https_compatible:
                    raise EOFError("end of stream: the peer closed the connection without "
                                   "close_notify (accepted: https_compatible=True)") from None
                error = _truncation(exc, "")
                self._break("read@()", error)
                if error is exc:
                    raise
                raise error from None
        finally:
            self._reading = False
        if data:
            return data
        raise EOFError("end of stream: the peer sent close_notify")

    async def write(self, data):
        """``write@(data)``: encrypt all of `data` and hand it on, waiting while the peer is slow."""
        if self._writing:
            raise RuntimeError("another thread is already writing this TLS stream")
        if self._closed or self._broken is not None or interrupted_threads:
            self._refuse("write()")
        self._budget -= 1
        if not self._budget:
            self._budget = BUDGET
            await IDLE
        if self._eof_sent:
            raise BrokenPipeError(errno.EPIPE, "write() after shutdown_write() on a TLS stream")
        if (self._handshaken and self._direct and type(data) is bytes
                and len(data) <= WRITE_CHUNK and not self._sending.locked()
                and not self._out.pending):
            # The fast path: encrypt, hand the records on at once; what the transport does not
            # take _flush sends, waiting, before anything a reader makes meanwhile.
            self._writing = True
            try:
                try:
                    self._ssl.write(data)
                except ssl.SSLWantReadError:
                    raise _renegotiation_error() from None
                records = self._out.read()
                sent = self._transport.write_nowait(records)
                if sent != len(records):
                    await self._flush(first=memoryview(records)[sent:] if sent else records)
            except BaseException as exc:
                self._break("write@()", exc)
                raise
            finally:
                self._writing = False
            return
        self._writing = True
        try:
            if not self._handshaken:
                await self._handshake()
            view = memoryview(data).cast("B")
            with view:
                total = view.nbytes
                await self._sending.acquire()  # so that a reader's flush cannot come between
                try:
                    for start in range(0, total, WRITE_CHUNK):
                        try:
                            self._ssl.write(view[start:start + WRITE_CHUNK])
                        except ssl.SSLWantReadError:
                            raise _renegotiation_error() from None
                        out = self._out
                        while out.pending:
                            await self._transport.write(out.read())
                finally:
                    self._sending.release()
        except BaseException as exc:
            self._break("write@()", exc)
            raise
        finally:
            self._writing = False

    def write_nowait(self, data):
        """Encrypt `data` and hand it on only if all of it can go at once without waiting: the
        length of `data` if it went, 0 if nothing was done.  If the transport took only part of
        the records, the stream is broken (it cannot be resumed)."""
        if (self._closed or self._broken is not None or not self._handshaken or self._eof_sent
                or self._sending.locked() or self._out.pending):
            return 0
        try:
            self._ssl.write(data)
        except ssl.SSLError:
            return 0
        records = self._out.read()
        sent = _write_nowait(self._transport, records)
        if sent == len(records):
            return len(data)
        self._break("write_nowait()", BrokenPipeError(errno.EAGAIN, "the transport took only "
                                                      f"{sent} of {len(records)} bytes at once"))
        return 0

    def shutdown_write(self):
        """Send ``close_notify``: the peer reads end of stream, and this end can still read
        (TLS 1.3).  What cannot go at once goes with the next ``read@``."""
        if self._closed:
            raise OSError(errno.EBADF, "shutdown_write() on a closed TLS stream")
        if self._broken is not None:
            raise self._broken
        if self._eof_sent:
            return
        if not self._handshaken:
            raise tls_version_error("shutdown_write()")
        self._queue_close_notify()
        if not self._sending.locked():
            data = self._out.read()
            sent = _write_nowait(self._transport, data)
            if sent == len(data):
                self._transport.shutdown_write()
                return
            self._out.write(data[sent:])  # (nothing else was queued since: no switch)
        self._shut_transport = True

    def _queue_close_notify(self):
        self._eof_sent = True
        try:
            self._ssl.unwrap()
        except ssl.SSLWantReadError:
            pass  # it waits for the peer's close_notify: ours is queued
        except (ssl.SSLError, ValueError):
            pass  # the connection is failing already: nothing worth sending

    # -- closing -----------------------------------------------------------------------------

    def close(self):
        """Close at once (never waits): ``close_notify`` goes out only if the transport takes it
        at once, then the transport is closed.  Closing again does nothing."""
        if self._closed:
            return
        if (self._handshaken and self._broken is None and not self._eof_sent
                and not self._sending.locked() and not self._out.pending):
            self._queue_close_notify()
            try:
                _write_nowait(self._transport, self._out.read())
            except OSError:
                pass  # the peer is gone: there is no one to tell
        self._closed = True
        self._transport.close()

    @property
    def closed(self):
        return self._closed

    async def unwrap(self):
        """``unwrap@()``: exchange ``close_notify`` both ways and return the plain stream beneath
        (STARTTLS downgrade).  Application data the peer sends before its ``close_notify`` is
        discarded; nothing after it is read.  The TLS stream is closed (its ``close()`` no longer
        touches the transport)."""
        if self._reading or self._writing:
            raise RuntimeError("unwrap() while another thread reads or writes this TLS stream")
        await self._begin("unwrap()")
        self._reading = self._writing = True
        try:
            if not self._handshaken:
                raise tls_version_error("unwrap()")
            self._eof_sent = True
            while True:
                try:
                    self._ssl.unwrap()
                    break
                except ssl.SSLWantReadError:
                    await self._flush()
                    await self._receive_record()
            await self._flush()
        except BaseException as exc:
            error = _truncation(exc, " during unwrap()")
            self._break("unwrap@()", error)
            if error is exc:
                raise
            raise error from None
        finally:
            self._reading = self._writing = False
        self._closed = True
        transport, self._transport = self._transport, None
        trailing = self._in.read()
        return transport if not trailing else _Replay(transport, trailing)

    async def _receive_record(self):
        """Feed the SSL object exactly one TLS record (or the end of stream)."""
        header = await self._receive_exactly(_RECORD_HEADER)
        if header is not None:
            await self._receive_exactly(int.from_bytes(header[3:5], "big"))

    async def _receive_exactly(self, count):
        got = b""
        while len(got) < count:
            try:
                got += await self._transport.read(count - len(got))
            except EOFError:
                self._in.write(got)
                self._track(got)
                self._in.write_eof()
                return None
        self._in.write(got)
        self._track(got)
        return got

    # -- facts ---------------------------------------------------------------------------------

    def _after_handshake(self, what):
        if not self._handshaken:
            raise tls_version_error(what)
        return self._ssl

    def version(self):
        """The protocol negotiated: ``'TLSv1.3'``, ``'TLSv1.2'``."""
        return self._after_handshake("version()").version()

    def cipher(self):
        """``(name, protocol, secret bits)`` of the cipher negotiated."""
        return self._after_handshake("cipher()").cipher()

    def selected_alpn_protocol(self):
        """The ALPN protocol agreed (``'h2'``, ``'http/1.1'``), or None if none was."""
        return self._after_handshake("selected_alpn_protocol()").selected_alpn_protocol()

    def getpeercert(self, binary_form=False):
        """The peer's certificate, as ``ssl.SSLSocket.getpeercert`` gives it (None if the
        peer sent none)."""
        return self._after_handshake("getpeercert()").getpeercert(binary_form)

    @property
    def server_side(self):
        return self._ssl.server_side

    @property
    def server_hostname(self):
        return self._ssl.server_hostname

    @property
    def ssl_object(self):
        """The ``ssl.SSLObject`` doing the work (for what this class does not expose)."""
        return self._ssl

    @property
    def transport(self):
        """The stream underneath."""
        return self._transport

    def fileno(self):
        return self._transport.fileno()

    @property
    def local_address(self):
        return self._transport.local_address

    @property
    def peer_address(self):
        return self._transport.peer_address

    def __repr__(self):
        state = ("closed" if self._closed else "broken" if self._broken is not None
                 else self._ssl.version() or "before the handshake")
        return f"<con TLS stream over {self._transport!r} ({state})>"


def _write_nowait(stream, data):
    """What of `data` the stream took at once (0 for a stream that cannot tell)."""
    return stream.write_nowait(data) if data else 0


def _renegotiation_error():
    return ssl.SSLError("the peer asked for a renegotiation in the middle of a write; conhook "
                        "refuses renegotiation")


def _is_eof(exc):
    return isinstance(exc, ssl.SSLEOFError)


def _truncation(exc, when):
    """The error for the transport ending without close_notify (`exc`, an SSLEOFError)."""
    if not _is_eof(exc):
        return exc
    error = ssl.SSLEOFError(ssl.SSL_ERROR_EOF, f"the peer closed the connection without "
                                               f"close_notify{when}: the data may have been "
                                               f"truncated (https_compatible=True accepts this "
                                               f"after the handshake)")
    error.__cause__ = exc
    return error


class _Replay(ByteStream):
    """The plain stream after ``unwrap@()``, when bytes past the peer's close_notify had already
    been taken from it: they are read first."""
    __slots__ = ("_stream", "_pending")

    def __init__(self, stream, pending):
        self._stream, self._pending = stream, pending

    async def read(self, max_bytes=READ_SIZE):
        if not self._pending:
            return await self._stream.read(max_bytes)
        if max_bytes < 1:
            raise ValueError(f"read() needs max_bytes >= 1, not {max_bytes!r}")
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def write(self, data):
        return await self._stream.write(data)

    def write_nowait(self, data):
        return self._stream.write_nowait(data)

    def shutdown_write(self):
        self._stream.shutdown_write()

    def close(self):
        self._stream.close()

    @property
    def closed(self):
        return self._stream.closed

    def __getattr__(self, name):
        return getattr(self._stream, name)


async def tls_wrap(stream, context, server_side=False, server_hostname=None, *,
                   https_compatible=False, handshake_timeout=None):
    """``tls_wrap@(stream, context, server_side=False, server_hostname=None)``: a ``TLSStream``
    over `stream`.  The handshake runs on first use or on ``handshake@()``; with
    `handshake_timeout` (seconds), a peer that has not finished it by then is dropped
    (``TimeoutError``, the stream closed)."""
    return TLSStream(stream, context, server_side, server_hostname, https_compatible,
                     handshake_timeout)


def client_context(tls):
    """The context for ``tls=``: True is the default one (the system's certificate store,
    hostnames checked); an ``ssl.SSLContext`` is used as it is."""
    if tls is True:
        return ssl.create_default_context()
    if isinstance(tls, ssl.SSLContext):
        return tls
    raise TypeError(f"tls= takes True (the system's certificates) or an ssl.SSLContext, not {tls!r}")


def server_context(tls):
    """The context for a listener's ``tls=``: an ``ssl.SSLContext`` holding the certificate."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    raise TypeError(f"tcplisten(tls=) takes an ssl.SSLContext with the server's certificate "
                    f"(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), then "
                    f"load_cert_chain()), not {tls!r}")
