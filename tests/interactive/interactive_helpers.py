"""Helpers shared by the REPL and notebook tests."""
from __future__ import annotations

import time

# What /proc/PID/wchan says while a thread is blocked in a readiness backend's wait.
# (poll and select sleep in poll_schedule_timeout, which a kernel may show with a suffix: .constprop.0)
_POLL_WAITS = {"do_epoll_wait", "ep_poll", "do_sys_poll", "do_select", "core_sys_select", "poll_schedule_timeout"}


def wait_until_blocked_in_poll(pid: int, limit: float = 30.0) -> None:
    """Wait until the main thread of process ``pid`` sleeps in epoll/poll/select (Linux).

    A signal sent to a scheduler that is about to block can land between the interpreter's
    last check for signals and the poll system call, and then waits for the poll to return
    (see the report on issue 5; the fix is the scheduler's, with signal.set_wakeup_fd).  The
    tests send their signals once the scheduler is blocked, so that they test what they name.
    Without /proc this does not wait.
    """
    path = f"/proc/{pid}/task/{pid}/wchan"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(path) as file:
                if file.read().strip().split(".")[0] in _POLL_WAITS:
                    return
        except OSError:
            return  # no /proc here
        time.sleep(0.005)
