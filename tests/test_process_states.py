"""The helper that waits for a process to block in its poll before a test signals it."""
from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from tests.process_states import wait_until_blocked_in_poll

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")

# A hosted front end's shape: the main thread waits for an OS thread that sleeps in its poll.
HOSTED = """\
import os, select, threading
r, w = os.pipe()
thread = threading.Thread(target=select.select, args=([r], [], []))
thread.start()
print("ready", flush=True)
thread.join()
"""


@contextlib.contextmanager
def _started(source: str):
    """A Python running `source` once it printed "ready"; killed, reaped and its pipes closed at
    the end.  (Its stdin is a pipe that stays open: a select on fd 0 blocks.)"""
    with subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, stdin=subprocess.PIPE) as process:
        try:
            assert process.stdout.readline() == b"ready\n"
            yield process
        finally:
            process.kill()


def test_a_main_thread_waiting_for_a_thread_blocked_in_its_poll_is_blocked():
    with _started(HOSTED) as process:
        wait_until_blocked_in_poll(process.pid)  # returns (would raise after its limit)


def test_a_process_that_never_blocks_fails_the_wait_rather_than_letting_the_test_go_on():
    with _started("print('ready', flush=True)\nwhile True: pass") as process:
        with pytest.raises(AssertionError, match=f"process {process.pid} was not seen blocked"):
            wait_until_blocked_in_poll(process.pid, limit=0.5)


# The hosted REPL's shape while an input runs: the console selects on the signal wake-up fd,
# and the loop's OS thread runs the input (here: spins).
CONSOLE_WHILE_AN_INPUT_RUNS = """\
import select, threading
def loop():
    while True:
        pass
threading.Thread(target=loop, daemon=True).start()
print("ready", flush=True)
select.select([0], [], [])
"""


def test_a_main_thread_in_select_beside_a_busy_thread_is_not_blocked():
    with _started(CONSOLE_WHILE_AN_INPUT_RUNS) as process:
        with pytest.raises(AssertionError, match="was not seen blocked"):
            wait_until_blocked_in_poll(process.pid, limit=0.5)
