"""Runtime benchmark: conhook against asyncio, uvloop, trio, gevent, OS threads and a floor.

Not a test.  Run it with a Python that has uvloop, trio and gevent installed (missing peers
are skipped)::

    python tools/bench_runtime.py            # everything, one run, peers side by side
    python tools/bench_runtime.py --quick    # smaller counts, one round
    python tools/bench_runtime.py --rounds 5 # more rounds on a noisy machine

Three measures, each in a fresh subprocess per peer, best of several repeats:
(a) switch: N threads each yielding in a loop (conhook ``idle``, the peers' cheapest yield),
    nanoseconds per switch;
(b) spawn: start and join 100,000 threads under one prejoining function (TaskGroup, nursery,
    gevent spawn/joinall, OS threads on 10,000), microseconds per thread;
(c) memory: 100,000 threads parked on an event, resident bytes per thread (OS threads on
    10,000).
The floor is a 20-line pure-Python round-robin scheduler (a deque of coroutines, send,
append).  Goals (issue 3): (a) <= 0.5x uvloop and <= 1.5x the floor; (b) <= 0.25x asyncio's
TaskGroup; (c) <= 0.6x asyncio.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PEERS = ["floor", "conhook", "asyncio", "uvloop", "trio", "gevent", "threads"]


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def best(fn, repeats):
    """The best of `repeats` runs, in CPU time of this process: the machines these run on are
    shared, and CPU time is far less disturbed by other load than wall time."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


# -- the floor: a 20-line round-robin scheduler ------------------------------------------------

def floor_scheduler():
    import types
    from collections import deque

    @types.coroutine
    def switch():
        yield

    class Event:
        def __init__(self):
            self.waiters = []

        @types.coroutine
        def wait(self):
            self.waiters.append(current[0])
            yield "park"

        def set(self):
            ready.extend(self.waiters)
            self.waiters.clear()

    ready, current = deque(), [None]

    def run(coros):
        ready.extend(coros)
        while ready:
            coro = current[0] = ready.popleft()
            try:
                if coro.send(None) is None:
                    ready.append(coro)
            except StopIteration:
                pass
    return switch, Event, run


# -- (a) switch ------------------------------------------------------------------------------

def switch_cost(peer, threads, per_thread, repeats):
    n = threads * per_thread
    if peer == "floor":
        switch, _, run = floor_scheduler()

        async def worker():
            for _ in range(per_thread):
                await switch()
        return best(lambda: run([worker() for _ in range(threads)]), repeats) / n
    if peer == "conhook":
        import conhook.api as con
        from conhook._runtime import prejoin as __con__
        idle = con.idle

        async def worker():
            for _ in range(per_thread):
                await idle()

        async def main():
            __con_scope__ = __con__.prejoin()
            try:
                for _ in range(threads):
                    __con_scope__.start(worker)
            except BaseException as __con_exc__:
                if await __con_scope__.failed(__con_exc__):
                    raise
            finally:
                await __con_scope__.join()
        return best(lambda: con.bootstrap(main), repeats) / n
    if peer in ("asyncio", "uvloop"):
        import asyncio
        if peer == "uvloop":
            import uvloop
            new_loop = uvloop.new_event_loop
        else:
            new_loop = asyncio.new_event_loop

        async def worker():
            for _ in range(per_thread):
                await asyncio.sleep(0)

        async def main():
            await asyncio.gather(*[worker() for _ in range(threads)])

        def once():
            loop = new_loop()
            loop.run_until_complete(main())
            loop.close()
        return best(once, repeats) / n
    if peer == "trio":
        import trio

        async def worker():
            for _ in range(per_thread):
                await trio.sleep(0)

        async def main():
            async with trio.open_nursery() as nursery:
                for _ in range(threads):
                    nursery.start_soon(worker)
        return best(lambda: trio.run(main), repeats) / n
    if peer == "gevent":
        import gevent

        def worker():
            for _ in range(per_thread):
                gevent.sleep(0)
        return best(lambda: gevent.joinall([gevent.spawn(worker) for _ in range(threads)]),
                    repeats) / n
    return None


# -- (b) spawn + join ------------------------------------------------------------------------

def spawn_cost(peer, count, repeats):
    if peer == "floor":
        _, _, run = floor_scheduler()

        async def child():
            pass
        return best(lambda: run([child() for _ in range(count)]), repeats) / count
    if peer == "conhook":
        import conhook.api as con
        from conhook._runtime import prejoin as __con__

        async def child():
            pass

        async def main():
            __con_scope__ = __con__.prejoin()
            try:
                for _ in range(count):
                    __con_scope__.start(child)
            except BaseException as __con_exc__:
                if await __con_scope__.failed(__con_exc__):
                    raise
            finally:
                await __con_scope__.join()
        return best(lambda: con.bootstrap(main), repeats) / count
    if peer in ("asyncio", "uvloop"):
        import asyncio
        if peer == "uvloop":
            import uvloop
            new_loop = uvloop.new_event_loop
        else:
            new_loop = asyncio.new_event_loop

        async def child():
            pass

        async def main():
            async with asyncio.TaskGroup() as tg:
                for _ in range(count):
                    tg.create_task(child())

        def once():
            loop = new_loop()
            loop.run_until_complete(main())
            loop.close()
        return best(once, repeats) / count
    if peer == "trio":
        import trio

        async def child():
            pass

        async def main():
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(child)
        return best(lambda: trio.run(main), repeats) / count
    if peer == "gevent":
        import gevent

        def child():
            pass
        return best(lambda: gevent.joinall([gevent.spawn(child) for _ in range(count)]),
                    repeats) / count
    if peer == "threads":
        import threading
        count = max(count // 10, 100)

        def child():
            pass

        def once():
            threads = [threading.Thread(target=child) for _ in range(count)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return best(once, repeats) / count
    return None


# -- (c) memory per parked thread ------------------------------------------------------------

def memory_cost(peer, count):
    gc.collect()
    if peer == "floor":
        _, Event, run = floor_scheduler()
        event = Event()
        result = []

        async def waiter():
            await event.wait()

        async def measure():
            result.append(rss_bytes() - base)
            event.set()
        base = rss_bytes()
        run([waiter() for _ in range(count)] + [measure()])
        return result[0] / count
    if peer == "conhook":
        import conhook.api as con
        from conhook._runtime import prejoin as __con__
        result = []

        async def waiter(event):
            await event.wait()

        async def main():
            event = con.Event()
            base = rss_bytes()
            __con_scope__ = __con__.prejoin()
            try:
                for _ in range(count):
                    __con_scope__.start(waiter, event)
                await con.idle()  # every waiter runs and parks
                result.append(rss_bytes() - base)
                event.set()
            except BaseException as __con_exc__:
                if await __con_scope__.failed(__con_exc__):
                    raise
            finally:
                await __con_scope__.join()
        con.bootstrap(main)
        return result[0] / count
    if peer in ("asyncio", "uvloop"):
        import asyncio
        if peer == "uvloop":
            import uvloop
            new_loop = uvloop.new_event_loop
        else:
            new_loop = asyncio.new_event_loop
        result = []

        async def waiter(event):
            await event.wait()

        async def main():
            event = asyncio.Event()
            base = rss_bytes()
            async with asyncio.TaskGroup() as tg:
                for _ in range(count):
                    tg.create_task(waiter(event))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                result.append(rss_bytes() - base)
                event.set()
        loop = new_loop()
        loop.run_until_complete(main())
        loop.close()
        return result[0] / count
    if peer == "trio":
        import trio
        result = []

        async def waiter(event):
            await event.wait()

        async def main():
            event = trio.Event()
            base = rss_bytes()
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(waiter, event)
                await trio.sleep(0.01)
                result.append(rss_bytes() - base)
                event.set()
        trio.run(main)
        return result[0] / count
    if peer == "gevent":
        import gevent
        import gevent.event
        event = gevent.event.Event()
        base = rss_bytes()
        greenlets = [gevent.spawn(event.wait) for _ in range(count)]
        gevent.sleep(0.01)
        used = rss_bytes() - base
        event.set()
        gevent.joinall(greenlets)
        return used / count
    if peer == "threads":
        import threading
        count = max(count // 10, 100)
        event = threading.Event()
        base = rss_bytes()
        threads = [threading.Thread(target=event.wait) for _ in range(count)]
        for t in threads:
            t.start()
        used = rss_bytes() - base
        event.set()
        for t in threads:
            t.join()
        return used / count
    return None


# -- driver ----------------------------------------------------------------------------------

def one(peer, measure, quick):
    """Run one measure of one peer in this process; print its JSON result."""
    try:
        if measure == "switch":
            value = switch_cost(peer, 100, 500 if quick else 3000, 3 if quick else 5)
        elif measure == "spawn":
            value = spawn_cost(peer, 20_000 if quick else 100_000, 2 if quick else 3)
        else:
            value = memory_cost(peer, 20_000 if quick else 100_000)
    except ImportError:
        value = None
    print(json.dumps(value))


def measure_all(quick, rounds):
    """Each (measure, peer) in a fresh subprocess; `rounds` rounds interleaved across the peers,
    keeping each one's best, so that a burst of load on a shared machine hits all alike."""
    results = {}
    for measure in ("switch", "spawn", "memory"):
        for _ in range(rounds):
            for peer in PEERS:
                args = [sys.executable, __file__, "--one", peer, measure]
                out = subprocess.run(args + (["--quick"] if quick else []),
                                     capture_output=True, text=True, timeout=900)
                try:
                    value = json.loads(out.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    sys.stderr.write(f"{peer} {measure} failed:\n{out.stderr}\n")
                    value = None
                old = results.get((measure, peer))
                results[(measure, peer)] = value if old is None else (
                    old if value is None else min(old, value))
    return results


def report(results):
    rows = [
        ("switch", "(a) switch, ns", 1e9, "{:,.0f}"),
        ("spawn", "(b) spawn+join, us", 1e6, "{:,.2f}"),
        ("memory", "(c) memory per parked thread, B", 1, "{:,.0f}"),
    ]
    head = f"{'':34}" + "".join(f"{p:>10}" for p in PEERS)
    print(f"Python {sys.version.split()[0]} on {os.uname().sysname} {os.uname().machine}, "
          f"{os.cpu_count()} CPUs")
    print(head)
    for key, label, scale, fmt in rows:
        cells = []
        for peer in PEERS:
            v = results.get((key, peer))
            cells.append(f"{fmt.format(v * scale) if v is not None else '-':>10}")
        print(f"{label:34}" + "".join(cells))
    print()
    print("conhook as a ratio of each peer (lower is better):")
    print(head)
    for key, label, _, _ in rows:
        mine = results.get((key, "conhook"))
        cells = []
        for peer in PEERS:
            v = results.get((key, peer))
            cells.append(f"{mine / v:>10.2f}" if mine and v else f"{'-':>10}")
        print(f"{label:34}" + "".join(cells))
    print()

    def ratio(key, peer):
        mine, v = results.get((key, "conhook")), results.get((key, peer))
        return mine / v if mine and v else None

    goals = [
        ("(a) switch <= 0.5x uvloop sleep(0)", ratio("switch", "uvloop"), 0.5),
        ("(a) switch <= 1.5x the floor", ratio("switch", "floor"), 1.5),
        ("(b) spawn+join <= 0.25x asyncio TaskGroup", ratio("spawn", "asyncio"), 0.25),
        ("(c) memory <= 0.6x asyncio", ratio("memory", "asyncio"), 0.6),
    ]
    for text, value, limit in goals:
        verdict = "-" if value is None else ("met" if value <= limit else "MISSED")
        shown = "-" if value is None else f"{value:.2f}"
        print(f"{text:44} {shown:>6}  {verdict}")


def main(argv):
    parser = argparse.ArgumentParser(
        prog="python tools/bench_runtime.py",
        description="conhook's switch, spawn and memory per thread against asyncio, uvloop, trio, "
                    "gevent, OS threads and a floor (docs/benchmarks.md).")
    parser.add_argument("--quick", action="store_true", help="smaller counts, one round")
    parser.add_argument("--rounds", type=int, help="rounds of every measure (default 3, 1 with --quick)")
    parser.add_argument("--one", nargs=2, metavar=("PEER", "MEASURE"), help=argparse.SUPPRESS)  # a subprocess's
    args = parser.parse_args(argv)
    if args.one:
        one(*args.one, args.quick)
        return
    report(measure_all(args.quick, args.rounds or (1 if args.quick else 3)))


if __name__ == "__main__":
    main(sys.argv[1:])
