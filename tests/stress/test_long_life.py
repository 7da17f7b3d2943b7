"""Long life: many short connections over time to one echo server; its memory stays flat.

Issue 6: 1,000,000 connections (CONHOOK_STRESS=full); CI: 20,000.  50 clients at a time each
connect, echo 64 bytes, close, again.  The server's memory is sampled as it goes: from the
first quarter on (once its allocator has warmed up) it may not grow by more than 2 MB; at the
end its descriptors, OS threads and live memory blocks are what they were.
"""
from __future__ import annotations

import asyncio
import time

from .helpers import MB, Server, size

TOTAL = size(20_000, 1_000_000)
CONCURRENCY = 50
GROWTH_BOUND = 2 * MB


async def churn(address, total, on_progress):
    done = [0]

    async def client():
        message = b"L" * 64
        while done[0] < total:
            done[0] += 1
            reader, writer = await asyncio.open_connection(*address)
            writer.write(message)
            assert await reader.readexactly(64) == message
            writer.close()
            await writer.wait_closed()
            if done[0] % 1000 == 0:
                on_progress(done[0])
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return done[0]


def test_many_connections_over_time_memory_flat(tmp_path, figure):
    server = Server(tmp_path)
    try:
        base_fds, base_heap = server.quiet_fds(), server.heap()
        samples = []
        start = time.monotonic()
        made = asyncio.run(churn(server.address, TOTAL, lambda n: samples.append((n, server.rss()))))
        seconds = time.monotonic() - start
        assert made >= TOTAL
        warm = [rss for n, rss in samples if n >= TOTAL // 4]
        growth = max(warm) - warm[0]
        figure("connections", made, f"in {seconds:.1f} s ({made / seconds:,.0f}/s)")
        figure("server memory growth after the first quarter", round(growth / MB, 2), "MB",
               f"<= {GROWTH_BOUND // MB} MB")
        figure("server memory at the end", round(samples[-1][1] / MB, 1), "MB")
        assert growth <= GROWTH_BOUND
        assert server.settle(base_fds) == base_fds
        heap = server.heap()
        figure("server live memory blocks before / after", f"{base_heap[0]:,} / {heap[0]:,}", "",
               "within 200")
        assert abs(heap[0] - base_heap[0]) <= 200
        assert server.threads() == 1
    finally:
        err = server.kill()
    assert "Traceback" not in err
