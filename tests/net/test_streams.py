"""Streams and listeners: addresses, reading, writing, half-close, closing, Unix sockets,
and the fast path (no switch when an operation completes at once, the fairness budget, one
backend registration per socket)."""
from __future__ import annotations

import errno
import gc
import os
import re
import socket
import threading
import time

import pytest

import conhook.api as con
from conhook._network import stream_contract, streams
from conhook._runtime import worker_threads
from conhook._runtime import kernel as kernel_module

from .helpers import listen_both, run, together


# -- addresses ---------------------------------------------------------------------------------

def test_address_values():
    a = con.ipv4addr("127.0.0.1", 6839)
    b = con.ipv6addr("::1", 6839)
    assert repr(a) == "ipv4addr('127.0.0.1', 6839)"
    assert repr(b) == "ipv6addr('::1', 6839)"
    assert (a.host, a.port) == ("127.0.0.1", 6839)
    assert tuple(b) == ("::1", 6839)
    assert a == con.ipv4addr("127.0.0.1", 6839) and a != b
    assert len({a, con.ipv4addr("127.0.0.1", 6839), b}) == 2


@pytest.mark.parametrize("maker, host, port, error, words", [
    (con.ipv4addr, "localhost", 80, ValueError, "numeric IPv4"),
    (con.ipv4addr, "::1", 80, ValueError, "numeric IPv4"),
    (con.ipv6addr, "127.0.0.1", 80, ValueError, "numeric IPv6"),
    (con.ipv4addr, "127.0.0.1", 70000, ValueError, "0 to 65535"),
    (con.ipv4addr, "127.0.0.1", "80", ValueError, "0 to 65535"),
    (con.ipv6addr, b"::1", 80, TypeError, "as a str"),
], ids=["name", "v6-as-v4", "v4-as-v6", "port-range", "port-str", "host-bytes"])
def test_bad_addresses_are_refused(maker, host, port, error, words):
    with pytest.raises(error, match=words):
        maker(host, port)


# -- listening and connecting -----------------------------------------------------------------

def test_accept_on_both_addresses_and_round_trip():
    async def main():
        listener = await listen_both()
        v4, v6 = listener.addresses
        assert v4.host == "127.0.0.1" and v6.host == "::1" and v4.port and v6.port
        seen = []

        async def server():
            for _ in range(2):
                s = await listener.accept()
                seen.append(s.local_address)
                with s:
                    await s.write(b"echo:" + await s.read())

        async def client():
            for addr in (v6, v4):
                with await con.tcpconnect(addr) as c:
                    assert c.peer_address == addr
                    assert c.local_address.host == addr.host
                    await c.write(b"hi")
                    assert await c.read() == b"echo:hi"
        await together(server, client)
        listener.close()
        return seen, [v6, v4]
    seen, expected = run(main)
    assert seen == expected


def test_accept_returns_whichever_address_has_a_connection():
    async def main():
        listener = await listen_both()
        v4, v6 = listener.addresses
        order = []

        async def server():
            for _ in range(4):
                s = await listener.accept()
                order.append(s.local_address.host)
                s.close()

        async def client():
            for addr in (v6, v6, v4, v6):
                c = await con.tcpconnect(addr)
                await con.sleep(0.01)  # the server takes it before the next one comes
                c.close()
        await together(server, client)
        listener.close()
        return order
    assert run(main) == ["::1", "::1", "127.0.0.1", "::1"]


def test_accept_makes_the_socket_without_the_family_and_type_enums(monkeypatch):
    """accept@ builds the connection's socket from the listening socket's family and type kept
    as ints: socket.family and .type make an enum member at every get (a few thousand
    instructions per connection)."""
    conversions = []
    convert = socket._intenum_converter
    monkeypatch.setattr(socket, "_intenum_converter",
                        lambda value, cls: conversions.append(cls) or convert(value, cls))

    async def main():
        listener = await listen_both()
        conversions.clear()
        for addr in listener.addresses:
            with await con.tcpconnect(addr) as c, await listener.accept() as s:
                accepted = conversions[:]
                await c.write(b"hi")
                assert await s.read() == b"hi"
                assert (s.socket.family, s.socket.type) == (addr.family, socket.SOCK_STREAM)
                conversions.clear()
                assert accepted == []
        listener.close()
    run(main)


def test_accept_asks_an_address_that_had_nothing_again_only_after_a_wait():
    """A listener on several addresses does not ask one that said EAGAIN again (a system call
    and an exception each time) until it has waited, when the poll covers them all."""
    async def main():
        listener = await listen_both()
        v4, v6 = listener.addresses
        empty = []

        def counting(accept, address):
            def call():
                try:
                    return accept()
                except BlockingIOError:
                    empty.append(address.host)
                    raise
            return call
        listener._accepts = [counting(*pair) for pair in zip(listener._accepts, (v4, v6))]
        clients = [await con.tcpconnect(v4) for _ in range(3)]  # (in the backlog, not accepted)
        for _ in range(3):
            s = await listener.accept()
            assert s.local_address.host == "127.0.0.1"
            s.close()
        assert empty == ["::1"]  # (asked at every accept@ after the first, before)
        clients.append(await con.tcpconnect(v6))
        s = await listener.accept()  # 127.0.0.1 has nothing now: a wait, then ::1 is asked
        assert s.local_address.host == "::1"
        s.close()
        for c in clients:
            c.close()
        listener.close()
    run(main)


def test_listening_on_an_address_in_use_names_it_and_keeps_nothing_open():
    async def main():
        taken = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        busy = taken.addresses[0]
        free = con.ipv6addr("::1", 0)
        with pytest.raises(OSError) as info:
            await con.tcplisten(free, busy)
        assert info.value.errno == errno.EADDRINUSE
        assert repr(busy) in str(info.value)
        taken.close()
        again = await con.tcplisten(busy)  # closed with the listener: the address is free again
        again.close()
        assert again.closed
        again.close()  # idempotent
    run(main)


def test_tcplisten_needs_address_values():
    async def main():
        with pytest.raises(TypeError, match="ipv4addr"):
            await con.tcplisten(("127.0.0.1", 0))
        with pytest.raises(TypeError, match="at least one"):
            await con.tcplisten()
    run(main)


def test_connect_by_name_and_numeric_host():
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        port = listener.addresses[0].port

        async def server():
            for _ in range(2):
                (await listener.accept()).close()

        async def client():
            for host in ("localhost", "127.0.0.1"):
                c = await con.tcpconnect(host, port)
                assert c.peer_address == con.ipv4addr("127.0.0.1", port)
                c.close()
        await together(server, client)
        listener.close()
    run(main)


def test_connection_refused_names_the_address():
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        addr = listener.addresses[0]
        listener.close()
        with pytest.raises(ConnectionRefusedError) as info:
            await con.tcpconnect(addr)
        assert "127.0.0.1" in str(info.value)
        with pytest.raises(ConnectionRefusedError):
            await con.tcpconnect("127.0.0.1", addr.port)
    run(main)


def test_name_resolution_runs_in_a_worker_thread(monkeypatch):
    calls = []
    real = worker_threads.to_resolver

    async def spy(fn, *args):
        calls.append(fn.__name__)
        return await real(fn, *args)
    monkeypatch.setattr("conhook._network.sockets.to_resolver", spy)

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        port = listener.addresses[0].port
        (await con.tcpconnect("127.0.0.1", port)).close()
        assert calls == []  # numeric: nothing to look up
        (await con.tcpconnect("localhost", port)).close()
        assert calls == ["getaddrinfo"]
        listener.close()
    run(main)


def test_a_full_to_thread_pool_neither_starves_name_resolution_nor_hides():
    """Calls to to_thread@ that never return fill its pool: a call queued behind them says so
    in the cactus stack, and a connection by name still resolves (in a pool of its own)."""
    release = threading.Event()
    full = worker_threads.MAX_WORKERS
    started = []

    def block():
        started.append(1)
        release.wait()

    async def main():
        # (the scheduler's limiter, 40, would hold them short of the pool's bound)
        con.current_default_thread_limiter().total_tokens = full + 1
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        port = listener.addresses[0].port
        drawn = []

        async def stuck():
            await con.to_thread(block)

        async def queued():
            await con.to_thread(lambda: None)

        async def connect():
            try:
                while len(started) < full:
                    await con.sleep(0.01)
                await con.idle()  # (the queued call is parked by now)
                drawn.append(con.tree())
                with con.timeout(10):  # (starved, it would wait for ever)
                    c = await con.tcpconnect("localhost", port)
                (await listener.accept()).close()
                c.close()
            finally:
                release.set()
        await together(*[stuck] * full, queued, connect)
        listener.close()
        return drawn[0]
    threads = [line.split("| ")[1] for line in run(main).splitlines() if "| " in line]
    # (the chain may name to_thread once or twice: the wait's label after the call's name)
    assert [re.fullmatch(r"queued - (to_thread - )?to_thread \(queued: all (\d+) workers busy\)", t)[2]
            for t in threads if t.startswith("queued")] == [str(full)]
    assert sum(re.fullmatch("stuck - (to_thread - )?to_thread", t) is not None for t in threads) == full


# -- reading and writing -------------------------------------------------------------------------

def _pair():
    """A connected stream and the plain blocking socket at its other end."""
    a, b = socket.socketpair()
    return con.Stream(a), b


def test_read_returns_what_is_there_up_to_max_bytes_then_eof():
    async def main():
        s, peer = _pair()
        peer.sendall(b"abcdef")
        assert await s.read(4) == b"abcd"
        assert await s.read() == b"ef"
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            await s.read()
        with pytest.raises(EOFError):  # and again
            await s.read()
        s.close()
        peer.close()
    run(main)


def test_half_close_the_peer_still_sends():
    async def main():
        listener = await con.tcplisten(con.ipv6addr("::1", 0))

        async def server():
            with await listener.accept() as s:
                received = b""
                try:
                    while True:
                        received += await s.read()
                except EOFError:
                    pass
                await s.write(b"got %d bytes" % len(received))

        async def client():
            with await con.tcpconnect(listener.addresses[0]) as c:
                await c.write(b"x" * 100_000)
                c.shutdown_write()
                reply = b""
                try:
                    while True:
                        reply += await c.read()
                except EOFError:
                    pass
                assert reply == b"got 100000 bytes"
        await together(server, client)
        listener.close()
    run(main)


def test_large_writes_arrive_whole_and_in_order():
    payload = os.urandom(1 << 20) * 4

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        got = []

        async def server():
            with await listener.accept() as s:
                await s.write(payload)
                await s.write(bytearray(b"tail"))
                await s.write(memoryview(b"\0\1\2\3").cast("I"))  # written as its bytes

        async def client():
            with await con.tcpconnect(listener.addresses[0]) as c:
                try:
                    while True:
                        got.append(await c.read())
                except EOFError:
                    pass
        await together(server, client)
        listener.close()
        return b"".join(got)
    assert run(main) == payload + b"tail" + b"\0\1\2\3"


def test_an_unclosed_stream_warns_when_collected_and_its_socket_is_closed():
    async def main():
        s, peer = _pair()
        sock, fd = s.socket, s.fileno()
        assert sock.fileno() == fd >= 0 and not s.closed
        with pytest.warns(ResourceWarning, match="unclosed <con stream"):
            del s
            gc.collect()
        assert sock.fileno() == -1  # closed by the finaliser
        assert peer.recv(10) == b""
        peer.close()
        s, peer = _pair()
        with s:
            pass
        peer.close()
        assert (s.closed, s.fileno(), s.socket) == (True, -1, None)
    run(main)


def test_close_is_idempotent_and_later_use_says_closed():
    async def main():
        s, peer = _pair()
        fd = s.fileno()
        assert fd >= 0
        with s:
            pass
        assert s.closed and s.fileno() == -1
        s.close()
        with pytest.raises(OSError, match="closed stream") as info:
            await s.read()
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError, match="closed stream"):
            await s.write(b"x")
        assert peer.recv(10) == b""  # the peer sees end of stream
        peer.close()
    run(main)


def test_unix_sockets(tmp_path):
    path = str(tmp_path / "sock")

    async def main():
        listener = await con.unixlisten(path)
        assert listener.addresses == [path]

        async def server():
            with await listener.accept() as s:
                await s.write((await s.read()).upper())

        async def client():
            with await con.unixconnect(path) as c:
                assert c.peer_address == path
                await c.write(b"unix")
                assert await c.read() == b"UNIX"
        await together(server, client)
        with pytest.raises(OSError, match="stale socket file"):
            await con.unixlisten(path)
        listener.close()
        assert not os.path.exists(path)  # the listener removes its socket file
        with pytest.raises(FileNotFoundError, match=repr(path)):
            await con.unixconnect(path)
    run(main)


# (3.12+ warns of fork() in a process with threads, such as to_thread's workers: the child
# here only closes a socket and _exits.)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_leaves_the_parents_unix_listener_alone(tmp_path):
    # The child closes its copy of the listener (as its __del__ does when it exits): the
    # parent's socket file stays, and so does the parent's wait in accept (the backend's
    # epoll instance is shared with the child).
    path = str(tmp_path / "sock")

    async def main():
        listener = await con.unixlisten(path)

        async def server():
            with await listener.accept() as s:
                await s.write(b"still here")

        async def client():
            pid = os.fork()
            if pid == 0:
                try:
                    listener.close()
                finally:
                    os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0  # noqa: CON201 (the child exits at once)
            assert os.path.exists(path)
            with await con.unixconnect(path) as c:
                assert await c.read() == b"still here"
        with con.timeout(10):  # a guard: a lost registration would hang here
            await together(server, client)
        listener.close()
        assert not os.path.exists(path)
    run(main)


def test_a_unix_listener_made_by_a_relative_path_removes_its_file_after_chdir(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(second / "sock"))  # a live socket file of the same name elsewhere

    async def main():
        monkeypatch.chdir(first)
        listener = await con.unixlisten("sock")
        monkeypatch.chdir(second)
        listener.close()
    run(main)
    assert not (first / "sock").exists()
    assert (second / "sock").exists()
    other.close()


def test_streams_need_a_scheduler():
    s, peer = _pair()
    coro = s.read()
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        coro.send(None)
    s.close()
    peer.close()


# -- the fast path ------------------------------------------------------------------------------

def test_an_operation_that_can_complete_does_not_switch():
    log = []

    async def main():
        s, peer = _pair()
        peer.sendall(b"ready")

        async def other():
            log.append("other ran")

        async def reader():
            log.append(await s.read(2))  # data is there: no switch
            await s.write(b"x")
            log.append(await s.read(3))
            log.append("reader done")
        await together(reader, other)
        s.close()
        peer.close()
    run(main)
    assert log == [b"re", b"ady", "reader done", "other ran"]


def test_a_fast_peer_cannot_starve_the_others(monkeypatch):
    """With data always there, a reader never needs to wait; after BUDGET operations in a
    row it yields anyway, so the other threads run."""
    monkeypatch.setattr(stream_contract, "SLICE", 3600.0)  # the count alone, on a busy host too
    n = streams.BUDGET * 3
    log = []

    async def main():
        s, peer = _pair()
        peer.sendall(b"z" * n)

        async def reader():
            for _ in range(n):
                await s.read(1)
                log.append("r")

        async def spinner():
            while len(log) < n + 3:
                log.append("s")
                await con.idle()
        await together(reader, spinner)
        s.close()
        peer.close()
    run(main)
    runs = "".join(log).split("s")
    longest = max(len(r) for r in runs)
    assert longest == streams.BUDGET - 1 or longest == streams.BUDGET
    assert log.count("r") == n


def test_a_peer_whose_operations_take_long_yields_after_a_slice_of_its_work():
    """Every read completes at once, and the thread works SLICE seconds after each: it yields
    at its third read in a row (the clock starts at the second), not at the BUDGET-th."""
    n = 12
    log = []

    async def main():
        s, peer = _pair()
        peer.sendall(b"z" * n)

        async def reader():
            for _ in range(n):
                await s.read(1)
                log.append("r")
                time.sleep(stream_contract.SLICE)  # noqa: CON201 (atomic work: no switch)

        async def spinner():
            while log.count("r") < n:
                log.append("s")
                await con.idle()
        await together(reader, spinner)
        s.close()
        peer.close()
    run(main)
    runs = [len(r) for r in "".join(log).split("s") if r]
    assert max(runs) == 2 and sum(runs) == n


def test_each_socket_is_registered_once(monkeypatch, backend):
    """Many waits on one socket cost one registration and no change of interest."""
    calls = []
    cls = kernel_module.backend_class(backend)
    for name in ("register", "modify"):
        real = getattr(cls, name)

        def spy(self, fd, mask, real=real, name=name):
            calls.append((name, fd, mask))
            return real(self, fd, mask)
        monkeypatch.setattr(cls, name, spy)

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))

        async def server():
            with await listener.accept() as s:
                try:
                    while True:
                        await s.write(await s.read())
                except EOFError:
                    pass

        async def client():
            with await con.tcpconnect(listener.addresses[0]) as c:
                for i in range(200):
                    if i == 20:  # connecting waited for WRITE: let the kernel settle first
                        seen.append(len(calls))
                    await c.write(b"%d" % i)
                    assert await c.read() == b"%d" % i
                seen.append(len(calls))
                fds.append(c.fileno())
        fds, seen = [], []
        await together(server, client)
        listener.close()
        return fds[0], seen
    fd, (before, after) = run(main)
    assert [c for c in calls if c[1] == fd][-1][2] == kernel_module.READ  # it ends watched for READ
    assert calls[before:after] == []  # and 180 round trips later nothing has changed


def test_an_fd_that_nobody_waits_on_any_more_does_not_hide_a_deadlock():
    # The kernel does not count waits for fds; about to block, it looks for a waiter in its
    # records.  A stream that waited once stays registered, and must not count as a wait.
    holder = []

    async def main():
        s, peer = _pair()
        holder.append((s, peer))
        with pytest.raises(TimeoutError):
            with con.timeout(0.01):
                await s.read()  # registers the fd, then stops waiting
        assert kernel_module.current_kernel().io and not kernel_module.current_kernel().awaits_io()
        await con.Event().wait()  # nothing can ever set it

    with pytest.raises(con.Deadlock, match="deadlock"):
        run(main)
    for sock in holder[0]:
        sock.close()
