"""Hosted-kernel benchmark (issue 14): what running con code as a guest of asyncio costs.

Not a test.  Needs aiohttp and uvloop (a missing one is skipped)::

    python tools/bench_hosted.py            # one run
    python tools/bench_hosted.py --quick    # smaller counts
    python tools/bench_hosted.py --instructions --trees /path/to/before,.   # (a) by callgrind

Two measures, each in a fresh subprocess, best of several repeats:
(a) an aiohttp GET against a local aiohttp server (another process, on uvloop), issued one at a
    time from a con thread through ``con.aio@`` on a hosted kernel, against the same request
    awaited natively by an asyncio Task of the same kind of loop, rounds of the two alternating
    in one process; wall time per request and the client's CPU time per request (on a shared
    machine the CPU time is the steadier of the two).  Goals: aio@ / native <= 1.10 on uvloop, <= 1.20 on asyncio.
(b) a switch: N con threads each calling ``idle@()`` in a loop, hosted on each loop and
    standalone, against N asyncio Tasks each awaiting ``asyncio.sleep(0)`` on the same loop;
    CPU nanoseconds per switch.  Goals: hosted <= 2x standalone, and below the host's own.

``--instructions`` measures (a) by valgrind's callgrind instead: the client's user-space
instructions per request, native and through ``aio@``, for each source tree of ``--trees`` in
one run (two runs each, of 200 requests and of 1,200, differenced so that start-up cancels
out): the work per request, which the machine's other load does not move.  A run's count
depends on its hash seed (dicts' collisions: about +-1,500 instructions per request from
one random seed to the next), so each count is the mean over ``--seeds`` fixed seeds (0, 1,
...; 3 by default), the same for every tree and mode: two trees' difference is exact.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.environ.get("BENCH_HOSTED_TREE") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SERVER = """
import asyncio, sys
from aiohttp import web
try:
    import uvloop
    new_loop = uvloop.new_event_loop
except ImportError:
    new_loop = asyncio.new_event_loop

async def hello(request):
    return web.Response(body=b"x" * 64)

async def main(port):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

with asyncio.Runner(loop_factory=new_loop) as runner:
    runner.run(main(int(sys.argv[1])))
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _new_loop(loop):
    if loop == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    import asyncio
    return asyncio.new_event_loop


# -- (a) aiohttp GET ------------------------------------------------------------------------

def get_cost(loop, port, requests, repeats):
    """{mode: (wall seconds, CPU seconds) per request}, each the best of `repeats` rounds, the
    native and the aio@ rounds alternating in this one process (so both see the same machine)."""
    import asyncio

    import aiohttp

    import conhook.api as con
    url = f"http://127.0.0.1:{port}/"

    async def get(session):
        async with session.get(url) as response:
            return await response.read()

    results = {"native": [], "aio@": []}

    async def native():
        async with aiohttp.ClientSession() as session:
            await get(session)  # warm: the connection is made and kept
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                await get(session)
            results["native"].append((time.perf_counter() - wall, time.process_time() - cpu))

    async def hosted():
        session = aiohttp.ClientSession()
        try:
            await con.aio(get(session))
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                await con.aio(get(session))  # con.aio@(get(session))
            results["aio@"].append((time.perf_counter() - wall, time.process_time() - cpu))
        finally:
            await con.aio(session.close())

    for _ in range(repeats):
        gc.collect()
        with asyncio.Runner(loop_factory=_new_loop(loop)) as runner:
            runner.run(native())
        gc.collect()
        con.bootstrap(hosted, loop=loop)
    return {mode: (min(r[0] for r in runs) / requests, min(r[1] for r in runs) / requests)
            for mode, runs in results.items()}


def get_once(loop, port, requests, mode):
    """One round of `requests` GETs, `mode` "native" or "aio@" (what ``--instructions`` counts)."""
    import asyncio

    import aiohttp

    import conhook.api as con
    url = f"http://127.0.0.1:{port}/"

    async def get(session):
        async with session.get(url) as response:
            return await response.read()

    async def native():
        async with aiohttp.ClientSession() as session:
            for _ in range(requests):
                await get(session)

    async def hosted():
        session = aiohttp.ClientSession()
        try:
            for _ in range(requests):
                await con.aio(get(session))  # con.aio@(get(session))
        finally:
            await con.aio(session.close())

    if mode == "native":
        with asyncio.Runner(loop_factory=_new_loop(loop)) as runner:
            runner.run(native())
    else:
        con.bootstrap(hosted, loop=loop)
    return 0


def instructions(tree, loop, port, mode, seeds, few=200, many=1200):
    """The client's user-space instructions per request in `tree`, by callgrind: the mean over
    `seeds` (each run's PYTHONHASHSEED), of two runs each differenced."""
    import tempfile
    per_request = []
    for seed in range(seeds):
        totals = []
        for n in (few, many):
            env = dict(os.environ, BENCH_HOSTED_TREE=os.path.abspath(tree), PYTHONDONTWRITEBYTECODE="1",
                       PYTHONHASHSEED=str(seed))
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "callgrind.out")
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                                __file__, "--child", json.dumps(["get1", loop, port, n, mode])],
                               env=env, capture_output=True, check=True)
                with open(out) as file:
                    totals.append(int(next(line for line in file if line.startswith("summary:")).split()[1]))
        per_request.append((totals[1] - totals[0]) / (many - few))
    return sum(per_request) / len(per_request)


# -- (b) switch -----------------------------------------------------------------------------

def switch_cost(mode, loop, threads, per_thread, repeats):
    """CPU nanoseconds per switch, best of `repeats`."""
    import asyncio

    import conhook.api as con
    from conhook._runtime import prejoin as __con__
    idle = con.idle

    async def worker():
        for _ in range(per_thread):
            await idle()

    async def main():  # what the compiler emits for a function that starts `threads` siblings
        __con_scope__ = __con__.prejoin()
        try:
            for _ in range(threads):
                __con_scope__.start(worker)
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def task():
        for _ in range(per_thread):
            await asyncio.sleep(0)

    async def tasks():
        await asyncio.gather(*[task() for _ in range(threads)])

    def once():
        if mode == "standalone":
            con.bootstrap(main)
        elif mode == "hosted":
            con.bootstrap(main, loop=loop)
        else:
            with asyncio.Runner(loop_factory=_new_loop(loop)) as runner:
                runner.run(tasks())

    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        once()
        times.append(time.process_time() - start)
    return min(times) / (threads * per_thread) * 1e9


def _in_subprocess(kind, *args):
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps([kind, *args])],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout), None


def _have(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--instructions", action="store_true", help="(a) by callgrind (needs valgrind)")
    parser.add_argument("--trees", default=ROOT, help="with --instructions: comma-separated source trees")
    parser.add_argument("--seeds", type=int, default=3, help="with --instructions: hash seeds to average over")
    args = parser.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        measure = {"get": get_cost, "get1": get_once, "switch": switch_cost}[kind]
        print(json.dumps(measure(*rest)))
        return 0
    loops = ["asyncio"] + (["uvloop"] if _have("uvloop") else [])
    if args.instructions:
        return _instructions(args.trees.split(","), loops, args.seeds)
    requests, repeats = (300, 5) if args.quick else (500, 15)
    threads, per_thread = (100, 200) if args.quick else (100, 1000)
    lines = []
    if _have("aiohttp"):
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
        try:
            server.stdout.readline()
            lines.append(f"(a) aiohttp GET, one at a time, {requests} requests a round, best of {repeats} "
                         f"rounds, native and aio@ rounds alternating")
            lines.append(f"    {'host':8} {'native us':>10} {'aio@ us':>10} {'ratio':>6} {'goal':>6}   "
                         f"{'client CPU: native us':>21} {'aio@ us':>8} {'ratio':>6}")
            for loop in loops:
                costs, why = _in_subprocess("get", loop, port, requests, repeats)
                if costs is None:
                    lines.append(f"    {loop:8} failed: {why}")
                    continue
                native, hosted = costs["native"], costs["aio@"]
                goal = 1.10 if loop == "uvloop" else 1.20
                ratio = hosted[0] / native[0]
                lines.append(f"    {loop:8} {native[0] * 1e6:10.1f} {hosted[0] * 1e6:10.1f} {ratio:6.2f} {goal:6.2f}"
                             f" {'met' if ratio <= goal else 'MISSED':>6}   {native[1] * 1e6:13.1f} "
                             f"{hosted[1] * 1e6:8.1f} {hosted[1] / native[1]:6.2f}")
        finally:
            server.kill()
            server.wait()
    else:
        lines.append("(a) aiohttp GET: skipped, aiohttp is not installed")
    lines.append(f"(b) switch, {threads} threads x {per_thread} switches, CPU ns per switch, best of {repeats}")
    standalone, _ = _in_subprocess("switch", "standalone", None, threads, per_thread, repeats)
    lines.append(f"    standalone conhook                 {standalone:8.0f}")
    for loop in loops:
        hosted, _ = _in_subprocess("switch", "hosted", loop, threads, per_thread, repeats)
        own, _ = _in_subprocess("switch", "own", loop, threads, per_thread, repeats)
        verdict = "met" if hosted <= 2 * standalone and hosted < own else "MISSED"
        lines.append(f"    hosted on {loop:8} {hosted:8.0f}   {loop}'s sleep(0) {own:8.0f}   "
                     f"hosted/standalone {hosted / standalone:4.2f} (goal <= 2), hosted/host {hosted / own:4.2f} "
                     f"(goal < 1)  {verdict}")
    print("\n".join(lines))
    return 0


def _instructions(trees, loops, seeds):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        print(f"(a) aiohttp GET, client instructions per request (callgrind, the mean over {seeds} hash "
              f"seeds), Python {sys.version.split()[0]}")
        print(f"    {'tree':<32} {'host':8} {'native':>9} {'aio@':>9} {'ratio':>6} {'goal':>5}")
        for loop in loops:
            for tree in trees:
                native, hosted = (instructions(tree, loop, port, mode, seeds) for mode in ("native", "aio@"))
                print(f"    {tree:<32} {loop:8} {native:9,.0f} {hosted:9,.0f} {hosted / native:6.3f} "
                      f"{1.10 if loop == 'uvloop' else 1.20:5.2f}", flush=True)
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
