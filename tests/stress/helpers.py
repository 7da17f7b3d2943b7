"""What the stress scenarios share: sizes, the echo server in a subprocess, /proc readings,
asyncio clients (an implementation independent of conhook), and the figures they report.

Sizes: CI runs every scenario at a reduced size; ``CONHOOK_STRESS=full`` (what
``tools/stress.py`` sets) runs the sizes of issue 6.
"""
from __future__ import annotations

import asyncio
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.process_states import wait_until_blocked_in_poll

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = (ROOT / "samples" / "echo.py").read_text()
FULL = os.environ.get("CONHOOK_STRESS", "").lower() == "full"


def size(ci, full):
    """The size of a scenario: `ci` normally, `full` under CONHOOK_STRESS=full."""
    return full if FULL else ci


def raise_fd_limit(needed):
    """Raise this process's descriptor limit (its children inherit it); False if impossible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return True
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target >= needed


def free_port():
    """A port that is free on both 127.0.0.1 and ::1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
            port = s6.getsockname()[1]
            with socket.socket(socket.AF_INET) as s4:
                try:
                    s4.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free on both loopback addresses")


# Appended to a server's source: SIGUSR2 makes it write its heap on stderr, after a collection.
# sys.getallocatedblocks() counts the interpreter's live memory blocks: unlike the resident
# size, which the allocator's free lists and arenas blur, it comes back exactly unless
# something leaks.
HEAP_REPORT = """
import gc as _gc, signal as _signal, sys as _sys
def _heap(*_):
    _gc.collect()
    _sys.stderr.write(f"heap blocks={_sys.getallocatedblocks()} objects={len(_gc.get_objects())}\\n")
    _sys.stderr.flush()
_signal.signal(_signal.SIGUSR2, _heap)
"""


def default_sigint():
    # A command started in the background by a non-interactive shell ignores SIGINT, and so
    # would the server it starts: Python then installs no KeyboardInterrupt handler, nor
    # conhook its own.  The server must get Ctrl-C as a terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    """A con program (by default the echo sample, on a free port) in a subprocess."""

    def __init__(self, tmp_path, source=SAMPLE, env=None):
        self.port = free_port()
        script = tmp_path / "server.py"
        source = source.replace("6839", str(self.port))
        head, main_guard, tail = source.partition("if __name__ == '__main__':")
        script.write_text(head + HEAP_REPORT + main_guard + tail)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONHOOK_")}
        full_env["PYTHONPATH"] = str(ROOT)
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "conhook", str(script)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=full_env, cwd=tmp_path, preexec_fn=default_sigint)
        self.address = ("127.0.0.1", self.port)
        self._wait_accepting()

    def _wait_accepting(self, seconds=20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                socket.create_connection(self.address, timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the server exited: {self.proc.communicate()}")
                time.sleep(0.05)
        raise AssertionError("the server does not accept connections")

    # -- readings from /proc ------------------------------------------------------------------

    def rss(self):
        """Resident memory in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def quiet_fds(self, stable=0.5, seconds=20):
        """The server's descriptor count once it has not changed for `stable` seconds."""
        deadline = time.monotonic() + seconds
        last, since = self.fds(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.fds()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= stable:
                break
        return last

    def heap(self):
        """(live memory blocks, objects) of the server, after a garbage collection, counted
        between two of its turns: while it sleeps in its poll.  (A turn's queue holds the
        threads it ran until it ends: counted by a signal handled mid-turn, the threads that
        turn finished looked leaked, once in CI on a loaded machine: 365 of them.)"""
        wait_until_blocked_in_poll(self.proc.pid)
        self.proc.send_signal(signal.SIGUSR2)
        ready, _, _ = select.select([self.proc.stderr], [], [], 10)
        assert ready, "the server did not report its heap"
        line = self.proc.stderr.readline()
        match = re.fullmatch(r"heap blocks=(\d+) objects=(\d+)\n", line)
        assert match, f"unexpected output of the server: {line!r}"
        return int(match[1]), int(match[2])

    def settle(self, fds, seconds=20):
        """Wait until the server holds `fds` descriptors again; its count then."""
        deadline = time.monotonic() + seconds
        while self.fds() > fds and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.fds()

    def interrupt(self, timeout=10):
        """Ctrl-C; (seconds until it exited, stdout, stderr)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=timeout)
        return time.monotonic() - start, out, err

    def kill(self):
        """Stop the server (SIGKILL) if it still runs; what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate()[1]


# -- asyncio clients ------------------------------------------------------------------------

async def connect_many(address, n, concurrency=256):
    """n open connections (reader, writer), made at most `concurrency` at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one():
        async with limit:
            for attempt in range(20):
                try:
                    return await asyncio.open_connection(*address)
                except OSError:
                    await asyncio.sleep(0.05 * (attempt + 1))
            return await asyncio.open_connection(*address)
    return await asyncio.gather(*(one() for _ in range(n)))


async def echo_once(reader, writer, message):
    writer.write(message)
    await writer.drain()
    return await reader.readexactly(len(message))


async def close_all(connections):
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in connections), return_exceptions=True)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


MB = 1024 * 1024
