"""Happy Eyeballs in tcpconnect@(host, port): a name's addresses raced (issue 15, item 5).

Every address is on this machine: the name is resolved by a resolver the test puts in place
of the real one, an address that never answers is a loopback listener whose backlog is full
(Linux drops the SYNs it gets), and a refused one a loopback port nobody listens on.
"""
from __future__ import annotations

import gc
import os
import select
import socket
import sys
import traceback
import warnings

import pytest

import conhook  # noqa: F401  (import con)
import con
from conhook._network import happy_eyeballs, sockets

from . import helpers
from .helpers import run

NAME = "happy-eyeballs.invalid"  # (never looked up: the test's resolver answers for it)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                           reason="a full backlog drops SYNs on Linux; /proc/self/fd counts fds")


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def every_socket_closed():
    """Fail the test if a socket was left for the garbage collector to close: the count of
    open fds cannot see one that was freed unclosed (CPython closes it, with this warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.fixture(scope="module")
def unresponsive():
    """ipv6addr('::1', port) of a listener that never answers a new connection: its backlog
    (0) is full, so the kernel drops every SYN, and a connect to it waits for minutes."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("::1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(64):
            filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            if not select.select([], [filler], [], 0.2)[1]:  # this one was dropped: it is full
                break
        else:
            pytest.skip("this kernel accepted 64 connections on a backlog of 0")
        yield con.ipv6addr("::1", listener.getsockname()[1])
    finally:
        for sock in fillers + [listener]:
            sock.close()


def _refused(family, host):
    """An address on `host` where nothing listens (a port the system just gave and took back)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return (con.ipv6addr if family == socket.AF_INET6 else con.ipv4addr)(host, port)


@pytest.fixture
def resolve_to(monkeypatch):
    """``resolve_to(addr, ...)``: NAME resolves to these addresses, in this order."""
    def install(*addrs):
        async def resolver(fn, host, port, *args):
            assert host == NAME
            return [(a.family, socket.SOCK_STREAM, 6, "", a.sockaddr) for a in addrs]
        monkeypatch.setattr(sockets, "to_resolver", resolver)
    return install


@pytest.fixture
def attempts(monkeypatch):
    """The addresses tcpconnect@ tried, in the order it started them, and how each ended."""
    tried = []
    real = sockets._open

    async def spy(family, sockaddr):
        entry = [sockets.address_of(sockaddr), "running"]
        tried.append(entry)
        try:
            sock = await real(family, sockaddr)
        except BaseException as exc:
            entry[1] = type(exc).__name__
            raise
        entry[1] = "connected"
        return sock
    monkeypatch.setattr(sockets, "_open", spy)
    return tried


@linux
def test_an_address_that_never_answers_loses_to_the_next_one(unresponsive, resolve_to, attempts):
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        good = listener.addresses[0]
        resolve_to(unresponsive, good)
        before = _open_fds()
        # Tried one at a time, the first address would hold the connect for minutes (the
        # SYN is retried for about two): a generous bound, far below that, proves the race.
        with con.timeout(10):
            stream = await con.tcpconnect(NAME, 80)
        assert stream.peer_address == good
        stream.close()
        assert _open_fds() == before  # the loser's socket is closed too
        listener.close()
    run(main)
    assert attempts == [[unresponsive, "Interrupted"], [attempts[1][0], "connected"]]


def test_a_failed_attempt_starts_the_next_at_once(resolve_to, attempts):
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        refused, good = _refused(socket.AF_INET6, "::1"), listener.addresses[0]
        resolve_to(refused, good)
        with con.timeout(10):  # (the next start would otherwise wait the hour)
            stream = await con.tcpconnect(NAME, 80, happy_eyeballs_delay=3600)
        stream.close()
        listener.close()
        return refused, good
    refused, good = run(main)
    assert attempts == [[refused, "ConnectionRefusedError"], [good, "connected"]]


@linux
def test_without_a_delay_the_addresses_are_tried_one_at_a_time(unresponsive, resolve_to, attempts):
    """happy_eyeballs_delay=None: the next attempt waits for the one before to fail; the
    caller's timeout interrupts the attempt and closes its socket."""
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        resolve_to(unresponsive, listener.addresses[0])
        before = _open_fds()
        with pytest.raises(TimeoutError):
            with con.timeout(0.5):
                await con.tcpconnect(NAME, 80, happy_eyeballs_delay=None)
        assert _open_fds() == before
        listener.close()
    run(main)
    assert attempts == [[unresponsive, "Interrupted"]]


@linux
def test_a_timeout_while_every_attempt_is_under_way_is_a_timeout(unresponsive, resolve_to, attempts):
    """Every address has been tried and the call waits for the attempts (not an interruption
    point) when the caller's timeout runs out: the attempts are interrupted, their sockets
    closed, and the call raises TimeoutError, not an OSError about no address connecting."""
    async def main():
        resolve_to(unresponsive, unresponsive)
        before = _open_fds()
        with pytest.raises(TimeoutError):
            with con.timeout(0.25):
                await con.tcpconnect(NAME, 80, happy_eyeballs_delay=0.05)
        assert _open_fds() == before
    run(main)
    assert attempts == [[unresponsive, "Interrupted"]] * 2


@linux
def test_a_second_connection_made_at_the_same_time_is_closed(resolve_to, attempts):
    """With no delay both addresses connect at once (both listen; nothing accepts): the one
    that connected second is closed, whether its interruption came first or not."""
    async def main():
        listener = await con.tcplisten(con.ipv6addr("::1", 0), con.ipv4addr("127.0.0.1", 0))
        resolve_to(*listener.addresses)
        before = _open_fds()
        stream = await con.tcpconnect(NAME, 80, happy_eyeballs_delay=0)
        assert stream.peer_address in listener.addresses
        stream.close()
        assert _open_fds() == before
        listener.close()
    run(main)
    assert len(attempts) == 2


def test_when_every_address_fails_one_error_names_the_host_and_each_address(resolve_to):
    v4a, v4b = _refused(socket.AF_INET, "127.0.0.1"), _refused(socket.AF_INET, "127.0.0.1")
    v6 = _refused(socket.AF_INET6, "::1")
    resolve_to(v4a, v4b, v6)
    tried = [v6, v4a, v4b]  # (IPv6 first, then the families alternate)

    async def main():
        await con.tcpconnect(NAME, 80)
    with pytest.raises(ConnectionRefusedError) as info:
        run(main)
    exc = info.value
    assert str(exc) == (f"[Errno {exc.errno}] cannot connect to {NAME!r} port 80 ("
                        + ", ".join(f"{a!r}: Connection refused" for a in tried) + ")")
    group = exc.__cause__
    assert isinstance(group, ExceptionGroup) and NAME in str(group)
    assert [(type(e), e.strerror) for e in group.exceptions] == [
        (ConnectionRefusedError, f"{a!r}: Connection refused") for a in tried]
    assert all(e.__traceback__ is None for e in group.exceptions)
    # (what leaves bootstrap: the test's frames and the helper that runs it, none of conhook's)
    assert {f.filename for f in traceback.extract_tb(exc.__traceback__)} <= {__file__, helpers.__file__}


def test_interleave_puts_ipv6_first_and_alternates_the_families():
    v4 = [(socket.AF_INET, (f"10.0.0.{i}", 1)) for i in range(3)]
    v6 = [(socket.AF_INET6, (f"fd00::{i}", 1, 0, 0)) for i in range(2)]
    assert happy_eyeballs.interleave(v4 + v6) == [v6[0], v4[0], v6[1], v4[1], v4[2]]
    assert happy_eyeballs.interleave(v4) == v4
    assert happy_eyeballs.interleave(v6 + v4[:1]) == [v6[0], v4[0], v6[1]]


@pytest.mark.parametrize("delay, error", [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)])
def test_a_bad_delay_is_refused_before_anything_is_tried(delay, error, resolve_to, attempts):
    async def main():
        resolve_to(con.ipv4addr("127.0.0.1", 9), con.ipv6addr("::1", 9))
        with pytest.raises(error, match="happy_eyeballs_delay"):
            await con.tcpconnect(NAME, 80, happy_eyeballs_delay=delay)
    run(main)
    assert attempts == []


def test_a_connection_made_before_the_interruption_reached_it_is_discarded():
    """Two attempts finish in one round of the scheduler: the second to run has connected
    before the winner's interruption could reach it, and the race closes its connection."""
    targets = [(socket.AF_INET6, ("::1", 1, 0, 0)), (socket.AF_INET, ("127.0.0.1", 1))]
    discarded = []

    async def main():
        both = con.Event()

        async def connect(family, sockaddr):
            if sockaddr == targets[1][1]:
                both.set()  # the second attempt releases the first and itself at once
            await both.wait()
            return f"socket to {sockaddr[0]}"
        return await happy_eyeballs.race(connect, discarded.append, targets, 0)
    winner, errors = run(main)
    assert winner == ("socket to 127.0.0.1", targets[1][1]) and errors == []
    assert discarded == ["socket to ::1"]


def test_a_failure_after_a_connection_was_made_closes_that_connection():
    """A loser that fails while it unwinds (not an OSError: a bug) fails the call, and the
    winner's connection, never handed out, is closed."""
    targets = [(socket.AF_INET6, ("::1", 1, 0, 0)), (socket.AF_INET, ("127.0.0.1", 1))]
    discarded = []

    async def main():
        async def connect(family, sockaddr):
            if family == socket.AF_INET:
                return "the winner's socket"
            try:
                await con.Event().wait()
            except con.Interrupted:
                raise RuntimeError("a bug in the loser") from None
        with pytest.raises(RuntimeError, match="a bug in the loser"):
            await happy_eyeballs.race(connect, discarded.append, targets, 0)
    run(main)
    assert discarded == ["the winner's socket"]
