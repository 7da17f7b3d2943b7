"""Whether a process sleeps in its poll (Linux, from /proc): the REPL, notebook and stress tests
signal a process then, between two turns of its scheduler."""
from __future__ import annotations

import os
import time

# What /proc/PID/task/TID/wchan says while a thread is blocked in a readiness backend's wait.
# (poll and select sleep in poll_schedule_timeout, which a kernel may show with a suffix: .constprop.0)
_POLL_WAITS = {"do_epoll_wait", "ep_poll", "do_sys_poll", "do_select", "core_sys_select", "poll_schedule_timeout"}


def _wchan(pid: int, tid: str) -> str:
    with open(f"/proc/{pid}/task/{tid}/wchan") as file:
        return file.read().strip().split(".")[0]


def _state(pid: int, tid: str) -> str:
    """The thread's state letter from /proc (R running, S sleeping, ...)."""
    with open(f"/proc/{pid}/task/{tid}/stat") as file:
        return file.read().rsplit(")", 1)[1].split()[0]


def _blocked(pid: int) -> bool:
    """Every thread of the process sleeps, one of them in a poll, and the main thread in a poll
    or on a lock (a futex).  The poll is the main thread's (standalone) or, in a hosted front
    end (the REPL runs its loop in an OS thread, python -m asyncio's way), the loop thread's,
    while the main thread waits for the input to end.  (The main thread's state alone is not
    enough: the hosted REPL's console selects on the signal wake-up fd while the loop's thread
    still runs the input.)"""
    tids = os.listdir(f"/proc/{pid}/task")
    if any(_state(pid, tid) != "S" for tid in tids):
        return False
    main = _wchan(pid, str(pid))
    return ((main in _POLL_WAITS or main.startswith("futex_"))
            and any(_wchan(pid, tid) in _POLL_WAITS for tid in tids))


def wait_until_blocked_in_poll(pid: int, limit: float = 30.0) -> None:
    """Wait until process ``pid``'s scheduler sleeps in epoll/poll/select, and its main thread,
    where signals are handled, sleeps too (Linux).

    A signal sent to a scheduler that is about to block can land between the interpreter's
    last check for signals and the poll system call, and then waits for the poll to return
    (see the report on issue 5; the fix is the scheduler's, with signal.set_wakeup_fd).  The
    tests send their signals once the scheduler is blocked, so that they test what they name.
    A process not blocked within ``limit`` seconds fails the test (waiting it out, then going on,
    would cost the limit each time and test the race this avoids).  Without /proc this does
    not wait.
    """
    deadline = time.monotonic() + limit
    while True:
        try:
            if _blocked(pid):
                return
        except OSError:
            if not os.path.isdir("/proc/self/task"):
                return  # no /proc here
            # (a thread ended between the listing and the read: look again)
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} was not seen blocked in its poll within {limit} s")
        time.sleep(0.005)
