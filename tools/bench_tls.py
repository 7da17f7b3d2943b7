"""TLS echo benchmark of issue 15: conhook's TLS echo sample and its peers in one run, side by side, as ratios.

    python tools/bench_tls.py [--quick] [--only NAME,...] [--runs 100c,bulk,hs] [--duration S]
                              [--warmup S] [--repeats N] [--json FILE] [--quiet-wait S]
    python tools/bench_tls.py --instructions [--only NAME,...] [--runs 100c,hs] [--duration S]
    python tools/bench_tls.py --baseline DIR ...    # DIR: a worktree of an earlier commit, a row of its own

The TLS sibling of bench_echo.py (same placement, rounds, medians and load checks; tools/README.md).
A throw-away ECDSA P-256 certificate is made with the `openssl` CLI; each server in turn listens on
port 6840 (the sample's) and tools/loadgen_tls.c (C and OpenSSL, built here) drives it: 100 connections
with 64-byte messages after their handshakes, 10 connections with 16 KiB messages, and handshakes per
second (10 connections at a time, each: connect, full handshake, one 64-byte echo, close_notify, close).
With --instructions each server runs under valgrind's callgrind instead and the table is user-space
instructions per request (the server's Python and OpenSSL alike; system calls are not counted): the
difference between a run of --duration and one of a third of it, on new connections each, per request.
"""
import argparse
import glob
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bench_echo
from bench_echo import NOT_RUN, fmt, machine, median, ratio

PEERS = bench_echo.TOOLS / "tls_peers"
PORT = bench_echo.PORT = 6840  # bench_echo's start() and stop() wait on this port

# (column key, connections, message bytes, a new connection and handshake per request)
RUNS = [("100c", 100, 64, False), ("bulk", 10, 16384, False), ("hs", 10, 64, True)]
GOALS = [("100 conns, 64 B", "100c", "uvloop-streams", 1.0), ("100 conns, 64 B", "100c", "asyncio-streams", 1.5),
         ("bulk 16 KiB", "bulk", None, 0.9), ("handshakes/s", "hs", None, 1.0)]  # None: the best peer


@dataclass
class Server:
    name: str
    argv: list
    pinned: bool = True
    peer: bool = True


def all_servers(python, cert, key, baseline=None):
    def peer(name, file):
        return Server(name, [python, str(PEERS / file), "--port", str(PORT), "--cert", cert, "--key", key])

    sample = ["-m", "conhook", "samples/echo_tls.py", cert, key, str(PORT)]
    before = [Server("conhook-baseline", ["env", "--chdir", baseline, python, *sample], peer=False)] if baseline else []
    return [Server("conhook", [python, *sample], peer=False), *before,
            peer("asyncio-streams", "asyncio_streams_tls.py"),
            peer("uvloop-streams", "uvloop_streams_tls.py"),
            peer("trio", "trio_tls.py")]


def make_certificate(directory):
    """A self-signed ECDSA P-256 certificate for localhost: (cert.pem, key.pem)."""
    cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
                   check=True, capture_output=True)
    return cert, key


def loadgen_argv(loadgen, conns, size, handshakes, duration, warmup):
    return [str(loadgen), "--host", bench_echo.HOST, "--port", str(PORT), "--conns", str(conns),
            "--size", str(size), "--duration", str(duration), "--warmup", str(warmup)] + \
        (["--handshakes"] if handshakes else [])


def load(loadgen, cpu, run, duration, warmup):
    """One load generator run: its JSON result, or None when the run failed."""
    _, conns, size, handshakes = run
    argv = bench_echo.pin(cpu, loadgen_argv(loadgen, conns, size, handshakes, duration, warmup))
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 60).stdout
        result = json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return None if "error" in result or result["errors"] else result


def measure(servers, runs, rounds, duration, warmup, quiet_wait):
    """{name: {run key: [result or None per round]}}, {name: [other load]}, {name: why missing}, {name: note}."""
    loadgen = bench_echo.build(bench_echo.TOOLS / "loadgen_tls.c", ["-lssl", "-lcrypto"])
    server_cpu, client_cpu, placement = bench_echo.cpu_placement()
    print(f"machine: {machine()}\nplacement: {placement}; {duration:g} s per run after {warmup:g} s warm-up, "
          f"{rounds} round(s)", file=sys.stderr)
    raw = {s.name: {run[0]: [] for run in runs} for s in servers}
    other, missing, notes = {s.name: [] for s in servers}, {}, {}
    for round_ in range(1, rounds + 1):
        for s in servers:
            if s.name in missing:
                continue
            bench_echo.wait_quiet(quiet_wait)
            ticks, cpu = bench_echo.cpu_ticks(), bench_echo.children_cpu()
            proc, why = bench_echo.start(s, server_cpu)
            if proc is None:
                missing[s.name] = why
                print(f"[{round_}/{rounds}] {s.name}: not available ({why})", file=sys.stderr)
                continue
            cells = []
            try:
                for run in runs:
                    result = load(loadgen, client_cpu, run, duration, warmup)
                    raw[s.name][run[0]].append(result)
                    cells.append(f"{run[0]} " + ("err" if result is None else f"{result['mbps']:,.0f} MB/s"
                                                 if run[0] == "bulk" else f"{result['rps']:,.0f}/s"))
            finally:  # even on Ctrl-C: never leave a server holding the port
                status = bench_echo.stop(proc)
            if status != 0:
                notes[s.name] = f"on SIGINT: {status if isinstance(status, str) else f'exit status {status}'}"
            share = bench_echo.foreign_load(ticks, bench_echo.cpu_ticks(), cpu, bench_echo.children_cpu())
            if share is not None:
                other[s.name].append(share)
                cells.append(f"other load {share:.0%}")
            print(f"[{round_}/{rounds}] {s.name}: {', '.join(cells)}", file=sys.stderr)
    return placement, raw, other, missing, notes


def medians_of(raw, other, missing):
    return {name: {"100c": median(runs.get("100c"), "rps"), "p50": median(runs.get("100c"), "p50_us"),
                   "p99": median(runs.get("100c"), "p99_us"), "bulk": median(runs.get("bulk"), "mbps"),
                   "hs": median(runs.get("hs"), "rps"),
                   "other": statistics.median(other[name]) if other[name] else None}
            for name, runs in raw.items() if name not in missing}


def markdown(head, rows):
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *map(line, rows)])


def table(servers, medians, missing):
    head = ["server", "100 conns req/s", "p50 µs @100", "p99 µs @100", "bulk MB/s", "handshakes/s",
            "conhook/peer @100", "conhook/peer bulk", "conhook/peer hs", "other"]
    ours, rows = medians.get("conhook", {}), []
    for s in servers:
        if s.name in missing:
            rows.append([s.name, "not available"] + ["—"] * (len(head) - 2))
            continue
        m = medians[s.name]
        rows.append([s.name, fmt(m["100c"], ",.0f"), fmt(m["p50"], ".0f"), fmt(m["p99"], ".0f"),
                     fmt(m["bulk"], ",.0f"), fmt(m["hs"], ",.0f")]
                    + [fmt(ratio(ours.get(k, NOT_RUN), m[k]), ".2f").replace("err", "—")
                       for k in ("100c", "bulk", "hs")]
                    + ["—" if m["other"] is None else f"{m['other']:.0%}"])
    return markdown(head, rows)


def goals(servers, medians, missing, higher_is_better=True):
    """Issue 15's goals as ratios of this run's medians (for instructions: peer / conhook)."""
    ours = medians.get("conhook")
    out = ["Goals of issue 15 (conhook / peer, medians of this run):" if higher_is_better else
           "The goals read as instructions (peer / conhook: above the goal means conhook does less work):"]
    for what, key, peer, goal in GOALS:
        if peer is None:  # the best peer of this column
            measured = [s.name for s in servers if s.peer and s.name in medians
                        and medians[s.name][key] not in (None, NOT_RUN)]
            pick = max if higher_is_better else min
            peer = pick(measured, key=lambda n: medians[n][key], default=None)
            label = f"  {what}: conhook / {peer or 'best peer'} (best peer)"
        else:
            label = f"  {what}: conhook / {peer}"
        if ours is None:
            verdict = "n/a: conhook not available"
        elif ours[key] is NOT_RUN:
            verdict = "n/a: not run (--runs)"
        elif peer not in medians or medians[peer][key] in (None, NOT_RUN):
            verdict = f"n/a: {peer or 'no peer'} not measured"
        elif ours[key] is None:
            verdict = "n/a: conhook's runs failed"
        else:
            r = ours[key] / medians[peer][key] if higher_is_better else medians[peer][key] / ours[key]
            verdict = f"{r:.2f}  goal >= {goal:.2f}  {'met' if r >= goal else 'MISSED'}"
        out.append(f"{label:<58} {verdict}")
    return "\n".join(out)


def report(servers, placement, raw, other, missing, notes, duration, warmup, rounds):
    medians = medians_of(raw, other, missing)
    results = [r for runs in raw.values() for rs in runs.values() for r in rs if r]
    others = [x for xs in other.values() for x in xs]
    print(f"\nTLS echo benchmark, {bench_echo.HOST}:{PORT}; {machine()}\n{placement}; {duration:g} s per run "
          f"after {warmup:g} s warm-up; median of {rounds} round(s)")
    print("100 conns: 64-byte messages after the handshakes; bulk: 16 KiB messages, 10 connections, MB/s of "
          "echoed payload; handshakes/s: 10 at a time, each a new connection, a full TLS handshake (ECDSA "
          "P-256), one 64-byte echo, close")
    per_run = {key: max((r["cpu_pct"] for rs in raw.values() for r in rs[key] if r), default=0)
               for key in next(iter(raw.values()), {})}
    print(f"The load generator used at most {max((r['cpu_pct'] for r in results), default=0):.0f}% of its CPU "
          "(per column: " + ", ".join(f"{key} {pct:.0f}%" for key, pct in per_run.items()) + ").")
    if others and max(others) > 0.05:
        print(f"\nWARNING: other processes used up to {max(others):.0%} of the machine's CPU time during the runs "
              f"(median {statistics.median(others):.0%}); the numbers are unreliable.")
    print(f"\n{table(servers, medians, missing)}\n\n{goals(servers, medians, missing)}")
    footnotes = [f"  {name}: not available: {why}" for name, why in missing.items()]
    footnotes += [f"  {name}: {note}" for name, note in notes.items()]
    if footnotes:
        print("\nNotes:\n" + "\n".join(footnotes))


# -- instructions under callgrind ------------------------------------------------------------------

def instructions(server, loadgen, run, duration):
    """(instructions per request, requests) of one server and one run under callgrind, or (None, why)."""
    out_dir = tempfile.mkdtemp(prefix="callgrind-")
    argv = ["valgrind", "--tool=callgrind", "--trace-children=yes",  # through env --chdir (--baseline)
            f"--callgrind-out-file={out_dir}/out.%p"] + server.argv
    proc, why = bench_echo.start(Server(server.name, argv, pinned=False), None)
    if proc is None:
        return None, why
    _, conns, size, handshakes = run
    try:
        def drive(seconds, zero=False):
            """Run the load; with `zero`, zero the counters once the load generator is ready (its
            connections made and their handshakes done, unless every request is a handshake)."""
            argv = loadgen_argv(loadgen, conns, size, handshakes, seconds, 0) + ([] if handshakes else ["--hold"])
            with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as gen:
                if not handshakes:
                    ready = json.loads(gen.stdout.readline() or '{"error": "no ready line"}')
                    if "error" in ready:
                        gen.kill()
                        return ready
                if zero:
                    if not handshakes:
                        wait_idle(proc.pid)  # the server may still be finishing the handshakes
                    callgrind("--zero")
                if handshakes:
                    out, _ = gen.communicate(timeout=seconds + 120)
                    result = json.loads(out.strip().splitlines()[-1])
                else:
                    gen.stdin.write("go\n")
                    gen.stdin.flush()
                    result = json.loads(gen.stdout.readline() or '{"error": "no result"}')
                if zero:  # before the load generator closes its connections: their ends are not counted
                    callgrind("--dump=measured")
                gen.communicate("done\n" if not handshakes else None, timeout=60)
            return result

        def callgrind(command):
            subprocess.run(["callgrind_control", command, str(proc.pid)], capture_output=True, check=True)

        def measured():
            """The totals of callgrind's dumps of measured runs so far, in order."""
            totals = []
            for path in sorted(glob.glob(f"{out_dir}/out.*.*"), key=lambda p: int(p.rsplit(".", 1)[1])):
                text = Path(path).read_text()
                if "Trigger: Client Request: measured" in text or "Trigger: dump measured" in text:
                    totals.append(int(re.search(r"^summary: (\d+)", text, re.M).group(1)))
            return totals

        drive(1)  # warm-up: caches, specialised bytecode, buffers
        # Two measured runs, a short and a long one, each on new connections: the difference
        # per request cancels what both count once (the end of the handshakes, see wait_idle;
        # the first and last polls), as bench_tls_loop.py does.
        results, totals = [], []
        for seconds in (max(1.0, duration / 3), duration):
            for _ in range(3):  # (a handshake that overran the server's 10 s handshake_timeout
                result = drive(seconds, zero=True)  # under callgrind fails the run: again)
                if "error" not in result and not result["errors"] and result["requests"]:
                    break
            else:
                return None, f"load generator: {result}"
            results.append(result)
            totals.append(measured()[-1])
    finally:
        bench_echo.stop(proc)
        shutil.rmtree(out_dir, ignore_errors=True)
    requests = results[1]["requests"] - results[0]["requests"]
    if requests <= 0:
        return None, f"the long run made no more requests than the short one: {results}"
    return (totals[1] - totals[0]) / requests, requests


def wait_idle(pid, quiet=3.0, timeout=120):
    """Wait until process `pid` has used no CPU for `quiet` seconds.  A client's handshake is
    done before the server's (the server still takes the client's Finished and makes its
    session tickets), and a server under callgrind lags by seconds: counting from the load
    generator's "ready" line counted the tail of the 100 handshakes (about 500k instructions
    each) in with the echoes.  (Under callgrind conhook's server was seen to pause for up to
    2 s inside that tail, hence `quiet`; natively strace shows no such pause.)"""
    def cpu():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    deadline = time.monotonic() + timeout
    last, since = cpu(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def count_instructions(servers, runs, duration):
    if shutil.which("callgrind_control") is None:
        sys.exit("bench_tls: --instructions needs valgrind (callgrind_control not found)")
    bench_echo.START_TIMEOUT = 120  # start-up runs about fifty times slower under valgrind
    loadgen = bench_echo.build(bench_echo.TOOLS / "loadgen_tls.c", ["-lssl", "-lcrypto"])
    print(f"user-space instructions per request (callgrind), Python {sys.version.split()[0]}; "
          f"{duration:g} s measured per run", file=sys.stderr)
    counts = {s.name: {} for s in servers}
    for s in servers:
        for run in runs:
            count, detail = instructions(s, loadgen, run, duration)
            counts[s.name][run[0]] = count
            print(f"  {s.name} {run[0]}: " + (f"{count:,.0f} ({detail:,} requests)" if count else detail),
                  file=sys.stderr, flush=True)
    keys = [run[0] for run in runs]
    head = ["server"] + [f"instructions/request {k}" for k in keys] + [f"peer/conhook {k}" for k in keys]
    ours = counts.get("conhook", {})
    rows = [[name] + [fmt(c.get(k), ",.0f") for k in keys]
            + [fmt(ratio(c.get(k), ours.get(k)), ".2f").replace("err", "—") for k in keys]
            for name, c in counts.items()]
    print(f"\nTLS echo, user-space instructions per request (callgrind); {machine()}")
    print(markdown(head, rows))
    medians = {name: {key: c.get(key, NOT_RUN) for key in ("100c", "bulk", "hs")} for name, c in counts.items()}
    print("\n" + goals(servers, medians, {}, higher_is_better=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, one round: a smoke check")
    parser.add_argument("--only", help="comma-separated server names (default: all)")
    parser.add_argument("--runs", help="comma-separated runs, of " + ",".join(r[0] for r in RUNS) + " (default: all)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5, --quick 1, "
                                                        "--instructions 10)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, --quick 0.3)")
    parser.add_argument("--repeats", type=int, help="rounds; each cell is their median (default 3, --quick 1)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw load generator result here")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                        help="before each server's turn, wait up to S seconds for the machine to be quiet")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run the sample of another conhook checkout (a git worktree of an earlier "
                             "commit), as the row conhook-baseline: before and after a change in one run")
    parser.add_argument("--instructions", action="store_true",
                        help="count user-space instructions per request under callgrind instead (needs valgrind)")
    args = parser.parse_args()
    runs = RUNS
    if args.runs:
        keys = args.runs.split(",")
        if set(keys) - {r[0] for r in RUNS}:
            parser.error(f"unknown run in {args.runs}; known: {', '.join(r[0] for r in RUNS)}")
        runs = [r for r in RUNS if r[0] in keys]
    if shutil.which("openssl") is None:
        sys.exit("bench_tls: needs the openssl command to make the certificate")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # see bench_echo.main
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        servers = all_servers(sys.executable, *make_certificate(directory), args.baseline)
        if args.only:
            names = args.only.split(",")
            unknown = set(names) - {s.name for s in servers}
            if unknown:
                parser.error(f"unknown server {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(s.name for s in servers)}")
            servers = [s for s in servers if s.name in names]
        if args.instructions:
            count_instructions(servers, [r for r in runs if r[0] != "bulk" or args.runs], args.duration or 10)
            return
        duration = args.duration or (1 if args.quick else 5)
        warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1)
        rounds = args.repeats or (1 if args.quick else 3)
        placement, raw, other, missing, notes = measure(servers, runs, rounds, duration, warmup, args.quiet_wait)
        report(servers, placement, raw, other, missing, notes, duration, warmup, rounds)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "placement": placement, "raw": raw,
                                                   "other": other, "missing": missing, "notes": notes}, indent=1))


if __name__ == "__main__":
    main()
