"""Process benchmark: spawn and wait for 1,000 ``/bin/true``, 50 at a time (issue 16).

Not a test.  One run, peers side by side, each in a fresh subprocess, best of ``--repeats``::

    python tools/bench_processes.py               # conhook, asyncio, trio (if installed)
    python tools/bench_processes.py --repeats 5 --count 2000

Each peer runs `count` children, at most `parallel` at once, each started and waited for with
its own API: ``con.run_process@`` (50 threads taking from a shared counter), asyncio's
``create_subprocess_exec`` + ``wait`` (50 tasks), trio's ``run_process`` (50 tasks in a
nursery).  Printed: seconds per run, processes per second, and each peer's time over
conhook's (above 1.0: conhook is faster).  Goal: conhook >= 1.0x the best peer.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRUE = "/bin/true"

CONHOOK = """
import sys, time
sys.path.insert(0, ROOT)
import conhook.api as con
from conhook._runtime import prejoin as __con__

async def worker(left):
    while left[0]:
        left[0] -= 1
        await con.run_process([TRUE])

async def main():
    left = [COUNT]
    __con_scope__ = __con__.prejoin()   # (the expansion of `sibling worker@(left)` PARALLEL times)
    try:
        for _ in range(PARALLEL):
            __con_scope__.start(worker, left)
    except BaseException as exc:
        if await __con_scope__.failed(exc):
            raise
    finally:
        await __con_scope__.join()

start = time.perf_counter()
con.bootstrap(main)
print(time.perf_counter() - start)
"""

ASYNCIO = """
import asyncio, time

async def worker(left):
    while left[0]:
        left[0] -= 1
        proc = await asyncio.create_subprocess_exec(TRUE)
        await proc.wait()

async def main():
    left = [COUNT]
    await asyncio.gather(*[worker(left) for _ in range(PARALLEL)])

start = time.perf_counter()
asyncio.run(main())
print(time.perf_counter() - start)
"""

TRIO = """
import time, trio

async def worker(left):
    while left[0]:
        left[0] -= 1
        await trio.run_process([TRUE])

async def main():
    left = [COUNT]
    async with trio.open_nursery() as nursery:
        for _ in range(PARALLEL):
            nursery.start_soon(worker, left)

start = time.perf_counter()
trio.run(main)
print(time.perf_counter() - start)
"""

PEERS = {"conhook": CONHOOK, "asyncio": ASYNCIO, "trio": TRIO}


def available(peer):
    if peer != "trio":
        return True
    return subprocess.run([sys.executable, "-c", "import trio"], capture_output=True).returncode == 0


def run_once(peer, count, parallel):
    source = (PEERS[peer].replace("ROOT", repr(ROOT)).replace("TRUE", repr(TRUE))
              .replace("COUNT", str(count)).replace("PARALLEL", str(parallel)))
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results = {}
    for peer in PEERS:
        if not available(peer):
            print(f"{peer:8}  not installed: skipped")
            continue
        results[peer] = min(run_once(peer, args.count, args.parallel) for _ in range(args.repeats))
    base = results["conhook"]
    print(f"{args.count} x {TRUE}, {args.parallel} at a time, best of {args.repeats}, "
          f"Python {sys.version.split()[0]}")
    for peer, seconds in results.items():
        print(f"{peer:8}  {seconds:7.3f} s  {args.count / seconds:8.0f} processes/s  "
              f"peer/conhook {seconds / base:5.2f}x")
    best = min((s for p, s in results.items() if p != "conhook"), default=None)
    if best is not None:
        print(f"goal (conhook >= 1.0x the best peer): {best / base:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
