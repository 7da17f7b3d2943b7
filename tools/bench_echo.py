"""Echo-server benchmark of issue 4: conhook's sample and its peers in one run, side by side, as ratios.

    python tools/bench_echo.py [--quick] [--only NAME,...] [--runs 1c,10c,100c,bulk] [--duration S]
                               [--warmup S] [--repeats N] [--json FILE] [--quiet-wait S]

Run it with the interpreter whose environment holds the peers (tools/README.md says how to make one);
every Python server runs under that same interpreter. It installs nothing. Each server in turn is started
on port 6839 (the sample's port), pinned to one CPU while the load generator (tools/loadgen.c, built here
with `cc -O2`) runs on another; once it accepts, the load generator drives it with 1, 10 and 100
connections and 64-byte messages, then 10 connections and 16 KiB messages. Servers take turns within
each round, so slow drift of the machine spreads over all of them; every cell is the median of the rounds.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
BUILD = TOOLS / "build"
PEERS = TOOLS / "echo_peers"
HOST, PORT = "127.0.0.1", 6839
START_TIMEOUT = 15  # seconds for a server to accept its first connection (conhook may fill its cache)
QUIET = 0.10        # --quiet-wait: the share of the machine's CPU time that others may use

# (column key, connections, message bytes)
RUNS = [("1c", 1, 64), ("10c", 10, 64), ("100c", 100, 64), ("bulk", 10, 16384)]


@dataclass
class Server:
    name: str
    argv: list
    pinned: bool = True      # False: free to use every CPU (several workers)
    peer: bool = True        # a Python peer: counts for the "best peer" goal
    note: str = ""


def all_servers(python):
    def peer(name, file):
        return Server(name, [python, str(PEERS / file), "--port", str(PORT)])

    return [
        Server("conhook", [python, "-m", "conhook", "samples/echo.py"], peer=False),
        Server("conhook-w2", [python, "-m", "conhook", "--workers", "2", "samples/echo.py"],
               pinned=False, peer=False, note="two workers, not pinned: they share the CPUs with the load generator"),
        peer("asyncio-streams", "asyncio_streams.py"),
        peer("asyncio-protocols", "asyncio_protocols.py"),
        peer("uvloop-streams", "uvloop_streams.py"),
        peer("uvloop-protocols", "uvloop_protocols.py"),
        peer("trio", "trio_echo.py"),
        peer("gevent", "gevent_echo.py"),
        peer("threads", "threads_echo.py"),
        peer("py-epoll", "py_epoll.py"),
        Server("coro-minimal", [python, str(PEERS / "coro_minimal.py"), "--port", str(PORT)], peer=False,
               note="not a peer: the floor of conhook's design, a bare coroutine-per-connection scheduler"),
        Server("c-epoll", [str(BUILD / "c_epoll"), "--port", str(PORT)], peer=False,
               note="C reference: what the machine and the load generator can do"),
    ]


def build(source, libs=()):
    """Compile a C tool into tools/build/ unless the binary is newer than its source and the
    headers of its own folder that it includes (loadgen_common.h)."""
    exe = BUILD / source.stem
    headers = re.findall(r'^#include "([^"]+)"', source.read_text(), re.MULTILINE)
    newest = max(path.stat().st_mtime for path in [source, *(source.parent / name for name in headers)])
    if not exe.exists() or exe.stat().st_mtime < newest:
        BUILD.mkdir(exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-o", str(exe), str(source), *libs], check=True)
    return exe


def cpu_placement():
    """(server CPU, load generator CPU, explanation); the CPUs are None when pinning is not possible."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, f"not pinned: only {len(cpus)} CPU available"
    if not shutil.which("taskset"):
        return None, None, "not pinned: no taskset on PATH"
    server, client = str(cpus[0]), str(cpus[1])
    if subprocess.run(["taskset", "-c", server, "true"], capture_output=True).returncode != 0:
        return None, None, "not pinned: taskset is not allowed here"
    return server, client, f"server on CPU {server}, load generator on CPU {client} (taskset)"


def pin(cpu, argv):
    return ["taskset", "-c", cpu, *argv] if cpu is not None else argv


def accepts():
    try:
        socket.create_connection((HOST, PORT), timeout=0.5).close()
        return True
    except OSError:
        return False


def start(server, cpu):
    """Start a server and wait until it accepts: (process, None), or (None, why it is not available)."""
    if accepts():
        sys.exit(f"bench_echo: something already listens on {HOST}:{PORT}; stop it first")
    log = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(pin(cpu if server.pinned else None, server.argv), cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as e:
        return None, str(e)
    deadline = time.monotonic() + START_TIMEOUT
    while not accepts():
        if proc.poll() is not None:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            return None, f"exited with status {proc.returncode}: {lines[-1] if lines else 'no output'}"
        if time.monotonic() > deadline:
            stop(proc)
            return None, f"did not accept within {START_TIMEOUT} s"
        time.sleep(0.05)
    time.sleep(0.3)  # let every worker of a multi-worker server get to listening
    return proc, None


def stop(proc):
    """SIGINT to the server's process group, as Ctrl-C would; 0, the exit status, or what went wrong."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        status = proc.wait(5)
    except subprocess.TimeoutExpired:
        status = "still running 5 s after SIGINT; killed"
    deadline = time.monotonic() + 2
    while group_alive(proc.pid) and time.monotonic() < deadline:  # workers may take a moment longer
        time.sleep(0.05)
    if group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        if status == 0:
            status = "left processes running after SIGINT; killed"
    proc.wait()
    return status


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def load(loadgen, cpu, conns, size, duration, warmup):
    """One load generator run: its JSON result, or None when the run failed."""
    argv = pin(cpu, [str(loadgen), "--host", HOST, "--port", str(PORT), "--conns", str(conns),
                     "--size", str(size), "--duration", str(duration), "--warmup", str(warmup)])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 30).stdout
        result = json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return None if "error" in result or result["errors"] else result


def cpu_ticks():
    """(busy, total) clock ticks of the whole machine so far, from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0, 0
    # user, nice, system and steal; not idle or iowait, nor irq and softirq (loopback TCP is our own there)
    return fields[0] + fields[1] + fields[2] + fields[7], sum(fields)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def foreign_load(before, after, cpu_before, cpu_after):
    """Share of the machine's CPU time used by anything other than this benchmark's own processes."""
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return None
    ours = (cpu_after - cpu_before) * os.sysconf("SC_CLK_TCK")
    return max(0.0, (busy - ours) / total)


def wait_quiet(limit):
    """Wait up to `limit` seconds until other processes use under QUIET of the machine (1 s samples)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_ticks()
        time.sleep(1)
        after = cpu_ticks()
        if after[1] == before[1] or (after[0] - before[0]) / (after[1] - before[1]) < QUIET:
            return


NOT_RUN = object()  # the median of a run that --runs left out


def median(results, key):
    """The median of `key` over a run's results; NOT_RUN when there is no such run (None)."""
    if results is None:
        return NOT_RUN
    values = [r[key] for r in results if r is not None]
    return statistics.median(values) if values else None


def fmt(value, spec):
    if value is NOT_RUN:
        return "—"
    return "err" if value is None else format(value, spec)


def ratio(a, b):
    if a is NOT_RUN or b is NOT_RUN:
        return NOT_RUN
    return a / b if a and b else None


def table(servers, medians, missing):
    head = ["server", "1 conn req/s", "10 conns req/s", "100 conns req/s", "p50 µs @100", "p99 µs @100",
            "bulk MB/s", "conhook/peer @100", "conhook/peer bulk", "other"]
    ours = medians.get("conhook", {})
    rows = []
    for s in servers:
        if s.name in missing:
            rows.append([s.name, "not available"] + ["—"] * (len(head) - 2))
            continue
        m = medians[s.name]
        rows.append([s.name, fmt(m["1c"], ",.0f"), fmt(m["10c"], ",.0f"), fmt(m["100c"], ",.0f"),
                     fmt(m["p50"], ".0f"), fmt(m["p99"], ".0f"), fmt(m["bulk"], ",.0f"),
                     fmt(ratio(ours.get("100c"), m["100c"]), ".2f").replace("err", "—"),
                     fmt(ratio(ours.get("bulk"), m["bulk"]), ".2f").replace("err", "—"),
                     "—" if m["other"] is None else f"{m['other']:.0%}"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *map(line, rows)])


def goals(servers, medians, missing):
    """Issue 4's goals as ratios of this run's medians."""
    ours = medians.get("conhook")
    peers = [s.name for s in servers if s.peer and s.name not in missing
             and medians[s.name]["bulk"] not in (None, NOT_RUN)]
    best = max(peers, key=lambda n: medians[n]["bulk"], default=None)
    checks = [("100 conns, 64 B", "100c", "uvloop-streams", 1.0),
              ("100 conns, 64 B", "100c", "asyncio-streams", 1.5),
              ("100 conns, 64 B", "100c", "py-epoll", 0.85),
              ("bulk 16 KiB", "bulk", best, 0.9)]
    out = ["Goals of issue 4 (conhook / peer, medians of this run):"]
    for what, key, peer, goal in checks:
        label = f"  {what}: conhook / {peer or 'best peer'}" + (" (best peer)" if key == "bulk" and peer else "")
        if ours is None:
            verdict = "n/a: conhook not available"
        elif ours[key] is NOT_RUN:
            verdict = "n/a: not run (--runs)"
        elif peer not in medians or medians[peer][key] is None:
            verdict = f"n/a: {peer or 'no peer'} not measured"
        elif ours[key] is None:
            verdict = "n/a: conhook's runs failed"
        else:
            r = ours[key] / medians[peer][key]
            verdict = f"{r:.2f}  goal >= {goal:.2f}  {'met' if r >= goal else 'MISSED'}"
        out.append(f"{label:<58} {verdict}")
    floor = medians.get("coro-minimal")
    if ours and floor:
        out.append(f"  the design's floor: conhook / coro-minimal = {fmt(ratio(ours['100c'], floor['100c']), '.2f')} "
                   f"@100 conns, {fmt(ratio(ours['bulk'], floor['bulk']), '.2f')} bulk; coro-minimal / py-epoll = "
                   f"{fmt(ratio(floor['100c'], medians.get('py-epoll', {}).get('100c', NOT_RUN)), '.2f')} @100 conns")
    two = medians.get("conhook-w2")
    if ours and two:
        out.append(f"  second worker: conhook-w2 / conhook = {fmt(ratio(two['100c'], ours['100c']), '.2f')} "
                   f"@100 conns, {fmt(ratio(two['bulk'], ours['bulk']), '.2f')} bulk")
    return "\n".join(out)


def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return (f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()} ({sys.executable})")


@dataclass
class Outcome:
    """Everything one benchmark measured, per server name."""
    raw: dict        # name -> run key -> [load generator result, or None for a failed run], one per round
    other: dict      # name -> [share of CPU time that other processes took during each turn]
    missing: dict    # name -> why it is not available
    notes: dict      # name -> what went wrong when stopping it


def measure(servers, rounds, duration, warmup, quiet_wait, runs=RUNS):
    loadgen = build(TOOLS / "loadgen.c")
    build(PEERS / "c_epoll.c")
    server_cpu, client_cpu, placement = cpu_placement()
    print(f"machine: {machine()}\nplacement: {placement}; {duration:g} s per run after {warmup:g} s warm-up, "
          f"{rounds} round(s)", file=sys.stderr)
    out = Outcome({s.name: {key: [] for key, _, _ in runs} for s in servers}, {s.name: [] for s in servers}, {}, {})
    for round_ in range(1, rounds + 1):
        for s in servers:
            if s.name in out.missing:
                continue
            wait_quiet(quiet_wait)
            ticks, cpu = cpu_ticks(), children_cpu()
            proc, why = start(s, server_cpu)
            if proc is None:
                out.missing[s.name] = why
                print(f"[{round_}/{rounds}] {s.name}: not available ({why})", file=sys.stderr)
                continue
            cells = []
            try:
                for key, conns, size in runs:
                    result = load(loadgen, client_cpu, conns, size, duration, warmup)
                    out.raw[s.name][key].append(result)
                    cells.append(f"{key} " + ("err" if result is None else
                                              f"{result['mbps']:,.0f} MB/s" if key == "bulk" else
                                              f"{result['rps']:,.0f}/s"))
            finally:  # even on Ctrl-C: never leave a server holding the port
                status = stop(proc)
            if status != 0:
                out.notes[s.name] = f"on SIGINT: {status if isinstance(status, str) else f'exit status {status}'}"
            other = foreign_load(ticks, cpu_ticks(), cpu, children_cpu())
            if other is not None:
                out.other[s.name].append(other)
                cells.append(f"other load {other:.0%}")
            print(f"[{round_}/{rounds}] {s.name}: {', '.join(cells)}", file=sys.stderr)
    return placement, out


def report(servers, out, header):
    medians = {name: {"1c": median(runs.get("1c"), "rps"), "10c": median(runs.get("10c"), "rps"),
                      "100c": median(runs.get("100c"), "rps"), "p50": median(runs.get("100c"), "p50_us"),
                      "p99": median(runs.get("100c"), "p99_us"), "bulk": median(runs.get("bulk"), "mbps"),
                      "other": statistics.median(out.other[name]) if out.other[name] else None}
               for name, runs in out.raw.items() if name not in out.missing}
    results = [r for runs in out.raw.values() for rs in runs.values() for r in rs if r]
    others = [x for xs in out.other.values() for x in xs]
    print(f"\n{header}")
    print("64-byte messages at 1/10/100 connections; bulk: 16 KiB messages, 10 connections, MB/s of echoed payload")
    print(f"The load generator used at most {max((r['cpu_pct'] for r in results), default=0):.0f}% of its CPU. "
          "'other': the share of the machine's CPU time that other processes took during the server's turns.")
    if others and max(others) > 0.05:
        print(f"\nWARNING: other processes used up to {max(others):.0%} of the machine's CPU time during the runs "
              f"(median {statistics.median(others):.0%}); the numbers are unreliable.")
    print(f"\n{table(servers, medians, out.missing)}\n\n{goals(servers, medians, out.missing)}")
    footnotes = [f"  {s.name}: {s.note}" for s in servers if s.note and s.name not in out.missing]
    footnotes += [f"  {name}: not available: {why}" for name, why in out.missing.items()]
    footnotes += [f"  {name}: {note}" for name, note in out.notes.items()]
    if footnotes:
        print("\nNotes:\n" + "\n".join(footnotes))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, one round: a smoke check")
    parser.add_argument("--only", help="comma-separated server names (default: all)")
    parser.add_argument("--runs", help="comma-separated runs to make, of " + ",".join(k for k, _, _ in RUNS)
                        + " (default: all); more rounds of fewer runs narrow the host's spread")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5, --quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, --quick 0.3)")
    parser.add_argument("--repeats", type=int, help="rounds; each cell is their median (default 3, --quick 1)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw load generator result here")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                        help="before each server's turn, wait up to S seconds for the other processes on the "
                             f"machine to use under {QUIET * 100:.0f}%% of its CPU time (default 0: do not wait)")
    args = parser.parse_args()
    duration = args.duration or (1 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1)
    rounds = args.repeats or (1 if args.quick else 3)
    servers = all_servers(sys.executable)
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {s.name for s in servers}
        if unknown:
            parser.error(f"unknown server {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in servers)}")
        servers = [s for s in servers if s.name in names]

    # Children inherit an ignored SIGINT (a background job's lot) and Python would then keep it ignored;
    # with a handler here, exec gives every server the default disposition, so SIGINT stops it as Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    runs = RUNS
    if args.runs:
        keys = args.runs.split(",")
        unknown = set(keys) - {k for k, _, _ in RUNS}
        if unknown:
            parser.error(f"unknown run {', '.join(sorted(unknown))}; known: {', '.join(k for k, _, _ in RUNS)}")
        runs = [run for run in RUNS if run[0] in keys]
    placement, out = measure(servers, rounds, duration, warmup, args.quiet_wait, runs)
    report(servers, out, f"Echo benchmark, {HOST}:{PORT}; {machine()}\n"
                         f"{placement}; {duration:g} s per run after {warmup:g} s warm-up; median of {rounds} round(s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "placement": placement, "duration": duration,
                                               "warmup": warmup, **vars(out)}, indent=1))


if __name__ == "__main__":
    main()
