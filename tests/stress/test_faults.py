"""Faults: misbehaving clients, while a control client measures the echo server's latency.

All at once against the echo sample: clients that reset the connection in the middle of a
write, clients that vanish (their process is killed), clients that half-close and read the
echo, slowloris clients (connect and send nothing), and one client that sends without ever
reading (100 MB under CONHOOK_STRESS=full, 20 MB in CI; backpressure stops it long before).
Meanwhile a control client sends 64 bytes and waits for the echo, again and again.  Bounds:
the control client's p99 latency, the server's memory growth while flooded, and afterwards
no descriptor, OS thread or memory block left behind.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from .helpers import (MB, Server, close_all, connect_many, echo_once, percentile,
                      raise_fd_limit, size)

RESETS = size(100, 1000)
VANISHING = size(100, 1000)
HALF_CLOSERS = size(50, 500)
SLOWLORIS = size(300, 3000)
FLOOD = size(20 * MB, 100 * MB)
DURATION = size(4.0, 20.0)
P99_BOUND = 0.25  # seconds, generous: the machine is shared with the faulty clients
FLOOD_RSS_BOUND = 32 * MB

VANISHER = """
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"half a messa")
    socks.append(s)
print("connected", flush=True)
time.sleep(3600)
"""


async def control(address, stop, latencies):
    reader, writer = await asyncio.open_connection(*address)
    message = b"c" * 64
    while not stop.is_set():
        start = time.perf_counter()
        assert await echo_once(reader, writer, message) == message
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.005)
    writer.close()
    await writer.wait_closed()


async def resetter(address, payload):
    """Connect, write part of a large payload, then reset the connection (RST)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(payload)
    await asyncio.sleep(0.01)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def half_closer(address, payload):
    """Send a payload, shut down writing, read the whole echo; True if it is right."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(payload)
    writer.write_eof()
    echoed = await reader.read()
    writer.close()
    await writer.wait_closed()
    return echoed == payload


async def flooder(address, limit, seconds, rss, peak):
    """Send up to `limit` bytes without reading for `seconds`; the bytes the server took."""
    sock = socket.create_connection(address)
    sock.setblocking(False)
    chunk = b"f" * 65536
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while sent < limit and time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                peak[0] = max(peak[0], rss())
                await asyncio.sleep(0.02)
        peak[0] = max(peak[0], rss())
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return sent


def test_faulty_clients_do_not_stall_or_leak(tmp_path, figure):
    if not raise_fd_limit(SLOWLORIS + RESETS + HALF_CLOSERS + 500):
        import pytest
        pytest.skip("cannot raise the descriptor limit")
    server = Server(tmp_path)
    vanisher = None
    try:
        base_fds, base_rss, base_heap = server.quiet_fds(), server.rss(), server.heap()
        vanisher = subprocess.Popen([sys.executable, "-c", VANISHER, str(server.port), str(VANISHING)],
                                    stdout=subprocess.PIPE, text=True)
        assert vanisher.stdout.readline() == "connected\n"
        latencies = []
        peak = [base_rss]

        async def scenario():
            stop = asyncio.Event()
            watcher = asyncio.ensure_future(control(server.address, stop, latencies))
            slow = await connect_many(server.address, SLOWLORIS)
            flood = asyncio.ensure_future(
                flooder(server.address, FLOOD, DURATION, server.rss, peak))
            payload = os.urandom(256 * 1024)
            await asyncio.gather(*(resetter(server.address, payload) for _ in range(RESETS)))
            os.kill(vanisher.pid, signal.SIGKILL)  # its connections vanish mid-message
            halves = await asyncio.gather(*(half_closer(server.address, payload[:50_000])
                                            for _ in range(HALF_CLOSERS)))
            flooded = await flood
            await asyncio.sleep(0.2)
            stop.set()
            await watcher
            await close_all(slow)
            return halves, flooded
        halves, flooded = asyncio.run(scenario())
        vanisher.wait()
        assert all(halves)
        p99 = percentile(latencies, 99)
        figure("control client echoes", len(latencies))
        figure("control client p99 latency", round(p99 * 1000, 2), "ms", f"<= {P99_BOUND * 1000:.0f} ms")
        figure("bytes the flooder got in before backpressure", round(flooded / MB, 1), "MB",
               f"of {FLOOD // MB} MB tried")
        figure("server memory growth while flooded", round((peak[0] - base_rss) / MB, 1), "MB",
               f"<= {FLOOD_RSS_BOUND // MB} MB")
        assert p99 <= P99_BOUND
        assert flooded < FLOOD  # backpressure: the server stopped reading
        assert peak[0] - base_rss <= FLOOD_RSS_BOUND
        fds = server.settle(base_fds)
        figure("server descriptors after (before)", f"{fds} ({base_fds})", "", "equal")
        assert fds == base_fds
        assert server.threads() == 1
        heap = server.heap()
        figure("server live memory blocks before / after", f"{base_heap[0]:,} / {heap[0]:,}", "",
               "within 200")
        assert abs(heap[0] - base_heap[0]) <= 200
        assert server.proc.poll() is None
    finally:
        if vanisher is not None:
            if vanisher.poll() is None:
                vanisher.kill()
                vanisher.wait()
            vanisher.stdout.close()
        err = server.kill()
    assert "Traceback" not in err
