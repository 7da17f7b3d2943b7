"""Load: many concurrent connections to the echo sample, held with traffic, then all closed.

Issue 6: 10,000 connections held for 30 s (CONHOOK_STRESS=full); CI: 1,000 for 3 s.  No
error; every echo is right; after closing, the server's descriptors are back to where they
were and its memory comes back down (twice in a row, so a leak would show as growth).
"""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from .helpers import MB, Server, close_all, connect_many, echo_once, raise_fd_limit, size

CONNECTIONS = size(1000, 10_000)
HOLD = size(3.0, 30.0)


async def hold_with_traffic(address, n, seconds):
    """Open n connections; each echoes a 64-byte message about every 0.5 s until `seconds`
    have passed; close them all.  The number of echoes."""
    connections = await connect_many(address, n)
    deadline = time.monotonic() + seconds
    counts = [0] * n

    async def talk(i, reader, writer):
        message = (b"%08d" % i) * 8
        while time.monotonic() < deadline:
            assert await echo_once(reader, writer, message) == message
            counts[i] += 1
            await asyncio.sleep(random.uniform(0.25, 0.75))
    await asyncio.gather(*(talk(i, r, w) for i, (r, w) in enumerate(connections)))
    return connections, sum(counts)


def test_many_connections_held_with_traffic_then_closed(tmp_path, figure):
    if not raise_fd_limit(CONNECTIONS + 200):
        pytest.skip(f"cannot raise the descriptor limit to {CONNECTIONS + 200}")
    server = Server(tmp_path)
    try:
        asyncio.run(_warm_up(server.address))
        base_fds, base_rss = server.quiet_fds(), server.rss()
        afters = []
        for round_ in range(2):
            peak = [0, 0]

            async def scenario():
                async def sample():
                    while True:
                        peak[0] = max(peak[0], server.rss())
                        peak[1] = max(peak[1], server.fds())
                        await asyncio.sleep(0.2)
                sampler = asyncio.ensure_future(sample())
                try:
                    connections, echoes = await hold_with_traffic(server.address, CONNECTIONS, HOLD)
                    peak[1] = max(peak[1], server.fds())
                    peak[0] = max(peak[0], server.rss())
                    await close_all(connections)
                    return echoes
                finally:
                    sampler.cancel()
            echoes = asyncio.run(scenario())
            assert echoes >= CONNECTIONS
            assert peak[1] >= base_fds + CONNECTIONS  # they really were all open at once
            assert server.settle(base_fds) == base_fds  # every descriptor closed
            afters.append(server.rss())
            if round_ == 0:
                figure("connections held at once", CONNECTIONS, "", f"{CONNECTIONS:,}")
                figure("echoes while held", echoes, f"in {HOLD:.0f} s")
                figure("server memory per connection at peak",
                       round((peak[0] - base_rss) / CONNECTIONS), "bytes")
        assert server.threads() == 1  # one OS thread: no worker left behind
        figure("server memory after closing, above baseline (round 1, round 2)",
               f"{(afters[0] - base_rss) / MB:.1f} MB, {(afters[1] - base_rss) / MB:.1f} MB", "",
               "round 2 <= round 1 + 2 MB; <= baseline + 50% of peak growth")
        peak_growth = peak[0] - base_rss
        assert afters[1] <= afters[0] + 2 * MB  # no growth from one round to the next
        assert afters[1] - base_rss <= 0.5 * peak_growth + 2 * MB
        assert server.proc.poll() is None
    finally:
        err = server.kill()
    assert err == ""


async def _warm_up(address):
    connections = await connect_many(address, 10)
    for reader, writer in connections:
        assert await echo_once(reader, writer, b"warm") == b"warm"
    await close_all(connections)
