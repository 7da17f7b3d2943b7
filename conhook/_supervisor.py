"""``python -m conhook --workers N ...``: run N copies of a program, one per core.

A cooperative scheduler uses one core by design; this is the way out.  The supervisor starts N
workers, each ``python -m conhook ...`` with the same arguments, and sets in their environment

* ``CONHOOK_REUSEPORT=1``: ``tcplisten@`` then binds with ``SO_REUSEPORT``, so the workers share
  each address and the kernel spreads the incoming connections among them;
* ``CONHOOK_WORKER``: the worker's number, 0 to N-1, for programs that want to know.

Each worker runs in a process group of its own, so that a Ctrl-C at the terminal reaches it
once, through the supervisor: SIGINT, SIGTERM and SIGHUP sent to the supervisor are forwarded
to every live worker, once per signal received.  The supervisor exits when all workers have
exited.  If one fails (a non-zero status) while others still run, the others get SIGTERM, so
that a half-started service does not linger.  The supervisor's status is 0 when every worker
exited with 0 or stopped as asked (below), else that of the first worker that did not: its exit
code, or 128 + the signal that ended it.  On Linux a worker also gets SIGTERM when the
supervisor dies without forwarding anything (SIGKILL, a crash): workers never outlive it,
holding its addresses.

Stopping is clean at any moment, start-up included.  The supervisor takes SIGINT and SIGTERM
over before it imports anything it does not need for that (only the interpreter's own start-up
comes before); told to stop, it starts no more workers and stops those it has started.  A
worker ended by a signal the supervisor forwarded because it was told to stop has stopped as
asked, not failed, whether it was still starting (the signal's default action ended it before
its runner took SIGTERM over) or runs a program that does not handle SIGTERM.  Each worker is
started with the two signals blocked in the supervisor, and entered in the list of workers
before they are unblocked, so that no stop falls between a worker's start and the
supervisor's knowing of it (the child unblocks them before it runs anything).
"""
from __future__ import annotations

import os
import signal
import sys

WORKER_ENV = "CONHOOK_WORKER"
_STOPS = (signal.SIGINT, signal.SIGTERM)
_FORWARDED = (*_STOPS, signal.SIGHUP)  # SIGHUP is passed on (a reload: con.signals), not a stop


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
    workers = []
    told_to_stop = []  # the signals the supervisor received, in order
    forwarded = {}  # worker -> the signals it was sent

    def forward(signum):
        for proc in workers:
            if proc.returncode is None:  # not reaped yet (os.kill: Popen.send_signal would reap)
                try:
                    os.kill(proc.pid, signum)
                except ProcessLookupError:
                    continue
                forwarded.setdefault(proc, set()).add(signum)

    def on_signal(signum, frame):
        if signum in _STOPS:
            told_to_stop.append(signum)
        forward(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in _FORWARDED}
    try:
        import subprocess

        from ._network.sockets import REUSEPORT_ENV  # (here: the parent needs no runtime otherwise)
        command = [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "conhook", *argv]
        die_with_us = _die_with(os.getpid())
        for number in range(count):
            env = dict(os.environ, **{REUSEPORT_ENV: "1", WORKER_ENV: str(number)})
            with _blocked(_FORWARDED) as unblock:
                if told_to_stop:
                    break
                workers.append(subprocess.Popen(command, env=env, process_group=0,
                                                preexec_fn=_in_child(unblock, die_with_us)))
        status = 0
        live = list(workers)
        while live:
            pid, wait_status = os.wait()
            proc = next((p for p in live if p.pid == pid), None)
            if proc is None:
                continue
            live.remove(proc)
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            stopped_as_asked = told_to_stop and -proc.returncode in forwarded.get(proc, ())
            if proc.returncode and not stopped_as_asked and not status:
                status = _status(proc.returncode)
                forward(signal.SIGTERM)  # one failed: stop the others
        return status
    except BaseException:
        forward(signal.SIGTERM)
        for proc in workers:
            proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _blocked:
    """``with _blocked(signals) as unblock:`` the signals wait (they are not lost) until the
    block ends; ``unblock()`` restores the mask (a child started inside calls it)."""

    def __init__(self, signals):
        self.signals = signals

    def __enter__(self):
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        return self.unblock

    def unblock(self):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)

    def __exit__(self, *exc):
        self.unblock()


def _in_child(*steps):
    """One ``preexec_fn`` that runs the `steps` that are not None, in order."""
    steps = [step for step in steps if step is not None]

    def run():
        for step in steps:
            step()

    return run
