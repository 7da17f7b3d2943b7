"""The TLS stream against peers written by others, over TCP: OpenSSL's s_server and s_client,
and Python's blocking ssl sockets in an OS thread; a peer that resets mid-handshake."""
from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import threading

import pytest

import conhook.api as con

from ..helpers import free_port, run, together, wait_accepting

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary on PATH")


class OSThread(threading.Thread):
    """A blocking peer in an OS thread; join() re-raises its failure."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.error = fn, None

    def run(self):
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001  (handed to the test by join)
            self.error = exc

    def join(self, timeout=30):
        super().join(timeout)
        assert not self.is_alive(), "the OS-thread peer did not finish"
        if self.error is not None:
            raise self.error


async def wait_for(thread):
    await con.to_thread(thread.join)


# -- Python's blocking ssl sockets ---------------------------------------------------------

def test_client_against_a_python_ssl_server_in_an_os_thread(certs):
    server_sock = socket.create_server(("127.0.0.1", 0))
    port = server_sock.getsockname()[1]
    ctx = certs.server_context()
    seen = {}

    def serve():
        with server_sock, ctx.wrap_socket(server_sock.accept()[0], server_side=True,
                                          suppress_ragged_eofs=False) as conn:
            data = b""
            while not data.endswith(b"\n"):
                data += conn.recv(1024)
            conn.sendall(data.upper())
            seen["after"] = conn.recv(1024)  # b"" only for a close_notify; truncation raises

    async def main():
        peer = OSThread(serve)
        peer.start()
        stream = await con.tls_wrap(await con.tcpconnect("127.0.0.1", port), certs.client_context(),
                                    server_hostname="localhost")
        await stream.write(b"hello python\n")
        assert await stream.read() == b"HELLO PYTHON\n"
        stream.close()  # close_notify goes out at once
        await wait_for(peer)
    run(main)
    assert seen["after"] == b""


def test_server_against_a_python_ssl_client_in_an_os_thread(certs):
    ctx = certs.client_context()
    got = {}

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        port = listener.addresses[0].port

        def client():
            with socket.create_connection(("127.0.0.1", port)) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as conn:
                conn.sendall(b"x" * 100_000)
                conn.sendall(b"\n")
                data = b""
                while len(data) < 100_001:
                    data += conn.recv(65536)
                got["echo"] = data
                got["version"] = conn.version()
                conn.unwrap()  # the whole close_notify exchange

        peer = OSThread(client)
        peer.start()
        with listener:
            stream = await con.tls_wrap(await listener.accept(), certs.server_context(), server_side=True)
            try:
                while True:
                    await stream.write(await stream.read())
            except EOFError:
                pass
            stream.close()
        await wait_for(peer)
    run(main)
    assert got["echo"] == b"x" * 100_000 + b"\n" and got["version"] == "TLSv1.3"


# -- openssl s_server and s_client -----------------------------------------------------------

@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_client_against_openssl_s_server(certs, version):
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-4", "-cert", str(certs.cert_file),
         "-key", str(certs.key_file), "-rev", version, "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_accepting("127.0.0.1", port, server)

        async def main():
            stream = await con.tls_wrap(await con.tcpconnect("127.0.0.1", port),
                                        certs.client_context(), server_hostname="localhost")
            await stream.write(b"hello openssl\n")
            data = b""
            while b"\n" not in data:
                data += await stream.read()
            assert data.strip() == b"hello openssl"[::-1]
            assert stream.version() == {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[version]
            stream.close()
        run(main)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


@needs_openssl
def test_server_against_openssl_s_client(certs):
    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        port = listener.addresses[0].port
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(certs.ca_file), "-verify_return_error", "-verify_hostname", "localhost",
             "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with listener:
                stream = await con.tls_wrap(await listener.accept(), certs.server_context(),
                                            server_side=True)

            async def feed():  # (-quiet ignores the end of stdin: the server ends the session)
                await con.to_thread(client.stdin.write, b"ping from s_client\n")
                await con.to_thread(client.stdin.flush)

            async def echo_a_line():
                with stream:
                    line = b""
                    while not line.endswith(b"\n"):
                        line += await stream.read()
                    await stream.write(line)
            await together(feed, echo_a_line)
            out, err = await con.to_thread(client.communicate, timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert out == b"ping from s_client\n", err
    run(main)


# -- a peer that resets mid-handshake ----------------------------------------------------------

def test_a_peer_that_resets_mid_handshake(certs):
    server_sock = socket.create_server(("127.0.0.1", 0))
    port = server_sock.getsockname()[1]

    def reset_after_client_hello():
        with server_sock:
            conn, _ = server_sock.accept()
            assert conn.recv(5)[0] == 0x16  # a handshake record: the ClientHello
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST

    async def main():
        peer = OSThread(reset_after_client_hello)
        peer.start()
        stream = await con.tls_wrap(await con.tcpconnect("127.0.0.1", port), certs.client_context(),
                                    server_hostname="localhost")
        with pytest.raises(ConnectionResetError):
            await stream.handshake()
        with pytest.raises(con.BrokenStreamError, match="handshake failed.*ConnectionResetError"):
            await stream.write(b"x")
        stream.close()
        await wait_for(peer)
    run(main)


def test_a_peer_that_closes_mid_handshake_is_truncation(certs):
    server_sock = socket.create_server(("127.0.0.1", 0))
    port = server_sock.getsockname()[1]

    def close_after_client_hello():
        with server_sock:
            conn, _ = server_sock.accept()
            header = conn.recv(5, socket.MSG_WAITALL)
            conn.recv(int.from_bytes(header[3:5], "big"), socket.MSG_WAITALL)  # all of the ClientHello
            conn.close()  # (with nothing unread: an end of stream, not a reset)

    async def main():
        peer = OSThread(close_after_client_hello)
        peer.start()
        stream = await con.tls_wrap(await con.tcpconnect("127.0.0.1", port), certs.client_context(),
                                    server_hostname="localhost")
        with pytest.raises(ssl.SSLEOFError, match="without close_notify during the handshake"):
            await stream.handshake()
        stream.close()
        await wait_for(peer)
    run(main)
