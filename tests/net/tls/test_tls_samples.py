"""The TLS samples end to end in subprocesses: samples/echo_tls.py (the proposal's echo loop,
over TLS) against Python's ssl client and curl, and samples/https_get.py against a local HTTPS
server; certificates made by the tests."""
from __future__ import annotations

import http.server
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from ..helpers import ROOT, SAMPLES, free_port, start_conhook, wait_accepting


@pytest.fixture
def echo_tls(certs):
    port = free_port()
    proc = start_conhook([str(SAMPLES / "echo_tls.py"), str(certs.cert_file), str(certs.key_file),
                          str(port)])
    try:
        wait_accepting("127.0.0.1", port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert proc.returncode == 0, out


def test_echo_tls_keeps_the_proposals_loop():
    echo = (SAMPLES / "echo.py").read_text()
    tls = (SAMPLES / "echo_tls.py").read_text()
    loop = echo[echo.index("def echo(s):"):echo.index("if __name__")]
    assert loop in tls


def test_echo_tls_with_pythons_ssl_client(certs, echo_tls):
    ctx = certs.client_context()
    payload = os.urandom(300_000)
    for host in ("127.0.0.1", "::1"):
        with socket.create_connection((host, echo_tls), timeout=30) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            assert _echoed_both_ways_at_once(conn, payload) == payload


def _echoed_both_ways_at_once(conn, payload, timeout=30):
    """Send `payload` while reading the echo, in one OS thread: an SSLSocket must not be used by
    two threads at once (a sender thread's SSL_write beside this one's SSL_read made OpenSSL
    return EAGAIN to the reader as BlockingIOError, once in a CI run)."""
    conn.setblocking(False)
    deadline = time.monotonic() + timeout
    sent, got = 0, bytearray()
    while len(got) < len(payload):
        if time.monotonic() > deadline:
            raise AssertionError(f"echo stalled: sent {sent}, got {len(got)} of {len(payload)} bytes")
        readable, writable, _ = select.select([conn], [conn] if sent < len(payload) else [], [], 1.0)
        if writable:
            try:
                sent += conn.send(payload[sent:sent + (1 << 16)])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if readable or conn.pending():
            try:
                got += conn.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
    return bytes(got)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_echo_tls_with_curl(certs, echo_tls):
    # The echo returns curl's request; made of a method 'HTTP/1.1' and a target '200', it reads
    # back as a status line, and Content-Length: 0 ends the response without a close.
    out = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "30", "--cacert", str(certs.ca_file),
         "-X", "HTTP/1.1", "--request-target", "200", "-H", "Content-Length: 0",
         "-H", "X-Echoed: over-tls", "-D", "-", "-o", os.devnull,
         f"https://localhost:{echo_tls}/"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HTTP/1.1 200 HTTP/1.1\n")  # (text mode: \r\n read as \n)
    assert "X-Echoed: over-tls" in out.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_refuses_the_echo_without_the_ca(echo_tls):
    out = subprocess.run(["curl", "--silent", "--max-time", "30", f"https://localhost:{echo_tls}/"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 60  # curl: peer certificate cannot be authenticated


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"page at {self.path} for {self.headers['Host']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_https_get_against_a_local_https_server(certs):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.socket = certs.server_context().wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT), SSL_CERT_FILE=str(certs.ca_file))
        run = [sys.executable, "-m", "conhook", str(SAMPLES / "https_get.py")]
        ok = subprocess.run(run + [f"https://localhost:{port}/hello?x=1"], cwd=ROOT, env=env,
                            capture_output=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == f"page at /hello?x=1 for localhost:{port}\n".encode()
        assert ok.stderr.decode().strip() == "HTTP/1.0 200 OK"
        untrusted = subprocess.run(run + [f"https://localhost:{port}/"], cwd=ROOT,
                                   env=dict(env, SSL_CERT_FILE=os.devnull), capture_output=True,
                                   timeout=60)
        assert untrusted.returncode != 0
        assert b"SSLCertVerificationError" in untrusted.stderr
    finally:
        server.shutdown()
        server.server_close()
