"""``tcpconnect@`` to one address: the time a connect takes, before and after a change.

Not a test.  Issue 15, item 5: Happy Eyeballs must leave a connect to a single address as
fast as it was.  One process per source tree (the repository's own by default); each makes
``--connects`` connections to a listener on 127.0.0.1 in the same scheduler (accepted and
closed by a sibling thread) for each form of the call, and prints the CPU time (user and
system: the host's other load moves it less than the wall clock) per connect in µs::

    python tools/bench_connect.py                              # this tree
    python tools/bench_connect.py --trees /path/to/before,.    # side by side, ratios

``--callgrind`` counts user-space instructions per connect instead (valgrind's callgrind, two
runs per tree of ``--connects`` and six times as many, differenced so that start-up cancels
out): the work per connect, which the host's load cannot move.

With several trees, the trees take turns within each of ``--repeats`` rounds (slow drift of
the machine spreads over all of them) and each figure is the median of the rounds; the last
column is this figure / the first tree's.  Forms: ``addr`` is ``tcpconnect@(ipv4addr(...))``,
``host`` is ``tcpconnect@('127.0.0.1', port)`` (numeric, no lookup).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, sys, time
import con

def measure(n):
    listener = con.tcplisten@(con.ipv4addr("127.0.0.1", 0))
    addr = listener.addresses[0]
    out = {}

    def drain(total):
        for _ in range(total):
            listener.accept@().close()

    for form, args in (("addr", (addr,)), ("host", ("127.0.0.1", addr.port))):
        for _ in range(50):  # warm-up
            sibling drain@(1)
            con.tcpconnect@(*args).close()
        sibling drain@(n)
        start = time.process_time()
        for _ in range(n):
            con.tcpconnect@(*args).close()
        out[form] = (time.process_time() - start) / n * 1e6
    listener.close()
    return out

print(json.dumps(con.bootstrap(measure, int(sys.argv[1]))))
'''


def run_tree(tree, connects):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), PYTHONDONTWRITEBYTECODE="1")
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        script.write(CHILD)
        script.flush()
        out = subprocess.run([sys.executable, "-m", "conhook", script.name, str(connects)], env=env,
                             capture_output=True, text=True, cwd=tree)
    if out.returncode:
        sys.exit(f"{tree}: the measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def callgrind(tree, connects):
    """User-space instructions per connect in `tree` (both forms, and the accepts beside)."""
    totals = []
    for n in (connects, connects * 6):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), PYTHONDONTWRITEBYTECODE="1")
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "child.py")
            with open(script, "w") as file:
                file.write(CHILD)
            out = os.path.join(tmp, "callgrind.out")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                            "-m", "conhook", script, str(n)], env=env, capture_output=True, check=True, cwd=tree)
            with open(out) as file:
                totals.append(int(next(line for line in file if line.startswith("summary:")).split()[1]))
    return (totals[1] - totals[0]) / (connects * 5 * 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default=ROOT, help="comma-separated source trees (default: this one)")
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead (needs valgrind)")
    args = parser.parse_args()
    trees = args.trees.split(",")
    if args.callgrind:
        for tree in trees:
            print(f"{tree:<40} {callgrind(tree, args.connects // 10 or 1):>9,.0f} instructions per connect")
        return
    rounds = {tree: [] for tree in trees}
    for _ in range(args.repeats):
        for tree in trees:
            rounds[tree].append(run_tree(tree, args.connects))
    medians = {(tree, form): statistics.median(r[form] for r in rounds[tree])
               for tree in trees for form in ("addr", "host")}
    print(f"{'tree':<40} {'form':<5} {'us/connect':>11} {'ratio':>6}")
    for (tree, form), median in medians.items():
        print(f"{tree:<40} {form:<5} {median:>11.1f} {median / medians[trees[0], form]:>6.2f}")


if __name__ == "__main__":
    main()
