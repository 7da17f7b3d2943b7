"""Ctrl-C under load: the echo server exits within 2 s, every ``finally`` ran, no descriptor open.

The server is the echo sample with two counters added (connections started, ``finally`` blocks
run) and, after ``bootstrap`` has raised KeyboardInterrupt, a look at its own descriptors.
Load: 500 connections (5,000 under CONHOOK_STRESS=full) echoing as fast as they can.
"""
from __future__ import annotations

import asyncio
import re

import pytest

from .helpers import Server, connect_many, echo_once, raise_fd_limit, size

CONNECTIONS = size(500, 5000)
EXIT_BOUND = 2.0  # seconds, from SIGINT to the process's exit (issue 6)

COUNTED = """\
import os
from con import bootstrap, tcplisten, ipv6addr, ipv4addr

started = finished = 0

def main():
    main_s = tcplisten@(ipv6addr('::1', 6839), ipv4addr('127.0.0.1', 6839))
    while 1:
        sibling echo@(main_s.accept@())

def echo(s):
    global started, finished
    started += 1
    try:
        try:
            while 1:
                s.write@(s.read@())
        except (EOFError, IOError):
            pass
    finally:
        s.close()
        finished += 1

if __name__ == '__main__':
    before = set(os.listdir('/proc/self/fd'))
    try:
        bootstrap(main)
    except KeyboardInterrupt:
        pass
    after = set(os.listdir('/proc/self/fd'))
    print(f"started={started} finished={finished} left_open={sorted(after - before)}")
"""


def test_ctrl_c_under_load(tmp_path, figure):
    if not raise_fd_limit(CONNECTIONS + 200):
        pytest.skip("cannot raise the descriptor limit")
    server = Server(tmp_path, COUNTED)
    try:
        async def load_then_interrupt():
            connections = await connect_many(server.address, CONNECTIONS)
            echoes = [0]
            stop = asyncio.Event()

            async def hammer(reader, writer):
                try:
                    while not stop.is_set():
                        await echo_once(reader, writer, b"x" * 64)
                        echoes[0] += 1
                except (OSError, asyncio.IncompleteReadError):
                    pass  # the server went away: expected once it is interrupted
            tasks = [asyncio.ensure_future(hammer(r, w)) for r, w in connections]
            await asyncio.sleep(1.0)
            under_load = echoes[0]
            exited = await asyncio.get_running_loop().run_in_executor(None, server.interrupt)
            stop.set()
            await asyncio.gather(*tasks)
            for _, writer in connections:
                writer.close()
            return under_load, exited
        under_load, (seconds, out, err) = asyncio.run(load_then_interrupt())
        figure("echoes in the second before Ctrl-C", under_load, f"over {CONNECTIONS} connections")
        figure("time from SIGINT to exit", round(seconds, 3), "s", f"<= {EXIT_BOUND} s")
        counts = re.fullmatch(r"started=(\d+) finished=(\d+) left_open=(.*)\n", out)
        assert counts, (out, err)
        started, finished, left_open = int(counts[1]), int(counts[2]), counts[3]
        figure("connections started / finally blocks run", f"{started} / {finished}", "",
               "equal")
        figure("descriptors left open after bootstrap", left_open, "", "[]")
        assert under_load > 0
        assert started >= CONNECTIONS and finished == started
        assert left_open == "[]"
        assert seconds <= EXIT_BOUND
        assert server.proc.returncode == 0
        assert "Traceback" not in err
    finally:
        server.kill()
