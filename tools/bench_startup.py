"""Start-up benchmark: a con program against the same program in asyncio (issue 13, item 8).

Not a test.  Whole processes, interleaved, many runs; printed: the median wall time of each
and the ratio of medians (conhook over asyncio; goal <= 1.1 on 3.11-3.13), and the same for
CPU time (user + system), which a machine shared with other work disturbs less::

    python tools/bench_startup.py                               # this checkout, this Python
    python tools/bench_startup.py --runs 60 --python /work/v312/bin/python --python /work/v313/bin/python
    python tools/bench_startup.py --tree before=/path/to/old/checkout --tree after=.

The con program is ``python -m conhook hello.py``: one ``con.sleep@(0)`` and a print, its cache
warm (one run first, not counted).  The peer is the same program with ``asyncio.run`` and
``await asyncio.sleep(0)``, run by ``python``.  Each ``--tree`` is a conhook checkout put first
on ``PYTHONPATH`` (the default: the one this file is in), so that two versions of conhook are
measured in one run, on one machine state.  Each Python must find ``bytecode``: a venv's, or
``--path`` naming a site-packages directory for an interpreter outside one (its ``.pth`` files
are not run: a development install's import finder, which costs both programs alike, stays out).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CON = """\
import con

def main():
    con.sleep@(0)
    print("hello")

con.bootstrap(main)
"""

ASYNCIO = """\
import asyncio

async def main():
    await asyncio.sleep(0)
    print("hello")

asyncio.run(main())
"""


def wall(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """The process's wall time and CPU time (user + system), in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or done.stdout != b"hello\n":
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr.decode()}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs of each program (default 40)")
    parser.add_argument("--python", action="append", help="an interpreter (repeatable; default this one)")
    parser.add_argument("--tree", action="append", metavar="LABEL=PATH",
                        help="a conhook checkout to measure (repeatable; default this one)")
    parser.add_argument("--no-site", action="store_true", help="run both programs with -S (no site "
                        "module: what the environment's .pth files import is left out of both)")
    parser.add_argument("--path", default="", help="directories put on PYTHONPATH after the tree, "
                        "for both programs (where ``bytecode`` is, for an interpreter outside a venv)")
    options = parser.parse_args()
    pythons = options.python or [sys.executable]
    trees = [tree.partition("=")[::2] for tree in options.tree or [f"conhook={ROOT}"]]
    with tempfile.TemporaryDirectory() as directory:
        for name, text in (("hello.py", CON), ("hello_asyncio.py", ASYNCIO)):
            with open(os.path.join(directory, name), "w", encoding="utf-8") as file:
                file.write(text)
        for python in pythons:
            measure([python, "-S"] if options.no_site else [python], trees, options.path, options.runs,
                    directory)


def measure(python: list[str], trees: list[tuple[str, str]], path: str, runs: int, directory: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    peers = {"asyncio": ([*python, "hello_asyncio.py"], dict(base, PYTHONPATH=path))}
    for label, tree in trees:
        env = dict(base, PYTHONPATH=os.pathsep.join(filter(None, [os.path.abspath(tree), path])))
        peers[label] = ([*python, "-m", "conhook", "hello.py"], env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in peers}
    for name, (argv, env) in peers.items():  # warm every cache (not counted)
        wall(argv, env, directory)
    for round_ in range(runs):
        order = list(peers.items())
        if round_ % 2:
            order.reverse()
        for name, (argv, env) in order:
            times[name].append(wall(argv, env, directory))
    version = subprocess.run([*python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    medians = {name: [statistics.median(column) for column in zip(*samples)] for name, samples in times.items()}
    wall_0, cpu_0 = medians["asyncio"]
    print(f"Python {version} ({' '.join(python)}), {runs} runs each, medians (wall; CPU, user + system):")
    for name, (wall_time, cpu) in medians.items():
        print(f"  {name:<12} {wall_time * 1000:7.1f} ms {wall_time / wall_0:5.2f}x asyncio;"
              f"   {cpu * 1000:7.1f} ms {cpu / cpu_0:5.2f}x")


if __name__ == "__main__":
    main()
