"""The proposal's echo server (samples/echo.py, verbatim) end to end, in a subprocess.

The sample listens on port 6839; the test runs a copy of it with only the port number changed
(to one that is free), so that it neither collides with a server already running nor needs
anything added to the sample.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import threading

from .helpers import ROOT, SAMPLES, free_port, start_conhook, wait_accepting

SAMPLE = (SAMPLES / "echo.py").read_text()


def test_the_sample_is_the_proposal_verbatim():
    seed = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "seed", "echo_server.py")
    if os.path.exists(seed):
        with open(seed) as f:
            assert f.read() == SAMPLE
    assert SAMPLE.count("6839") == 2


def _client(host, port, payload, results, index, barrier):
    """Connect, send `payload` while reading the echo, half-close, read to the end."""
    try:
        with socket.create_connection((host, port), timeout=60) as sock:
            barrier.wait()
            def send():
                view = memoryview(payload)
                for i in range(0, len(payload), 200_000):
                    sock.sendall(view[i:i + 200_000])
                sock.shutdown(socket.SHUT_WR)
            sender = threading.Thread(target=send)
            sender.start()
            chunks = []
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    break
                chunks.append(data)
            sender.join()
            results[index] = b"".join(chunks) == payload
    except Exception as exc:  # noqa: BLE001 - reported by the assertion below
        results[index] = exc


def _echoing_connections(port, n):
    """n connections over both addresses, each of which has had one echo."""
    socks = []
    for i in range(n):
        sock = socket.create_connection((("::1", "127.0.0.1")[i % 2], port), timeout=30)
        sock.sendall(b"ping %d" % i)
        assert sock.recv(100) == b"ping %d" % i
        socks.append(sock)
    return socks


def _sizes(n):
    """n payload sizes from 1 byte to 1 MiB, spread evenly on a log scale."""
    return [max(1, round(2 ** (20 * i / (n - 1)))) for i in range(n)]


def test_echo_sample_end_to_end(tmp_path):
    port = free_port()
    script = tmp_path / "echo.py"
    script.write_text(SAMPLE.replace("6839", str(port)))
    proc = start_conhook([str(script)], start_new_session=True)
    try:
        wait_accepting("::1", port, proc)
        wait_accepting("127.0.0.1", port, proc)
        # 100 concurrent clients over both addresses, 1 B to 1 MiB each, half-closing.
        rng = random.Random(4)
        sizes = _sizes(100)
        rng.shuffle(sizes)
        payloads = [rng.randbytes(n) for n in sizes]
        results = [None] * 100
        barrier = threading.Barrier(100)
        clients = [threading.Thread(target=_client, args=(("::1", "127.0.0.1")[i % 2], port,
                                                          payloads[i], results, i, barrier))
                   for i in range(100)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(120)
        assert results == [True] * 100

        # Connections open (idle, or with an echo under way) when Ctrl-C comes: each is closed.
        open_ = _echoing_connections(port, 50)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(2) == 0  # the contract: status 0 within 2 seconds
        for sock in open_:
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass  # closed with data unread on its side: a reset is a close too
            sock.close()
        assert proc.stdout.read() == ""  # no traceback, nothing printed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_echo_sample_reports_an_address_in_use(tmp_path):
    port = free_port()
    script = tmp_path / "echo.py"
    script.write_text(SAMPLE.replace("6839", str(port)))
    with socket.create_server(("127.0.0.1", port)):
        proc = start_conhook([str(script)])
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on ipv4addr('127.0.0.1', {port})" in out
    assert str(ROOT / "conhook") + os.sep not in out  # the user's frames only


def test_echo_sample_stops_cleanly_on_sigterm(tmp_path):
    # docker stop, systemd and the --workers supervisor send SIGTERM: under python -m conhook
    # it unwinds the program as Ctrl-C does, so the sample's `except KeyboardInterrupt` holds.
    port = free_port()
    script = tmp_path / "echo.py"
    script.write_text(SAMPLE.replace("6839", str(port)))
    proc = start_conhook([str(script)])
    try:
        wait_accepting("127.0.0.1", port, proc)
        open_ = _echoing_connections(port, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(2) == 0
        for sock in open_:
            assert sock.recv(100) == b""  # every connection closed by its thread's finally
            sock.close()
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
