"""``python -m conhook --workers N``: N copies of a program sharing listening addresses."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import textwrap
import time

import pytest

from .helpers import SAMPLES, free_port, recv_all, start_conhook, wait_accepting

WHO = textwrap.dedent("""
    import os, sys
    from con import bootstrap, tcplisten, ipv4addr, ipv6addr

    def main(port):
        listener = tcplisten@(ipv4addr('127.0.0.1', port), ipv6addr('::1', port))
        while 1:
            sibling answer@(listener.accept@())

    def answer(s):
        with s:
            s.write@(b'%d' % os.getpid())

    try:
        bootstrap(main, int(sys.argv[1]))
    except KeyboardInterrupt:
        pass
""")

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _children(pid):
    """The pids of `pid`'s child processes (Linux /proc); None where that cannot be known."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return None


def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _listens(pid, port):
    inodes = _listening_inodes(port)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def wait_workers(proc, port, count=2):
    """Wait until `count` workers of the supervisor `proc` listen on `port` (Linux), or until
    something accepts there (elsewhere, then a moment longer)."""
    wait_accepting("127.0.0.1", port, proc)
    if not os.path.exists("/proc/net/tcp"):
        time.sleep(1)
        return None
    deadline = time.monotonic() + 30
    while True:
        workers = _children(proc.pid) or []
        try:
            if len(workers) == count and all(_listens(pid, port) for pid in workers):
                return workers
        except OSError:
            pass
        assert time.monotonic() < deadline, "the workers did not all listen"
        time.sleep(0.02)


def test_workers_share_the_address_and_stop_on_sigint(tmp_path):
    port = free_port()
    script = tmp_path / "who.py"
    script.write_text(WHO)
    proc = start_conhook(["--workers", "2", str(script), str(port)], start_new_session=True)
    try:
        workers = wait_workers(proc, port)
        pids = set()
        for i in range(60):  # the kernel spreads connections by a hash of their addresses
            with socket.create_connection((("127.0.0.1", "::1")[i % 2], port), timeout=30) as c:
                pids.add(int(recv_all(c)))
        assert len(pids) == 2
        if workers is not None:
            assert pids == set(workers)
        proc.send_signal(signal.SIGINT)  # to the supervisor only: it forwards
        assert proc.wait(30) == 0
        assert not any(_alive(pid) for pid in pids)
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_the_echo_sample_with_two_workers(tmp_path):
    port = free_port()
    script = tmp_path / "echo.py"
    script.write_text((SAMPLES / "echo.py").read_text().replace("6839", str(port)))
    proc = start_conhook(["--workers", "2", str(script)], start_new_session=True)
    try:
        wait_workers(proc, port)
        for i in range(20):
            with socket.create_connection((("127.0.0.1", "::1")[i % 2], port), timeout=30) as c:
                c.sendall(b"hello %d" % i)
                c.shutdown(socket.SHUT_WR)
                assert recv_all(c) == b"hello %d" % i
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: the supervisor's group
        assert proc.wait(30) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@contextlib.contextmanager
def two_waiting_workers(tmp_path):
    """A supervisor whose two workers are past their start-up, sleeping: (supervisor, worker
    pids or None where they cannot be known).  Whatever is left is killed at the end."""
    script = tmp_path / "wait.py"
    script.write_text("import con, os, time\nos.write(1, b'ready\\n')\ntime.sleep(60)\n")
    proc = start_conhook(["--workers", "2", str(script)])
    workers = None
    try:
        assert [proc.stdout.readline(), proc.stdout.readline()] == ["ready\n"] * 2
        workers = _children(proc.pid)
        yield proc, workers
    finally:
        for pid in workers or ():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_sigterm_is_forwarded(tmp_path):
    with two_waiting_workers(tmp_path) as (proc, workers):
        proc.send_signal(signal.SIGTERM)  # it ends both (they do not handle it): stopped as asked
        assert proc.wait(30) == 0
        if workers is not None:
            assert len(workers) == 2 and not any(_alive(pid) for pid in workers)


def _catches_sigterm(pid):
    """Whether process `pid` has a handler for SIGTERM (Linux: SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _in_session(sid):
    """The pids of the live processes in session `sid` (Linux)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # not a process, or gone
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


# After the supervisor takes SIGTERM over: while it starts its workers, while they start
# (before their runner handles SIGTERM, and before their scheduler runs), and once they serve.
STOP_DELAYS_MS = [0, 1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 110, 160, 220, 300, 400]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_at_any_moment_of_start_up_stops_the_whole_tree_with_status_0(tmp_path):
    script = tmp_path / "who.py"
    script.write_text(WHO)
    outcomes = []
    for delay in STOP_DELAYS_MS:
        proc = start_conhook(["--workers", "2", str(script), str(free_port())], start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not _catches_sigterm(proc.pid):  # (before this, SIGTERM ends any Python program)
                assert proc.poll() is None and time.monotonic() < deadline, "the supervisor never took SIGTERM over"
                time.sleep(0.0005)
            time.sleep(delay / 1000)
            proc.send_signal(signal.SIGTERM)
            outcomes.append((delay, proc.wait(30), proc.stdout.read(), _in_session(proc.pid)))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for pid in _in_session(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.stdout.close()
    assert [outcome for outcome in outcomes if outcome[1:] != (0, "", [])] == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_workers_do_not_outlive_a_killed_supervisor(tmp_path):
    with two_waiting_workers(tmp_path) as (proc, workers):
        assert workers is not None and len(workers) == 2
        proc.kill()  # SIGKILL: the supervisor forwards nothing
        proc.wait(30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(_alive(pid) for pid in workers)


def test_sighup_reaches_every_worker(tmp_path):
    script = tmp_path / "reload.py"
    script.write_text(textwrap.dedent("""
        import con, os, signal

        def main():
            with con.signals(signal.SIGHUP) as received:
                os.write(1, b'ready\\n')
                received.get@()
                os.write(1, b'worker %s got SIGHUP\\n' % os.environ['CONHOOK_WORKER'].encode())

        con.bootstrap(main)
    """))
    proc = start_conhook(["--workers", "2", str(script)])
    try:
        assert [proc.stdout.readline(), proc.stdout.readline()] == ["ready\n"] * 2
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(30) == 0
        assert sorted(proc.stdout.read().splitlines()) == ["worker 0 got SIGHUP", "worker 1 got SIGHUP"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_sighup_is_passed_on_but_is_no_stop(tmp_path):
    # A worker that does not handle SIGHUP dies of it, and that is a failure (status 128 + 1),
    # not a stop the supervisor asked for (SIGINT and SIGTERM are those).
    script = tmp_path / "plain.py"
    script.write_text("import os, time\nos.write(1, b'ready\\n')\ntime.sleep(60)\n")
    proc = start_conhook(["--workers", "2", str(script)])
    try:
        assert [proc.stdout.readline(), proc.stdout.readline()] == ["ready\n"] * 2
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(30) == 128 + signal.SIGHUP
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_failing_worker_stops_the_others(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent("""
        import os, time
        if os.environ['CONHOOK_WORKER'] == '1':
            raise SystemExit(3)
        time.sleep(60)
    """))
    proc = start_conhook(["--workers", "2", str(script)])
    assert proc.wait(30) == 3
    proc.stdout.close()


@pytest.mark.parametrize("argv, words", [
    (["--workers"], "number of workers"),
    (["--workers", "0", "x.py"], "number of workers"),
    (["--workers=two", "x.py"], "number of workers"),
    (["--workers", "2"], "needs a program"),
], ids=["no-count", "zero", "not-a-number", "no-program"])
def test_workers_usage_errors(argv, words):
    proc = start_conhook(argv)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and words in out


def test_listeners_without_the_supervisor_do_not_share(tmp_path, monkeypatch):
    """Outside --workers (no CONHOOK_REUSEPORT), a second listener on a busy address fails."""
    monkeypatch.delenv("CONHOOK_REUSEPORT", raising=False)
    port = free_port()
    script = tmp_path / "who.py"
    script.write_text(WHO)
    first = start_conhook([str(script), str(port)])
    try:
        wait_accepting("127.0.0.1", port, first)
        second = start_conhook([str(script), str(port)])
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 1 and "Address already in use" in out
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 0
        first.stdout.close()
