"""``python -m conhook`` with no arguments: the REPL, driven through a pseudo-terminal.

Each behaviour is checked in both REPLs (``conhook/_repl.py``): the basic one (on a TERM=dumb
terminal, where the new one cannot run) and, on 3.13+, the new one (``_pyrepl``, on TERM=xterm).
The new REPL redraws the line it edits; what an input printed is what the terminal shows between
the REPL giving the terminal back (bracketed paste off) and taking it again (bracketed paste on).
"""
from __future__ import annotations

import os
import pathlib
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from tests.process_states import wait_until_blocked_in_poll

pty = pytest.importorskip("pty", reason="the REPL tests need a pseudo-terminal (POSIX)")

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_NEW_REPL = sys.version_info >= (3, 13)
KINDS = ["basic", pytest.param("new", marks=pytest.mark.skipif(not HAS_NEW_REPL, reason="the new REPL is 3.13+'s"))]
PROMPT = b"\n>>> "  # the basic REPL's primary prompt at the start of a line (readline redraws after '\r')
GIVEN_BACK = b"\x1b[?2004l"  # the new REPL ends reading an input: it runs
TAKEN = b"\x1b[?2004h"  # the new REPL reads the next input
ESCAPES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[=>])")  # colours, cursor moves, keypad modes
LIMIT = 30.0  # seconds before a read gives up: a safety net against a hung child, not a measure


class Repl:
    """``python -m conhook`` (or another module's REPL) on a pseudo-terminal: its controlling terminal."""

    # The child opens the terminal (becoming its controlling terminal: it leads a new session),
    # then execs `python ARGS`.  (subprocess, not pty.fork: no Python runs between fork
    # and exec in a process that may have threads.)
    START = ("import os, sys; os.close(os.open(os.ttyname(0), os.O_RDWR)); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")

    def __init__(self, home: pathlib.Path, kind: str = "basic", *, args=("-m", "conhook"), **environment):
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
        env.update(PYTHONPATH=str(ROOT), HOME=str(home), TERM="dumb" if kind == "basic" else "xterm",
                   PYTHON_HISTORY=str(home / "history"), PYTHONSAFEPATH="1")
        env.update(environment)
        self.new = kind == "new"
        self.fd, terminal = pty.openpty()
        try:
            self.process = subprocess.Popen([sys.executable, "-c", self.START, *args], stdin=terminal,
                                            stdout=terminal, stderr=terminal, cwd=home, env=env,
                                            start_new_session=True)
        finally:
            os.close(terminal)
        self.pid = self.process.pid
        self.seen = b""

    def read_until(self, *markers: bytes) -> bytes:
        """Everything the terminal shows up to and including the first of ``markers``."""
        deadline = time.monotonic() + LIMIT
        while not any(marker in self.seen for marker in markers):
            self._read_more(deadline, markers)
        end = min(self.seen.index(marker) + len(marker) for marker in markers if marker in self.seen)
        shown, self.seen = self.seen[:end], self.seen[end:]
        return shown.replace(b"\r\n", b"\n")

    def read_until_shown(self, text: bytes) -> None:
        """Read until the terminal has shown ``text``, escape sequences aside (the new REPL of
        3.14+ colours the code as it is typed)."""
        deadline = time.monotonic() + LIMIT
        while (end := _end_of_shown(self.seen, text)) is None:
            self._read_more(deadline, text)
        self.seen = self.seen[end:]

    def _read_more(self, deadline: float, awaited) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise AssertionError(f"the REPL did not show {awaited!r}; it showed:\n"
                                 f"{self.seen.decode(errors='replace')}")
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child has gone
            chunk = b""
        if not chunk:
            raise AssertionError(f"the REPL ended before {awaited!r}:\n{self.seen.decode(errors='replace')}")
        self.seen += chunk

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def output(self) -> bytes:
        """What the terminal shows until the REPL is ready for the next input (without escapes)."""
        if self.new:
            return ESCAPES.sub(b"", self.read_until(TAKEN)[: -len(TAKEN)])
        return self.read_until(PROMPT)[: -len(b">>> ")]

    def enter(self, line: str) -> bytes:
        """Type ``line`` and Enter; what it printed before the next primary prompt."""
        self.type(line + "\r")
        if self.new:
            self.read_until(GIVEN_BACK)
            return self.output()
        echoed, _, output = self.output().partition(b"\n")
        return output

    def enter_block(self, block: str) -> bytes:
        """Enter lines as written: typed into the basic REPL, pasted into the new one (which indents
        typed lines by itself); what the input printed."""
        if self.new:
            self.type("\x1b[200~" + block + "\n\x1b[201~")  # a bracketed paste
            # Enter only once the paste is shown: keys that arrive with it become part of it.
            self.read_until_shown(block.splitlines()[-1].lstrip().encode())
            return self.enter("")
        for line in block.splitlines():
            self.type(line + "\r")
            self.read_until(b"\n... ")
        return self.enter("")

    def close(self) -> int:
        self.type("\x04")  # Ctrl-D: end of input
        self.read_until(b"exiting conhook REPL...")
        return self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.fd)


def _end_of_shown(raw: bytes, text: bytes) -> int | None:
    """Where in ``raw`` the first showing of ``text`` ends, escape sequences aside, or None."""
    shown, ends = bytearray(), []  # ends[i]: the offset in raw just after shown[i]
    position = 0
    for escape in [*ESCAPES.finditer(raw), None]:
        stop = escape.start() if escape else len(raw)
        shown += raw[position:stop]
        ends += range(position + 1, stop + 1)
        position = escape.end() if escape else stop
    found = shown.find(text)
    return None if found < 0 else ends[found + len(text) - 1]


@pytest.fixture(params=KINDS)
def repl(tmp_path, request):
    repl = Repl(tmp_path, request.param)
    try:
        banner = repl.output()
        assert b"conhook" in banner and b"REPL" in banner
        yield repl
    finally:
        repl.kill()


def which_repl(home: pathlib.Path, module: str, flags: tuple, environment: dict) -> str:
    """Which REPL ``python FLAGS -m MODULE`` starts: an input typed with no indentation under
    ``if True:`` runs only in the new REPL, which indents it by itself."""
    repl = Repl(home, args=(*flags, "-m", module), **environment)
    try:
        repl.read_until(b"for more information.")
        if module == "asyncio":
            repl.read_until_shown(b"import asyncio")
        repl.read_until(b">>> ")
        repl.type("if True:\r'new' + 'repl'\r\r")
        shown = repl.read_until(b"'newrepl'", b"IndentationError")  # (output is not coloured)
        return "new" if shown.endswith(b"'newrepl'") else "basic"
    finally:
        repl.kill()


@pytest.mark.parametrize(("flags", "environment"), [
    ((), {"TERM": "xterm"}),
    ((), {"TERM": "xterm", "PYTHON_BASIC_REPL": "1"}),
    (("-E",), {"TERM": "xterm", "PYTHON_BASIC_REPL": "1"}),  # which ignores PYTHON_BASIC_REPL
    ((), {"TERM": "dumb"}),  # a terminal the new REPL cannot drive
], ids=["xterm", "PYTHON_BASIC_REPL", "-E", "dumb"])
def test_the_new_repl_where_asyncios_repl_is_the_new_one(tmp_path, flags, environment):
    chosen = which_repl(tmp_path, "conhook", flags, environment)
    if not (flags and sys.version_info < (3, 14)):  # 3.13.0's asyncio reads PYTHON_BASIC_REPL under -E
        assert chosen == which_repl(tmp_path, "asyncio", flags, environment)
    basic_asked = "PYTHON_BASIC_REPL" in environment and not flags
    new = HAS_NEW_REPL and environment["TERM"] == "xterm" and not basic_asked
    assert chosen == ("new" if new else "basic")  # (the probe tells the two apart)


def test_a_function_typed_line_by_line_and_called(repl):
    # The new REPL indents the lines of a block by itself; in the basic one they are typed.
    indent = "" if repl.new else "    "
    repl.type("def double(x):\r")
    repl.read_until(b"... ")  # continuation lines get the secondary prompt
    repl.type(indent + "con.idle@()\r")
    repl.read_until(b"... ")
    repl.type(indent + "return 2 * x\r")
    repl.read_until(b"... ")
    assert repl.enter("") == b""
    assert repl.enter("double@(21)") == b"42\n"
    assert repl.close() == 0


def test_nonatomic_calls_and_siblings_at_the_prompt(repl):
    assert repl.enter_block("def double(x):\n    con.idle@()\n    return 2 * x") == b""
    assert repl.enter("x = double@(21)") == b""
    assert repl.enter("x") == b"42\n"
    assert repl.enter("double@(x)") == b"84\n"
    assert repl.enter("q = con.Queue(); sibling q.put@('from a sibling'); q.get@()") == b"'from a sibling'\n"
    # The session's root, where background threads hang, then the running input.
    session = b"bootstrap - session - aio\n"
    assert repl.enter("con.idle@(); print(con.tree())") == session + b"bootstrap - <module>\n"
    assert repl.enter("print(con.tree())") == session + b"bootstrap - <module>\n"  # an input without con syntax
    assert repl.close() == 0


@pytest.mark.skipif(not HAS_NEW_REPL, reason="the new REPL is 3.13+'s")
def test_statements_entered_at_once_are_one_input(tmp_path):
    repl = Repl(tmp_path, "new")
    try:
        repl.output()
        # The sibling waits for the event that the next statement sets: they share a scheduler.
        shown = repl.enter_block("e = con.Event()\nsibling e.wait@()\ne.set()\n'one ' + 'input'\n6 * 7")
        assert shown == b"'one input'\n42\n"
    finally:
        repl.kill()


def test_errors_are_reported_and_the_repl_goes_on(repl):
    # The basic REPL names every input <stdin>; the new one numbers them and shows their lines.
    stdin = rb"<python-input-\d+>" if repl.new else rb"<stdin>"
    shown = repl.enter_block("def g():\n    yield con.idle@()")
    assert re.search(rb'File "%s", line 2' % stdin, shown) and b"generator" in shown
    shown = repl.enter("con.Event().wait@()")
    assert b"Deadlock" in shown and b"bootstrap - <module> - wait" in shown
    # As python's REPL shows what an input raised: the header, the input's frame, the API's name.
    frame = rb'  File "%s", line 1, in <module>\n' % stdin
    if repl.new:
        frame += rb"    con\.Event\(\)\.wait@\(\)\n(?: +[~^]+\n)?"  # its line, maybe underlined
    assert re.match(rb"Traceback \(most recent call last\):\n%scon\.Deadlock: deadlock: " % frame, shown)
    shown = repl.enter("1/0")
    assert shown.endswith(b"ZeroDivisionError: division by zero\n")
    assert b"conhook" not in shown  # no frame of conhook's
    assert shown.count(b'File "') == 1
    assert repl.enter("'still here'") == b"'still here'\n"


def test_ctrl_c_interrupts_the_running_input_and_returns_to_the_prompt(repl):
    repl.enter("log = []")
    repl.enter_block("def sleeper(who):\n    try:\n        con.sleep@(3600)\n    finally:\n        log.append(who)")
    repl.enter_block("def waits():\n    sibling sleeper@('sibling')\n    sleeper@('input')")
    repl.enter("sibling sleeper@('background')")  # a background thread: Ctrl-C leaves it running
    repl.type("con.idle@(); print('start' + 'ed'); waits@()\r")
    repl.read_until(b"started")  # printed by the input (its echo shows 'start' + 'ed')
    wait_until_blocked_in_poll(repl.pid)
    repl.type("\x03")  # Ctrl-C: the terminal sends SIGINT to the REPL
    assert b"KeyboardInterrupt" in repl.output()
    assert repl.enter("sorted(log)") == b"['input', 'sibling']\n"
    assert repl.enter("con.idle@(); 'usable'") == b"'usable'\n"


# Busy in atomic code, each its own way: at the top level of the input (no con syntax), in a
# con function (one that spins before its first switch, one after), in a sibling that the input's
# function started, blocked in C calls.
BUSY = {
    "spin_plain()": "def spin_plain():\n    print('spin' + 'ning')\n    while True: pass",
    "spin_at_once@()": "def spin_at_once():\n    print('spin' + 'ning')\n    while True: pass\n"
                       "    con.idle@()",
    "spin@()": "def spin():\n    con.idle@()\n    print('spin' + 'ning')\n    while True: pass",
    "spin_sibling@()": "def spin_sibling():\n    sibling spin@()\n    con.sleep@(3600)",
    "spin_blocked@()": "def spin_blocked():\n    con.idle@()\n    print('spin' + 'ning')\n"
                       "    while True: time.sleep(0.002)",
}
# SIGINT sent by the input itself as it starts: it comes while the console hands the input over
# or begins to wait for it.  (Not sent from here at once after Enter: GNU readline, catching
# signals while it reads, keeps one that comes as it returns the line until it reads again.)
AT_ONCE = ["spin_plain()", "spin_at_once@()"]


def test_ctrl_c_stops_a_busy_input_and_the_next_input_runs_every_time(repl):
    # Issue 14, item 4: the input after a Ctrl-C'd busy loop could hang.  The console's SIGINT
    # handler raised KeyboardInterrupt in the console's OS thread, which, landing before it
    # waited for the input (while handing it over), left the input spinning; and the
    # KeyboardInterrupt raised in the loop's OS thread could land outside the input's code.
    repl.enter("import os, signal, time")
    for block in BUSY.values():
        repl.enter_block(block)
    repl.enter_block("def ticker():\n    global ticks\n    while True:\n        con.sleep@(0.001)\n"
                     "        ticks += 1")
    repl.enter("ticks = 0; sibling ticker@()")  # a background thread: it must run on throughout
    rounds = [(call, False) for call in BUSY] + [(call, True) for call in AT_ONCE]
    for round, (call, at_once) in enumerate(rounds * 3):
        if at_once:
            repl.type(f"os.kill(os.getpid(), signal.SIGINT); {call}\r")
        else:
            repl.type(call + "\r")
            repl.read_until(b"spinning")  # printed by the input: it runs (its echo has 'spin' + 'ning')
            repl.type("\x03")
        assert b"KeyboardInterrupt" in repl.output(), round
        next_input = "1 + 1" if round % 2 else "con.sleep@(0); 1 + 1"
        assert repl.enter(next_input) == b"2\n", round
    assert repl.enter("t = ticks; con.sleep@(0.05); ticks > t") == b"True\n"


def test_a_server_started_at_one_prompt_answers_a_client_at_the_next(repl):
    # Issue 14, item 4: the REPL runs hosted; a top-level sibling is a background thread of the
    # session, which keeps serving while the user types (and while the console waits for a line).
    repl.enter_block("""def upper(stream):
    try:
        while True:
            stream.write@(stream.read@().upper())
    except EOFError:
        pass
    finally:
        stream.close()""")
    repl.enter_block("""def serve(listener):
    while True:
        sibling upper@(listener.accept@())""")
    repl.enter("listener = con.tcplisten@(con.ipv4addr('127.0.0.1', 0))")
    assert repl.enter("sibling serve@(listener)") == b""  # the prompt comes back at once
    port = int(repl.enter("listener.addresses[0].port").strip())
    # A client from outside, while the REPL sits at its prompt.
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as client:
        client.sendall(b"from outside")
        client.shutdown(socket.SHUT_WR)
        assert b"".join(iter(lambda: client.recv(100), b"")) == b"FROM OUTSIDE"
    # A client at the next prompt, in con code.
    repl.enter_block("""def ask(text):
    with con.tcpconnect@(listener.addresses[0]) as stream:
        stream.write@(text.encode())
        stream.shutdown_write()
        data = b''
        try:
            while True:
                data += stream.read@()
        except EOFError:
            return data.decode()""")
    assert repl.enter("ask@('at the next prompt')") == b"'AT THE NEXT PROMPT'\n"
    assert repl.close() == 0


def test_ctrl_c_at_the_prompt_discards_the_line(repl):
    repl.type("'discarded'")
    repl.read_until_shown(b"'discarded'")  # echoed
    wait_until_blocked_in_poll(repl.pid)  # reading the next key (a signal just before is seen late)
    repl.type("\x03")
    assert b"KeyboardInterrupt" in repl.output()
    assert repl.enter("'kept'") == b"'kept'\n"


def test_history_and_line_editing(repl, tmp_path):
    if not repl.new:
        pytest.importorskip("readline", reason="line editing in the basic REPL needs readline")
    repl.enter("value = 7")
    # Ctrl-P recalls the previous line; Ctrl-A goes to its start, where we type 'other'.
    repl.enter("\x10\x01other")
    assert repl.enter("othervalue") == b"7\n"
    assert repl.close() == 0
    history = tmp_path / ("history" if sys.version_info >= (3, 13) else ".python_history")
    assert "value = 7" in history.read_text().splitlines()


def test_sigusr1_prints_the_running_inputs_cactus_stack(repl):
    repl.enter_block("def waiter(e):\n    e.wait@()")
    repl.enter_block("def waits(e):\n    sibling waiter@(e)\n    con.sleep@(3600)")
    # The waiter is parked (idle let it run) before 'started' is printed.
    repl.type("e = con.Event(); sibling waiter@(e); con.idle@(); print('start' + 'ed'); waits@(e)\r")
    repl.read_until(b"started")
    wait_until_blocked_in_poll(repl.pid)
    os.kill(repl.pid, signal.SIGUSR1)
    shown = repl.read_until(b"| waiter - wait\n", b"| waiter - wait\r\n")
    shown += repl.read_until(b"| waiter - wait")
    # The session's root with its background thread, then the running input with its sibling.
    assert re.search(rb"conhook: cactus stack\nbootstrap - session - aio\n +\| waiter - wait\n"
                     rb"bootstrap - <module> - waits - sleep\n +\| waiter - wait", shown), shown
    repl.type("\x03")
    assert b"KeyboardInterrupt" in repl.output()
