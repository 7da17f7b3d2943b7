"""The helper that waits for a process to block in its poll before a test signals it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from interactive_helpers import wait_until_blocked_in_poll

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


def _started(source: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"
    return process


def test_a_main_thread_waiting_for_a_thread_blocked_in_its_poll_is_blocked():
    process = _started(HOSTED)
    try:
        wait_until_blocked_in_poll(process.pid)  # returns (would raise after its limit)
    finally:
        process.kill()
        process.wait()


def test_a_process_that_never_blocks_fails_the_wait_rather_than_letting_the_test_go_on():
    process = _started("print('ready', flush=True)\nwhile True: pass")
    try:
        with pytest.raises(AssertionError, match=f"process {process.pid} was not seen blocked"):
            wait_until_blocked_in_poll(process.pid, limit=0.5)
    finally:
        process.kill()
        process.wait()


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
    process = subprocess.Popen([sys.executable, "-c", CONSOLE_WHILE_AN_INPUT_RUNS], stdout=subprocess.PIPE,
                               stdin=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"ready\n"
        with pytest.raises(AssertionError, match="was not seen blocked"):
            wait_until_blocked_in_poll(process.pid, limit=0.5)
    finally:
        process.kill()
        process.wait()
