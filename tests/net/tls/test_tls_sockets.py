"""TLS where users reach for it: tcpconnect@(..., tls=) and tcplisten@(..., tls=,
handshake_timeout=); the handshake runs in the connection's own thread, and clients that never
finish it are dropped while good clients are served."""
from __future__ import annotations

import socket
import ssl

import pytest

import conhook.api as con
from conhook._runtime.prejoin import prejoin

from ..helpers import beside, run


async def tls_listener(certs, **kwargs):
    return await con.tcplisten(con.ipv4addr("127.0.0.1", 0), con.ipv6addr("::1", 0),
                               tls=certs.server_context(), **kwargs)


async def serve(listener, handle):
    """Accept for ever, each connection handled in a thread of its own (``sibling``)."""
    scope = prejoin()
    try:
        while True:
            scope.start(handle, await listener.accept())
    except BaseException as exc:
        if await scope.failed(exc):
            raise
    finally:
        await scope.join()


async def echo_line(stream):
    with stream:
        line = b""
        while not line.endswith(b"\n"):
            line += await stream.read()
        await stream.write(line.upper())


def test_tcpconnect_with_tls_to_a_tls_listener_by_name_and_by_address(certs):
    async def main():
        listener = await tls_listener(certs)
        v4, v6 = listener.addresses

        async def client():
            for target in [("localhost", v4.port), (v4,), (v6,)]:
                stream = await con.tcpconnect(*target, tls=certs.client_context())
                assert stream.version() == "TLSv1.3"  # the handshake is done on return
                assert stream.server_hostname == (target[0] if len(target) == 2 else target[0].host)
                await stream.write(b"hi\n")
                assert await stream.read() == b"HI\n"
                stream.close()
        with listener:
            await beside(lambda: serve(listener, echo_line), client)
    run(main)


def test_tls_true_uses_the_system_store_so_a_private_ca_is_refused(certs):
    async def main():
        listener = await tls_listener(certs)

        async def client():
            with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
                await con.tcpconnect("localhost", listener.addresses[0].port, tls=True)

        async def quiet(stream):
            with stream, pytest.raises(ssl.SSLError):
                await stream.read()
        with listener:
            await beside(lambda: serve(listener, quiet), client)
    run(main)


def test_tcpconnect_checks_the_hostname(certs):
    async def main():
        listener = await tls_listener(certs)

        async def client():
            with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
                await con.tcpconnect(listener.addresses[0], tls=certs.client_context(),
                                     server_hostname="other.example")

        async def quiet(stream):
            with stream, pytest.raises(ssl.SSLError):
                await stream.read()
        with listener:
            await beside(lambda: serve(listener, quiet), client)
    run(main)


def test_tls_argument_is_checked():
    async def main():
        with pytest.raises(TypeError, match="ssl.SSLContext"):
            await con.tcplisten(con.ipv4addr("127.0.0.1", 0), tls=True)
        with pytest.raises(TypeError, match="True .* or an ssl.SSLContext"):
            await con.tcpconnect(con.ipv4addr("127.0.0.1", 9), tls="yes")
    run(main)


def test_accept_does_not_handshake_in_the_accepting_thread(certs):
    async def main():
        listener = await tls_listener(certs)
        with listener, socket.create_connection(("127.0.0.1", listener.addresses[0].port)):  # noqa: CON201
            stream = await listener.accept()  # the client has sent nothing: no wait here
            assert isinstance(stream, con.TLSStream) and stream.server_side
            with pytest.raises(RuntimeError, match="handshake has not happened yet"):
                stream.version()
            stream.close()
    run(main)


def test_slowloris_clients_are_dropped_after_the_handshake_timeout_while_a_good_one_is_served(certs):
    slow_count = 200
    outcomes = []

    async def handle(stream):
        try:
            await echo_line(stream)
            outcomes.append("served")
        except TimeoutError as exc:
            assert stream.closed
            outcomes.append(str(exc))

    async def main():
        listener = await tls_listener(certs, handshake_timeout=0.5)
        port = listener.addresses[0].port
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(slow_count)]  # noqa: CON201 (send nothing)

        async def clients():
            good = await con.tcpconnect("localhost", port, tls=certs.client_context())
            await good.write(b"good\n")
            assert await good.read() == b"GOOD\n"
            good.close()

            def each_is_dropped():
                for sock in slow:
                    sock.settimeout(30)
                    try:
                        assert sock.recv(1) == b""
                    except ConnectionResetError:
                        pass
                    sock.close()
            await con.to_thread(each_is_dropped)
            while len(outcomes) < slow_count + 1:
                await con.sleep(0.01)
        with listener:
            await beside(lambda: serve(listener, handle), clients)

    run(main)
    assert len(outcomes) == slow_count + 1 and outcomes.count("served") == 1
    assert all("did not finish its TLS handshake within 0.5 s" in o for o in outcomes if o != "served")
