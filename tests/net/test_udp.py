"""UDP sockets: udpsocket@, sendto@/recvfrom@, send@/recv@ (issue 15, item 4)."""
from __future__ import annotations

import errno
import socket

import pytest

import conhook  # noqa: F401  (import con)
import con
from conhook._network import stream_contract

from .helpers import beside, run, together

HOSTS = [(con.ipv4addr, "127.0.0.1"), (con.ipv6addr, "::1")]


def _free_udp_port(family, host):
    """A UDP port on `host` where nothing is bound (the system just gave it and took it back)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("maker, host", HOSTS, ids=["ipv4", "ipv6"])
def test_a_request_response_server_and_its_clients(maker, host):
    """A server answers each datagram to its sender; a connected client uses send@/recv@, an
    unconnected one sendto@/recvfrom@ and sees the server's address as an address value."""
    async def main():
        server = await con.udpsocket(maker(host, 0))
        where = server.local_address
        assert where.host == host and where.port != 0 and server.peer_address is None

        async def serve():
            while True:
                data, sender = await server.recvfrom()
                await server.sendto(data.upper(), sender)

        async def clients():
            with await con.udpsocket(connect_addr=where) as connected:
                assert connected.peer_address == where
                for word in (b"one", b"two", b"three"):
                    await connected.send(word)
                    assert await connected.recv() == word.upper()
            with await con.udpsocket(maker(host, 0)) as plain:
                await plain.sendto(b"hello", where)
                data, sender = await plain.recvfrom()
                assert (data, sender) == (b"HELLO", where)
                assert type(sender) is type(where)
            return "done"
        assert await beside(serve, clients) == "done"
        server.close()
    run(main)


def test_a_waiting_recvfrom_is_interrupted_and_the_socket_stays_usable():
    async def main():
        with await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as s:
            with pytest.raises(TimeoutError):
                with con.timeout(0.05):
                    await s.recvfrom()
            await s.sendto(b"after", s.local_address)
            assert await s.recvfrom() == (b"after", s.local_address)
    run(main)


def test_every_operation_is_an_interruption_point_even_one_that_could_complete():
    """An interrupted thread that goes on sending sends nothing: sendto@ raises first."""
    async def main():
        with await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as s, \
                await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as peer:
            with pytest.raises(TimeoutError):
                with con.timeout(0.01):
                    try:
                        await s.recvfrom()
                    except con.Interrupted:
                        pass
                    await s.sendto(b"never", peer.local_address)
            with pytest.raises(BlockingIOError):
                peer.socket.recv(10)
    run(main)


@pytest.mark.parametrize("maker, host", HOSTS, ids=["ipv4", "ipv6"])
def test_port_unreachable_is_connection_refused_naming_the_peer(maker, host):
    family = socket.AF_INET if maker is con.ipv4addr else socket.AF_INET6
    nobody = maker(host, _free_udp_port(family, host))

    async def main():
        with await con.udpsocket(connect_addr=nobody) as s:
            await s.send(b"anyone there?")
            with con.timeout(10):  # (the answer comes from this machine, at once)
                with pytest.raises(ConnectionRefusedError) as info:
                    await s.recv()
            return info.value
    exc = run(main)
    assert exc.errno == errno.ECONNREFUSED
    assert f"nothing listens on {nobody!r}" in str(exc) and "ICMP port unreachable" in str(exc)
    assert exc.__suppress_context__


def test_a_fast_sender_cannot_starve_the_others(monkeypatch):
    """Datagrams to itself are there at once, so the loop never waits; the budget makes it
    yield after BUDGET operations in a row (a send and a receive per round)."""
    monkeypatch.setattr(stream_contract, "SLICE", 3600.0)  # the count alone, on a busy host too
    rounds = stream_contract.BUDGET * 2
    log = []

    async def main():
        with await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as s:
            async def looper():
                for _ in range(rounds):
                    await s.sendto(b"z", s.local_address)
                    await s.recvfrom()
                    log.append("r")

            async def spinner():
                while log.count("r") < rounds:
                    log.append("s")
                    await con.idle()
            await together(looper, spinner)
    run(main)
    runs = [len(r) for r in "".join(log).split("s") if r]
    assert max(runs) <= stream_contract.BUDGET // 2 and sum(runs) == rounds
    assert len(runs) >= 3


def test_a_long_datagram_is_cut_to_max_bytes_and_datagrams_stay_apart():
    async def main():
        with await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as s:
            await s.sendto(b"0123456789", s.local_address)
            await s.sendto(b"next", s.local_address)
            assert (await s.recvfrom(4))[0] == b"0123"
            assert await s.recv() == b"next"
            with pytest.raises(ValueError, match="max_bytes >= 1"):
                await s.recv(0)
    run(main)


def test_close_wakes_a_waiting_receiver_and_later_use_says_closed():
    async def main():
        s = await con.udpsocket(con.ipv4addr("127.0.0.1", 0))
        where = s.local_address

        async def receiver():
            with pytest.raises(OSError, match="closed by another thread") as info:
                await s.recvfrom()
            assert info.value.errno == errno.EBADF

        async def closer():
            await con.idle()
            s.close()
            s.close()  # again: nothing
        await together(receiver, closer)
        assert s.closed and s.fileno() == -1 and repr(s) == "<con UDP socket (closed)>"
        for op in (s.recvfrom(), s.recv(), s.send(b"x"), s.sendto(b"x", where)):
            with pytest.raises(OSError, match="closed UDP socket"):
                await op
    run(main)


def test_mistakes_are_named_with_their_remedy():
    async def main():
        with pytest.raises(TypeError, match="needs bind_addr or connect_addr"):
            await con.udpsocket()
        with pytest.raises(TypeError, match=r"ipv4addr\(\) or ipv6addr\(\)"):
            await con.udpsocket(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="one family"):
            await con.udpsocket(con.ipv4addr("127.0.0.1", 0), con.ipv6addr("::1", 9))
        with pytest.raises(OSError, match=r"cannot bind a UDP socket to ipv4addr\('192.0.2.1', 0\)"):
            await con.udpsocket(con.ipv4addr("192.0.2.1", 0))  # (not ours: bind fails, nothing is sent)
        with await con.udpsocket(con.ipv4addr("127.0.0.1", 0)) as s:
            with pytest.raises(ValueError, match="an IPv4 socket"):
                await s.sendto(b"x", con.ipv6addr("::1", 9))
            with pytest.raises(TypeError, match="ipv4addr"):
                await s.sendto(b"x", ("127.0.0.1", 9))
            with pytest.raises(OSError, match="not connected: use sendto") as info:
                await s.send(b"x")
            assert info.value.errno == errno.EDESTADDRREQ
    run(main)


def test_an_unclosed_socket_warns_when_collected():
    async def main():
        s = await con.udpsocket(con.ipv4addr("127.0.0.1", 0))
        fd = s.fileno()
        with pytest.warns(ResourceWarning, match="unclosed <con UDP socket"):
            del s
            import gc
            gc.collect()
        with pytest.raises(OSError):
            socket.socket(fileno=fd).close()  # (the fd is gone)
    run(main)
