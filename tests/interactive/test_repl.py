"""``python -m conhook`` with no arguments: the REPL, driven through a pseudo-terminal."""
from __future__ import annotations

import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest
from interactive_helpers import wait_until_blocked_in_poll

pty = pytest.importorskip("pty", reason="the REPL tests need a pseudo-terminal (POSIX)")

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROMPT = b"\n>>> "  # a primary prompt at the start of a line (readline redraws lines after '\r')
LIMIT = 30.0  # seconds before a read gives up: a safety net against a hung child, not a measure


class Repl:
    """``python -m conhook`` on a pseudo-terminal: the child's controlling terminal."""

    # The child opens the terminal (becoming its controlling terminal: it leads a new session),
    # then execs `python -m conhook`.  (subprocess, not pty.fork: no Python runs between fork
    # and exec in a process that may have threads.)
    START = ("import os, sys; os.close(os.open(os.ttyname(0), os.O_RDWR)); "
             "os.execv(sys.executable, [sys.executable, '-m', 'conhook'])")

    def __init__(self, home: pathlib.Path):
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
        env.update(PYTHONPATH=str(ROOT), HOME=str(home), TERM="dumb", PYTHON_HISTORY=str(home / "history"),
                   PYTHONSAFEPATH="1")
        self.fd, terminal = pty.openpty()
        try:
            self.process = subprocess.Popen([sys.executable, "-c", self.START], stdin=terminal,
                                            stdout=terminal, stderr=terminal, cwd=home, env=env,
                                            start_new_session=True)
        finally:
            os.close(terminal)
        self.pid = self.process.pid
        self.seen = b""

    def read_until(self, marker: bytes) -> bytes:
        """Everything the terminal shows up to and including ``marker``."""
        deadline = time.monotonic() + LIMIT
        while marker not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise AssertionError(f"the REPL did not show {marker!r}; it showed:\n"
                                     f"{self.seen.decode(errors='replace')}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the child has gone
                chunk = b""
            if not chunk:
                raise AssertionError(f"the REPL ended before {marker!r}:\n{self.seen.decode(errors='replace')}")
            self.seen += chunk
        shown, _, self.seen = self.seen.partition(marker)
        return (shown + marker).replace(b"\r\n", b"\n")

    def enter(self, line: str) -> bytes:
        """Type ``line`` and Enter; what it printed before the next primary prompt."""
        os.write(self.fd, line.encode() + b"\r")
        shown = self.read_until(PROMPT)
        echoed, _, output = shown.partition(b"\n")
        return output[: -len(b">>> ")]

    def close(self) -> int:
        os.write(self.fd, b"\x04")  # Ctrl-D: end of input
        self.read_until(b"exiting conhook REPL...")
        return self.process.wait()


@pytest.fixture
def repl(tmp_path):
    repl = Repl(tmp_path)
    try:
        banner = repl.read_until(PROMPT)
        assert b"conhook" in banner and b"REPL" in banner
        yield repl
    finally:
        if repl.process.poll() is None:
            repl.process.kill()
        repl.process.wait()
        os.close(repl.fd)


def test_nonatomic_calls_and_siblings_at_the_prompt(repl):
    os.write(repl.fd, b"def double(x):\r")
    repl.read_until(b"\n... ")  # continuation lines get the secondary prompt
    os.write(repl.fd, b"    con.idle@()\r")
    repl.read_until(b"\n... ")
    os.write(repl.fd, b"    return 2 * x\r")
    repl.read_until(b"\n... ")
    assert repl.enter("") == b""
    assert repl.enter("x = double@(21)") == b""
    assert repl.enter("x") == b"42\n"
    assert repl.enter("double@(x)") == b"84\n"
    assert repl.enter("q = con.Queue(); sibling q.put@('from a sibling'); q.get@()") == b"'from a sibling'\n"
    assert repl.enter("con.idle@(); print(con.tree())") == b"bootstrap - <module>\n"
    assert repl.enter("print(con.tree())") == b"bootstrap - <module>\n"  # an input without con syntax
    assert repl.close() == 0


def test_errors_are_reported_and_the_repl_goes_on(repl):
    shown = repl.enter("def g():\r    yield con.idle@()\r")
    assert b'File "<stdin>", line 2' in shown and b"generator" in shown
    shown = repl.enter("con.Event().wait@()")
    assert b"Deadlock" in shown and b"bootstrap - <module> - wait" in shown
    # As python's REPL shows what an input raised: the header, the input's frame, the API's name.
    assert shown.startswith(b'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n'
                            b"con.Deadlock: deadlock: ")
    shown = repl.enter("1/0")
    assert shown.endswith(b"ZeroDivisionError: division by zero\n")
    assert b"conhook" not in shown  # no frame of conhook's
    assert repl.enter("'still here'") == b"'still here'\n"


def test_ctrl_c_interrupts_the_running_input_and_returns_to_the_prompt(repl):
    repl.enter("log = []")
    repl.enter("def sleeper():\r    try:\r        con.sleep@(3600)\r    finally:\r        log.append('unwound')\r")
    os.write(repl.fd, b"sibling sleeper@(); con.idle@(); print('start' + 'ed'); con.sleep@(3600)\r")
    repl.read_until(b"started")  # printed by the input (its echo shows 'start' + 'ed')
    wait_until_blocked_in_poll(repl.pid)
    os.write(repl.fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to the REPL
    shown = repl.read_until(PROMPT)
    assert b"KeyboardInterrupt" in shown
    assert repl.enter("log") == b"['unwound']\n"
    assert repl.enter("con.idle@(); 'usable'") == b"'usable'\n"


def test_history_and_line_editing(repl, tmp_path):
    pytest.importorskip("readline", reason="line editing needs readline")
    repl.enter("value = 7")
    # Ctrl-P recalls the previous line; Ctrl-A goes to its start, where we type 'other'.
    os.write(repl.fd, b"\x10\x01other\r")
    repl.read_until(PROMPT)
    assert repl.enter("othervalue") == b"7\n"
    assert repl.close() == 0
    history = tmp_path / ("history" if sys.version_info >= (3, 13) else ".python_history")
    assert "value = 7" in history.read_text().splitlines()


def test_sigusr1_prints_the_running_inputs_cactus_stack(repl):
    repl.enter("def waiter(e):\r    e.wait@()\r")
    # The waiter is parked (idle let it run) before 'started' is printed.
    os.write(repl.fd, b"e = con.Event(); sibling waiter@(e); con.idle@(); print('start' + 'ed'); "
                      b"con.sleep@(3600)\r")
    repl.read_until(b"started")
    wait_until_blocked_in_poll(repl.pid)
    os.kill(repl.pid, signal.SIGUSR1)
    shown = repl.read_until(b"| waiter - wait")
    assert b"conhook: cactus stack\nbootstrap - <module> - sleep\n" in shown
    os.write(repl.fd, b"\x03")
    assert b"KeyboardInterrupt" in repl.read_until(PROMPT)
