"""User-space instructions per echoed request, counted by valgrind's callgrind: a measure of
how much work each server does per request that, unlike requests per second, the rest of the
machine cannot move.

    python tools/bench_echo_instructions.py [--only NAME,...] [--conns N] [--size BYTES] [--duration S]

Each server of ``bench_echo.py`` in turn runs under ``valgrind --tool=callgrind`` (about fifty
times slower); the load generator warms it up, callgrind's counters are zeroed, the load
generator runs for ``--duration`` seconds, and the counters are dumped. The count covers the
server's own code only: system calls are the same for every server and are not counted.
Needs ``valgrind`` (``callgrind_control`` comes with it). Counts vary by about 1% between runs
(the load generator's pace changes how many events one poll returns).
"""
import argparse
import glob
import json
import re
import shutil
import subprocess
import sys
import tempfile

import bench_echo


def instructions(server, loadgen, conns, size, duration):
    """(instructions per request, requests) of one server under callgrind, or (None, why)."""
    out_dir = tempfile.mkdtemp(prefix="callgrind-")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/out.%p"] + server.argv
    proc, why = bench_echo.start(bench_echo.Server(server.name, argv, pinned=False), None)
    if proc is None:
        return None, why
    try:
        def drive(seconds):
            run = subprocess.run([str(loadgen), "--host", bench_echo.HOST, "--port", str(bench_echo.PORT),
                                  "--conns", str(conns), "--size", str(size), "--duration", str(seconds),
                                  "--warmup", "0"], capture_output=True, text=True, timeout=seconds + 60)
            return json.loads(run.stdout.strip().splitlines()[-1])

        drive(1)  # warm-up: caches, specialised bytecode, buffers
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        result = drive(duration)
        subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], capture_output=True, check=True)
    finally:
        bench_echo.stop(proc)
    if "error" in result or result["errors"] or not result["requests"]:
        return None, f"load generator: {result}"
    for path in glob.glob(f"{out_dir}/out.*"):
        with open(path) as file:
            text = file.read()
        if "Trigger: Client Request: measured" in text or "Trigger: dump measured" in text:
            total = int(re.search(r"^summary: (\d+)", text, re.M).group(1))
            return total / result["requests"], result["requests"]
    return None, "callgrind wrote no dump of the measured run"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="conhook,coro-minimal,asyncio-streams,uvloop-streams,py-epoll",
                        help="comma-separated server names (default: %(default)s)")
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    if shutil.which("callgrind_control") is None:
        sys.exit("bench_echo_instructions: needs valgrind (callgrind_control not found)")
    loadgen = bench_echo.build(bench_echo.TOOLS / "loadgen.c")
    servers = {server.name: server for server in bench_echo.all_servers(sys.executable)}
    names = args.only.split(",")
    unknown = [name for name in names if name not in servers]
    if unknown:
        sys.exit(f"bench_echo_instructions: unknown server(s) {', '.join(unknown)}; known: {', '.join(servers)}")
    print(f"user-space instructions per request, {args.conns} connections, {args.size}-byte messages, "
          f"Python {sys.version.split()[0]}")
    counts = {}
    for name in names:
        count, detail = instructions(servers[name], loadgen, args.conns, args.size, args.duration)
        if count is None:
            print(f"  {name:<18} not measured: {detail}")
            continue
        counts[name] = count
        print(f"  {name:<18} {count:9,.0f}   ({detail:,} requests)", flush=True)
    if "conhook" in counts:
        for name, count in counts.items():
            if name != "conhook":
                print(f"  conhook / {name}: {counts['conhook'] / count:.2f}x the instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
