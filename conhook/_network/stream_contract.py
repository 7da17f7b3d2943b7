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
* Fairness (docs/spec.md §1.5): a stream counts the operations it completed at once in a row;
  after ``BUDGET`` of them it yields (``idle``), so that one fast peer cannot starve the other
  threads or keep the scheduler from polling.  Any wait starts the count again.
"""
from __future__ import annotations

import abc

BUDGET = 128  # operations completed at once in a row before a stream yields (as Tokio does)
READ_SIZE = 65536  # read@()'s default max_bytes


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
