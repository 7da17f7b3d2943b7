"""Helpers shared by the network tests: threads without the compiler, servers beside clients."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conhook._runtime.prejoin import prejoin
from conhook.api import bootstrap, ipv4addr, ipv6addr, tcplisten

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
LOOPBACK = ("127.0.0.1", "::1")


def run(fn, *args):
    return bootstrap(fn, *args)


async def together(*fns):
    """Run each ``async def fn()`` in a thread of its own, as ``sibling fn@()`` would; wait for all."""
    scope = prejoin()
    try:
        for fn in fns:
            scope.start(fn)
    except BaseException as exc:
        if await scope.failed(exc):
            raise
    finally:
        await scope.join()


class _Stop(Exception):
    pass


async def beside(server, client):
    """Run ``server()`` in a thread while ``client()`` runs; then stop the server (interrupt it)
    and return what the client returned."""
    try:
        scope = prejoin()
        try:
            scope.start(server)
            raise _Stop(await client())
        except BaseException as exc:
            if await scope.failed(exc):
                raise
        finally:
            await scope.join()
    except _Stop as stop:
        return stop.args[0]


async def listen_both():
    """A listener on 127.0.0.1 and ::1, each on a port the system chose."""
    return await tcplisten(ipv4addr("127.0.0.1", 0), ipv6addr("::1", 0))


def free_port():
    """A port that is free on both 127.0.0.1 and ::1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6) as s6:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", 0))
            port = s6.getsockname()[1]
            with socket.socket() as s4:
                try:
                    s4.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free on both loopback addresses")


def wait_accepting(host, port, proc=None, seconds=15):
    """Wait until something accepts on (host, port); fail if `proc` exits first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"server exited with {proc.returncode}: {out}")
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing accepts on {host} port {port}")
            time.sleep(0.02)


def start_conhook(argv, **kwargs):
    """``python -m conhook ARGV`` in a subprocess, from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "conhook", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def recv_all(sock):
    """Everything a blocking socket receives until end of stream."""
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
