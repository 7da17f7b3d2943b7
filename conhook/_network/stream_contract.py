"""The stream contract: what every byte stream offers, whatever carries its bytes.

A socket (``Stream``), an in-memory pair (``conhook.testing.MemoryStream``) and the streams
still to come (TLS, process pipes) all implement ``ByteStream``, so that code written against
one runs on every other:

* ``read@(max_bytes=65536)``: the bytes available now, at least one and at most `max_bytes`,
  waiting until some arrive; ``EOFError`` once the peer has shut down its side and all was read.
* ``write@(data)``: returns once all of `data` is handed on, waiting while the peer is slow
  (backpressure).
* ``shutdown_write()``: the peer reads end of stream; this end can still read.
* ``write_nowait(data)``: hand on what of `data` can go at once, never waiting or switching;
  how many bytes went (0 from a stream that cannot tell).  Only while no ``write@`` is under
  way: it is for a closing stream's last words (TLS ``close_notify`` from ``close()``).
* ``close()``: at once, never blocking, and again does nothing; a thread waiting on the stream
  is woken with ``OSError(EBADF)``.  ``closed`` says whether it was; ``with stream:`` closes it
  at the end of the block.
* One thread may read while another writes; two threads reading (or writing) at once is an
  error.
* Every ``read@`` and ``write@`` is an interruption point, even one that completes at once.  A
  write interrupted after part of its data went out closes the stream: the peer could never
  tell where it stopped.
* Fairness (docs/spec.md §1.5): a stream counts the operations it completed at once in a row,
  and yields (``idle``) at the ``BUDGET``-th, or earlier once ``SLICE`` seconds have passed
  since the second, so that one fast peer cannot starve the other threads or keep the
  scheduler from polling.  Any wait starts the count again.  The clock is read at the 2nd
  operation in a row and then at the 3rd, 4th, 6th, 10th, 18th, 34th and 66th (``LOOKS``): a
  thread whose operations all complete at once yields after at most about ``2 * SLICE`` (4 ms)
  of its own work when its operations take alike, at the 3rd operation when each takes longer,
  and never reads the clock in a run of one operation (a request answered by one write).

What owns a socket (the socket stream, a UDP socket) also offers ``fileno()``, ``socket``,
``closed`` and ``with``, and warns (``ResourceWarning``) when collected unclosed, closing it:
``SocketOwner``, written once.
"""
from __future__ import annotations

import abc
import warnings
from time import monotonic

BUDGET = 128  # operations completed at once in a row before a stream yields (as Tokio does)
SLICE = 0.002  # seconds after the second operation in a row, at the next look, it yields
READ_SIZE = 65536  # read@()'s default max_bytes

# Where in a run of operations completed at once the clock is read: the 2nd starts the clock,
# the others compare; the gaps double, so that a run of quick operations reads it 8 times in
# 128 and a run of slow ones yields at most twice SLICE late.  LOOK is indexed by the budget
# left after counting the operation (BUDGET - n for the n-th), true where to look; operations
# call ``spent`` only where it is true, and test ``budget <= SECOND`` first (the 1st operation
# of a run, the common case, costs one comparison as before).
LOOKS = (2, 3, 4, 6, 10, 18, 34, 66, BUDGET)
SECOND = BUDGET - 2
LOOK = tuple(BUDGET - n in LOOKS for n in range(BUDGET))


def spent(stream):
    """Whether `stream`'s thread must yield now (at a look: ``LOOK[stream._budget]``).

    True at the BUDGET-th operation in a row, or when ``SLICE`` has passed since the second
    (whose time it records in ``stream._since``).  The operation that yields completes at once
    after it, as the first of the next run.
    """
    budget = stream._budget
    if budget:
        now = monotonic()
        if budget == SECOND:
            stream._since = now
            return False
        if now - stream._since < SLICE:
            return False
    stream._budget = BUDGET - 1
    return True


class ByteStream(abc.ABC):
    """The contract above, as methods every stream defines."""
    __slots__ = ()

    @abc.abstractmethod
    async def read(self, max_bytes=READ_SIZE):
        """``read@(max_bytes=65536)``: the bytes available now (at least one, at most
        `max_bytes`), waiting until some arrive; ``EOFError`` at the end of the stream."""

    @abc.abstractmethod
    async def write(self, data):
        """``write@(data)``: hand on all of `data`, waiting while the peer is slow."""

    def write_nowait(self, data):
        """Hand on what of `data` can go at once, without waiting; how many bytes went."""
        return 0

    @abc.abstractmethod
    def shutdown_write(self):
        """Close the sending side: the peer reads end of stream, and can still send to us."""

    @abc.abstractmethod
    def close(self):
        """Close the stream at once (it never blocks); closing again does nothing."""

    @property
    @abc.abstractmethod
    def closed(self):
        """Whether ``close()`` was called."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


class SocketOwner:
    """The members of an object that owns a socket (``streams.Stream``, ``udp.UDPSocket``), which
    keeps it in ``_sock`` (None once closed) and its number in ``_fd``, and defines ``close()``."""
    __slots__ = ()

    @property
    def closed(self):
        """Whether ``close()`` was called."""
        return self._sock is None

    def fileno(self):
        """The socket's file descriptor, or -1 once closed."""
        return -1 if self._sock is None else self._fd

    @property
    def socket(self):
        """The underlying (non-blocking) socket object; None once closed."""
        return self._sock

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
            except Exception:  # noqa: BLE001  (a finaliser must not raise)
                pass
