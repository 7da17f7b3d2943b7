"""Deep thread chains: how long a failure takes to propagate up a chain of N threads.

Not a test.  Each thread of the chain starts the next as a sibling (a crawler, a pipeline);
the last one raises, and the failure travels up through every prejoin scope to ``bootstrap``.
Printed per depth: the seconds from the ``raise`` to ``bootstrap`` raising it, best of
``--repeats`` runs in this process (issue 12, item 2: linear in the depth, not quadratic)::

    python tools/bench_chain.py                    # depths 1000, 2000, 3000
    python tools/bench_chain.py --depths 3000,10000 --repeats 5
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import conhook  # noqa: E402
from conhook._runtime.prejoin import prepare_namespace  # noqa: E402

PROGRAM = '''
import time
import con

raised_at = []

def leaf():
    con.sleep@(0)
    raised_at.append(time.perf_counter())
    raise KeyError("the end of the chain")

def link(n):
    if n == 0:
        sibling leaf@()
    else:
        sibling link@(n - 1)
'''


def propagation_seconds(namespace, depth):
    namespace["raised_at"].clear()
    gc.collect()
    try:
        namespace["con"].bootstrap(namespace["link"], depth)
    except KeyError:
        return time.perf_counter() - namespace["raised_at"][0]
    raise AssertionError("the chain did not fail")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="1000,2000,3000", help="comma-separated chain depths")
    parser.add_argument("--repeats", type=int, default=3, help="runs per depth; the best is shown")
    args = parser.parse_args()
    namespace = prepare_namespace({"__name__": "bench_chain"})
    exec(conhook.compile_con(PROGRAM, "<bench_chain>"), namespace)
    print(f"Python {sys.version.split()[0]}, conhook {conhook.__version__} ({os.path.dirname(conhook.__file__)})")
    print("depth   propagation (s)   per level (us)", flush=True)
    for depth in (int(d) for d in args.depths.split(",")):
        seconds = min(propagation_seconds(namespace, depth) for _ in range(args.repeats))
        print(f"{depth:>5}   {seconds:>15.3f}   {seconds / depth * 1e6:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
