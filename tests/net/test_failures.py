"""Failures: resets, broken pipes (and SIGPIPE), running out of file descriptors in accept,
slow readers (backpressure), interrupted operations, and closing what another thread waits on."""
from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import conhook.api as con
from conhook._runtime.kernel import current_kernel

from .helpers import ROOT, listen_both, recv_all, run, together


def _pair():
    a, b = socket.socketpair()
    return con.Stream(a), b


def _reset(sock):
    """Close a plain socket so that the peer gets a reset (RST), not an end of stream."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _tcp_pair():
    """A connected (stream, plain socket) pair over TCP on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
    return con.Stream(conn), peer


def _io_state(stream):
    """What the running kernel records about the stream's fd: (reader, writer) or None."""
    rec = current_kernel().io.get(stream.fileno())
    return None if rec is None else (rec.reader, rec.writer)


# -- peer errors -----------------------------------------------------------------------------

def test_peer_reset_is_connection_reset_error():
    async def main():
        s, peer = _tcp_pair()
        peer.sendall(b"last words")
        assert await s.read() == b"last words"
        _reset(peer)
        with pytest.raises(ConnectionResetError):
            await s.read()
        s.close()
    run(main)


def test_peer_reset_while_waiting_to_read():
    async def main():
        s, peer = _tcp_pair()

        async def reader():
            with pytest.raises(ConnectionResetError):
                await s.read()

        async def resetter():
            await con.sleep(0.02)
            _reset(peer)
        await together(reader, resetter)
        s.close()
    run(main)


def test_writing_to_a_closed_peer_is_broken_pipe():
    async def main():
        s, peer = _tcp_pair()
        peer.close()
        with pytest.raises(BrokenPipeError):
            for _ in range(100):  # the first write may still be accepted; the peer answers RST
                await s.write(b"x" * 1000)
                await con.sleep(0.005)
        s.close()
    run(main)


def test_sigpipe_never_kills_the_process():
    """Even with SIGPIPE restored to its default (death), a write to a closed peer raises."""
    child = textwrap.dedent("""
        import signal, socket
        import conhook.api as con
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

        async def main():
            with socket.create_server(("127.0.0.1", 0)) as server:
                peer = socket.create_connection(server.getsockname())
                conn, _ = server.accept()
            s = con.Stream(conn)
            peer.close()
            try:
                for _ in range(100):
                    await s.write(b"x" * 1000)
                    await con.sleep(0.005)
            except BrokenPipeError:
                print("BrokenPipeError")
            s.close()
        con.bootstrap(main)
        print("alive")
    """)
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["BrokenPipeError", "alive"]


# -- out of file descriptors --------------------------------------------------------------------

_EMFILE_CHILD = textwrap.dedent("""
    import os, resource, sys
    import conhook.api as con

    def say(*words):
        print(*words, flush=True)

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0), con.ipv6addr("::1", 0))
        attempts = [0]
        def counting(accept):
            def call():
                attempts[0] += 1
                return accept()
            return call
        listener._accepts = [counting(a) for a in listener._accepts]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        hog = []
        try:
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        say("port", listener.addresses[0].port, listener.addresses[1].port)
        served = 0

        async def free_later():
            line = await con.to_thread(sys.stdin.readline)  # the parent connected: wait, then free
            before = attempts[0]
            await con.sleep(0.5)
            say("attempts-while-full", attempts[0] - before)
            for fd in hog:
                os.close(fd)

        async def serve():
            nonlocal served
            while served < 2:
                s = await listener.accept()
                served += 1
                await s.write(b"served %d" % served)
                s.close()
            say("served", served)
        await together(free_later, serve)
        listener.close()

    from conhook._runtime.prejoin import prejoin

    async def together(*fns):
        scope = prejoin()
        try:
            for fn in fns:
                scope.start(fn)
        except BaseException as exc:
            if await scope.failed(exc):
                raise
        finally:
            await scope.join()

    con.bootstrap(main)
""")


def test_accept_out_of_file_descriptors_neither_spins_nor_stops():
    proc = subprocess.Popen([sys.executable, "-c", _EMFILE_CHILD], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        words = proc.stdout.readline().split()
        assert words[0] == "port", (words, proc.stderr.read())
        port4, port6 = int(words[1]), int(words[2])
        first = socket.create_connection(("127.0.0.1", port4), timeout=30)  # waits in the backlog
        proc.stdin.write("go\n")
        proc.stdin.flush()
        words = proc.stdout.readline().split()
        assert words[0] == "attempts-while-full", (words, proc.stderr.read())
        assert int(words[1]) < 50  # a few retries a second, not a busy loop
        assert recv_all(first) == b"served 1"  # it recovered once descriptors were free
        second = socket.create_connection(("::1", port6), timeout=30)
        assert recv_all(second) == b"served 2"  # and it still listens
        first.close()
        second.close()
        assert proc.stdout.readline().split() == ["served", "2"]
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()


# -- backpressure ---------------------------------------------------------------------------------

def test_slow_reader_makes_write_wait_and_memory_stays_flat():
    chunk = os.urandom(1 << 20)
    total = 16

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        ahead = []  # bytes written but not yet read, each time a write returns
        read = [0]

        async def writer():
            with await listener.accept() as s:
                s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
                tracemalloc.start()
                for _ in range(total):
                    await s.write(chunk)
                    ahead.append((len(ahead) + 1) * len(chunk) - read[0])
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                return peak

        async def slow_reader():
            with await con.tcpconnect(listener.addresses[0]) as c:
                c.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
                try:
                    while True:
                        read[0] += len(await c.read(16384))
                        await con.sleep(0.0005)
                except EOFError:
                    pass
        peaks = []

        async def writer_peak():
            peaks.append(await writer())
        await together(writer_peak, slow_reader)
        listener.close()
        return peaks[0], ahead, read[0]
    peak, ahead, read = run(main)
    assert read == total * len(chunk)
    # The writer never got further ahead of the reader than the socket buffers (small here)...
    assert max(ahead) < 2 * len(chunk)
    # ...and its memory did not grow with what it wrote: no copies of the data were kept.
    assert peak < 4 * len(chunk)


# -- interruption ------------------------------------------------------------------------------

def test_interrupted_read_leaves_the_stream_usable():
    async def main():
        s, peer = _pair()
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await s.read()
        assert _io_state(s) == (None, None)  # not half-registered: nobody is recorded waiting
        assert current_kernel().io_waiting == 0
        peer.sendall(b"later")
        assert await s.read() == b"later"
        s.close()
        peer.close()
    run(main)


def test_interrupted_write_before_sending_leaves_the_stream_usable():
    async def main():
        s, peer = _pair()
        filled = 0
        try:
            while True:
                filled += s.socket.send(b"f" * 65536)
        except BlockingIOError:
            pass
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await s.write(b"more")
        assert not s.closed and _io_state(s) == (None, None)
        peer.setblocking(False)
        drained = 0
        while drained < filled:
            try:
                drained += len(peer.recv(1 << 20))
            except BlockingIOError:
                await con.sleep(0.001)
        await s.write(b"more")
        s.close()
        peer.setblocking(True)
        assert recv_all(peer) == b"more"
        peer.close()
    run(main)


def test_interrupted_write_after_sending_part_closes_the_stream():
    async def main():
        s, peer = _pair()
        with pytest.raises(TimeoutError):
            with con.timeout(0.05):
                await s.write(b"p" * (64 << 20))  # far more than the socket buffers hold
        assert s.closed  # the peer could never know where the data stopped
        assert current_kernel().io_waiting == 0
        got = recv_all(peer)
        assert 0 < len(got) < 64 << 20 and set(got) == {ord("p")}
        peer.close()
    run(main)


@pytest.mark.parametrize("addresses", [1, 2], ids=["one-address", "two-addresses"])
def test_interrupted_accept_leaves_the_listener_usable(addresses):
    async def main():
        if addresses == 1:
            listener = await con.tcplisten(con.ipv6addr("::1", 0))
        else:
            listener = await listen_both()
        kernel = current_kernel()
        for _ in range(3):
            with pytest.raises(TimeoutError):
                with con.timeout(0.01):
                    await listener.accept()
            assert kernel.io_waiting == 0
            assert all(kernel.io.get(s.fileno()) is None or kernel.io[s.fileno()].reader is None
                       for s in listener._socks)
        addr = listener.addresses[-1]

        async def client():
            (await con.tcpconnect(addr)).close()

        async def server():
            (await listener.accept()).close()
        await together(server, client)
        listener.close()
    run(main)


def test_interrupted_thread_cannot_read_even_if_data_is_there():
    async def main():
        s, peer = _pair()
        peer.sendall(b"data")

        async def failing():
            await con.sleep(0.01)
            raise KeyError("boom")

        async def reader():
            try:
                await con.sleep(1)
            except con.Interrupted:
                with pytest.raises(con.Interrupted):
                    await s.read()
                raise
        with pytest.raises(KeyError):
            await together(reader, failing)
        assert await s.read() == b"data"  # still there for whoever reads next
        s.close()
        peer.close()
    run(main)


def test_interrupted_thread_cannot_write_even_if_there_is_room():
    async def main():
        s, peer = _pair()

        async def failing():
            await con.sleep(0.01)
            raise KeyError("boom")

        async def writer():
            try:
                await con.sleep(1)
            except con.Interrupted:
                with pytest.raises(con.Interrupted):
                    await s.write(b"never sent")
                raise
        with pytest.raises(KeyError):
            await together(writer, failing)
        await s.write(b"sent")
        assert peer.recv(100) == b"sent"  # and nothing before it
        s.close()
        peer.close()
    run(main)


def test_a_thread_interrupted_elsewhere_does_not_stop_this_ones_io():
    # An interrupted thread anywhere in the process (here: one of another scheduler) sends
    # read@ and write@ the slow way, which must find that this thread is not interrupted.
    from conhook._runtime.threads import Thread, interrupted_threads

    async def main():
        s, peer = _pair()
        peer.sendall(b"in")
        elsewhere = Thread(None, None, None)
        elsewhere.interrupt = "another scheduler's timeout"
        interrupted_threads.add(elsewhere)
        try:
            assert await s.read() == b"in"
            await s.write(b"out")
        finally:
            interrupted_threads.discard(elsewhere)
        assert peer.recv(100) == b"out"
        s.close()
        peer.close()
    run(main)


# -- closing what another thread waits on --------------------------------------------------

def test_closing_a_stream_wakes_its_reader_and_writer():
    async def main():
        s, peer = _pair()
        try:
            while True:
                s.socket.send(b"f" * 65536)
        except BlockingIOError:
            pass
        errors = []

        async def reader():
            with pytest.raises(OSError) as info:
                await s.read()
            errors.append(info.value)

        async def writer():
            with pytest.raises(OSError) as info:
                await s.write(b"x")
            errors.append(info.value)

        async def closer():
            await con.sleep(0.02)
            s.close()
        await together(reader, writer, closer)
        peer.close()
        assert current_kernel().io_waiting == 0
        return errors
    errors = run(main)
    assert len(errors) == 2
    for error in errors:
        assert error.errno == errno.EBADF
        assert "closed by another thread while this one was waiting" in str(error)


@pytest.mark.parametrize("addresses", [1, 2], ids=["one-address", "two-addresses"])
def test_closing_a_listener_wakes_its_acceptor(addresses):
    async def main():
        if addresses == 1:
            listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        else:
            listener = await listen_both()

        async def acceptor():
            with pytest.raises(OSError, match="listener was closed") as info:
                await listener.accept()
            assert info.value.errno == errno.EBADF
            with pytest.raises(OSError, match="closed listener"):
                await listener.accept()

        async def closer():
            await con.sleep(0.02)
            listener.close()
        await together(acceptor, closer)
        assert current_kernel().io_waiting == 0
    run(main)


def test_notify_closing_one_fd_of_a_listener_wakes_its_acceptor():
    # The acceptor waits on both addresses at once; closing one of the fds under it (the
    # documented conhook._runtime.fd_waits.notify_closing) wakes it with EBADF and withdraws it from both.
    from conhook._runtime.fd_waits import notify_closing

    async def main():
        listener = await listen_both()
        kernel = current_kernel()

        async def acceptor():
            with pytest.raises(OSError) as info:
                await listener.accept()
            assert info.value.errno == errno.EBADF

        async def closer():
            await con.sleep(0.02)
            assert kernel.io_waiting == 2  # the acceptor, once per address
            notify_closing(listener._socks[0])
        await together(acceptor, closer)
        assert kernel.io_waiting == 0
        listener.close()
    run(main)


@pytest.mark.parametrize("closing", ["socket.close()", "close() in an OS thread"])
@pytest.mark.parametrize("waiting", [False, True], ids=["idle", "waited-on"])
def test_a_stream_closed_behind_the_kernels_back_leaves_nothing_to_its_fd_number(closing, waiting):
    # The fd is watched (a read waited on it); its socket is closed without the stream's close(),
    # or with close() run by a worker OS thread; the next socket gets the same number.  It must
    # register and wake as any other, and a thread still waiting on the old fd gets EBADF.
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        addr = listener.addresses[0].sockaddr
        old_peer = socket.create_connection(addr)  # noqa: CON201 (a blocking client, on purpose)
        old = await listener.accept()
        fd = old.fileno()
        got, errors = [], []

        async def read_old():
            got.append(await old.read())

        async def send_old():
            await con.idle()
            old_peer.sendall(b"old")
        await together(read_old, send_old)  # the kernel now watches fd for reading

        async def wait_on_old():
            with pytest.raises(OSError) as info:
                await old.read()
            errors.append(info.value.errno)

        async def close_and_reuse():
            await con.idle()  # (wait_on_old parks first)
            client = socket.socket()
            if closing == "socket.close()":
                old.socket.close()
            else:
                await con.to_thread(old.close)
            client.connect(addr)
            new = await listener.accept()
            assert new.fileno() == fd

            async def read_new():
                got.append(await new.read())

            async def send_new():
                await con.idle()
                client.sendall(b"new")
            await together(read_new, send_new)
            new.close()
            client.close()

        with con.timeout(10):  # (a read that is never woken would hang)
            if waiting:
                await together(wait_on_old, close_and_reuse)
            else:
                await close_and_reuse()
        old.close()
        old_peer.close()
        listener.close()
        assert current_kernel().io_waiting == 0
        return got, errors
    got, errors = run(main)
    assert got == [b"old", b"new"]
    assert errors == ([errno.EBADF] if waiting else [])


def test_two_threads_reading_one_stream_is_an_error():
    async def main():
        s, peer = _pair()

        async def reader():
            with pytest.raises(OSError):
                await s.read()

        async def second():
            with pytest.raises(RuntimeError, match="already waiting to read"):
                await s.read()
            s.close()
        await together(reader, second)
        peer.close()
    run(main)
