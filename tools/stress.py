"""Run the stress and fault suite (tests/stress) at full size and print its figures.

    python tools/stress.py            # issue 6's sizes: 10,000 held connections for 30 s,
                                      # 1,000,000 connections over time, a 100 MB flood, ...
    python tools/stress.py --ci       # the reduced sizes CI runs (a minute or less)
    python tools/stress.py -k faults  # extra arguments go to pytest

It raises its descriptor limit as far as the hard limit allows (the test processes and the
servers they start inherit it) and prints a Markdown table: the rows of docs/reliability.md.
Linux only (the scenarios read /proc).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    ci = "--ci" in argv
    args = [a for a in argv if a != "--ci"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 25_000 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "figures.json")
        env = dict(os.environ, CONHOOK_STRESS_OUT=out)
        if not ci:
            env["CONHOOK_STRESS"] = "full"
        result = subprocess.run([sys.executable, "-m", "pytest", "tests/stress", "-q",
                                 "-p", "no:warnings", *args], cwd=ROOT, env=env)
        if os.path.exists(out):
            with open(out) as f:
                figures = json.load(f)
            print()
            print(f"| scenario | figure | measured | bound | size ({'CI' if ci else 'full'}) |")
            print("|---|---|---|---|---|")
            for fig in figures:
                value = fig["value"]
                shown = f"{value:,}" if isinstance(value, int) else str(value)
                print(f"| {fig['scenario']} | {fig['figure']} | {shown} {fig['unit']} | "
                      f"{fig['bound']} | {fig['size']} |")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
