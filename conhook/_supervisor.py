"""``python -m conhook --workers N ...``: run N copies of a program, one per core.

A cooperative scheduler uses one core by design; this is the way out.  The supervisor starts N
workers, each ``python -m conhook ...`` with the same arguments, and sets in their environment

* ``CONHOOK_REUSEPORT=1``: ``tcplisten@`` then binds with ``SO_REUSEPORT``, so the workers share
  each address and the kernel spreads the incoming connections among them;
* ``CONHOOK_WORKER``: the worker's number, 0 to N-1, for programs that want to know.

Each worker runs in a process group of its own, so that a Ctrl-C at the terminal reaches it
once, through the supervisor: SIGINT, SIGTERM and SIGHUP sent to the supervisor are forwarded
to every live worker.  The supervisor exits when all workers have exited.  If one fails (a non-zero
status) while others still run, the others get SIGTERM, so that a half-started service does
not linger.  The supervisor's status is 0 when every worker exited with 0, else that of the
first worker that did not: its exit code, or 128 + the signal that ended it.  On Linux a worker
also gets SIGTERM when the supervisor dies without forwarding anything (SIGKILL, a crash):
workers never outlive it, holding its addresses.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

WORKER_ENV = "CONHOOK_WORKER"
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: reload (con.signals)


def _status(returncode):
    return 128 - returncode if returncode < 0 else returncode


def _die_with(parent_pid):
    """For ``preexec_fn`` (Linux): SIGTERM this process when `parent_pid` dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arrange():  # in the child, between fork and exec; the setting survives the exec
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the supervisor died before that took effect
            os._exit(128 + signal.SIGTERM)

    return arrange


def supervise(count: int, argv: list[str]) -> int:
    """Run `count` workers ``python -m conhook ARGV``; return the supervisor's exit status."""
    command = [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "conhook", *argv]
    workers = []

    def forward(signum, frame):
        for proc in workers:
            if proc.returncode is None:  # not reaped yet (os.kill: Popen.send_signal would reap)
                try:
                    os.kill(proc.pid, signum)
                except ProcessLookupError:
                    pass

    from ._network.sockets import REUSEPORT_ENV  # (here: the parent needs no runtime otherwise)
    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        die_with_us = _die_with(os.getpid())
        for number in range(count):
            env = dict(os.environ, **{REUSEPORT_ENV: "1", WORKER_ENV: str(number)})
            workers.append(subprocess.Popen(command, env=env, process_group=0, preexec_fn=die_with_us))
        status = 0
        live = list(workers)
        while live:
            pid, wait_status = os.wait()
            proc = next((p for p in live if p.pid == pid), None)
            if proc is None:
                continue
            live.remove(proc)
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            if proc.returncode and not status:
                status = _status(proc.returncode)
                forward(signal.SIGTERM, None)  # one failed: stop the others
        return status
    except BaseException:
        forward(signal.SIGTERM, None)
        for proc in workers:
            proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
