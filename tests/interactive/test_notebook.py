"""``%%con`` end to end: a notebook executed by nbclient on a real ipykernel.

The first notebook's server and clients are siblings talking through ``Queue``s; the second
runs a TCP echo server and its clients on 127.0.0.1, once the networking API (``tcplisten``,
``tcpconnect``) is in the tree.
"""
from __future__ import annotations

import asyncio
import os
import pathlib
import re

import pytest

import conhook.api
from tests.process_states import wait_until_blocked_in_poll

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parents[2]
READY = "waiting to be interrupted"
BUSY = "busy until interrupted"

CELLS = [
    "%load_ext conhook",
    # 1: non-atomic calls at top level; the trailing expression is the cell's value
    """%%con
from con import idle, sleep, Event, Queue

def double(x):
    idle@()
    return 2 * x

x = double@(21)
x""",
    # 2: a server and its clients as siblings of the cell (prejoined)
    """%%con
requests = Queue()
log = []

def server(requests):
    while True:
        request = requests.get@()
        if request is None:
            return
        client, value, reply = request
        log.append(f"served {client}")
        reply.put@(double@(value))

def client(name, requests, answers):
    reply = Queue(1)
    requests.put@((name, len(name), reply))
    answers[name] = reply.get@()

def clients(requests, answers):
    for name in ("ann", "bob", "carol"):
        sibling client@(name, requests, answers)

answers = {}
sibling server@(requests)
clients@(requests, answers)      # returns once every client has finished (prejoin)
requests.put@(None)
sorted(answers.items())""",
    # 3: an ordinary cell sees what %%con cells assigned
    "x + len(log)",
    # 4: the kernel's own asyncio loop is running around the cell's scheduler
    """%%con
import asyncio, threading
idle@()
(asyncio.get_running_loop().is_running(), threading.current_thread() is threading.main_thread())""",
    # 5: interrupted while its threads wait
    f"""%%con
unwound = []

def sleeper():
    try:
        sleep@(3600)
    finally:
        unwound.append("sleeper")

sibling sleeper@()
idle@()                          # the sleeper is now in its try block
try:
    print({READY!r}, flush=True)  # the interrupt comes once the scheduler waits in its poll
    sleep@(3600)
finally:
    unwound.append("cell")""",
    # 6: the kernel is still usable, and the interrupted threads ran their finally blocks
    """%%con
(sorted(unwound), double@(4))""",
    # 7: interrupted while it runs atomic code (a busy loop)
    f"""%%con
import time
spins = 0
print({BUSY!r}, flush=True)
while True:
    spins += 1""",
    # 8, 9: a failing cell, con and plain: the same frames, from the cell's own line
    """%%con
def fail():
    idle@()
    raise ValueError("boom")
fail@()""",
    """def fail():
    raise ValueError("boom")
fail()""",
]


class InterruptingClient(nbclient.NotebookClient):
    """Interrupts the kernel when a cell prints that it is ready to be interrupted."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream" and READY in msg["content"].get("text", ""):
            asyncio.ensure_future(self._interrupt())
        if msg["msg_type"] == "stream" and BUSY in msg["content"].get("text", ""):
            asyncio.ensure_future(self._interrupt_busy())
        return super().output(outs, msg, display_id, cell_index)

    async def _interrupt_busy(self):
        await asyncio.sleep(0.3)  # well into the loop
        await nbclient.util.ensure_async(self.km.interrupt_kernel())

    async def _interrupt(self):
        pid = self.km.provisioner.process.pid
        await asyncio.get_running_loop().run_in_executor(None, wait_until_blocked_in_poll, pid)
        await nbclient.util.ensure_async(self.km.interrupt_kernel())


def _value(cell):
    [result] = [out for out in cell.outputs if out.output_type == "execute_result"]
    return result.data["text/plain"]


def test_notebook_with_con_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    for failing in (5, 7, 8, 9):
        notebook.cells[failing].metadata["tags"] = ["raises-exception"]
    client = InterruptingClient(notebook, timeout=60, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    cells = notebook.cells
    assert _value(cells[1]) == "42"
    assert _value(cells[2]) == "[('ann', 6), ('bob', 6), ('carol', 10)]"
    assert _value(cells[3]) == "45"
    assert _value(cells[4]) == "(True, True)"
    [error] = [out for out in cells[5].outputs if out.output_type == "error"]
    assert error.ename == "KeyboardInterrupt"
    # Raised by bootstrap once every thread had unwound: no frame is shown, neither the line
    # that runs the magic nor conhook's own.
    assert not any(text in line for line in error.traceback
                   for text in ("conhook", "run_cell_magic", "Cell In["))
    assert _value(cells[6]) == "(['cell', 'sleeper'], 8)"
    # A busy loop interrupted: the cell's frame is at the loop's line (5 or 6), not its first.
    [error] = [out for out in cells[7].outputs if out.output_type == "error"]
    assert error.ename == "KeyboardInterrupt"
    shown = re.sub("\x1b\\[[0-9;]*m", "", "\n".join(error.traceback))
    assert re.search(r"----> 5 while True:|----> 6     spins \+= 1", shown), shown
    assert not any(layer in shown for layer in ("_runtime/", "_network/", "_compiler/"))
    # A failing cell's traceback starts at the cell's line, as a plain cell's does: not at the
    # line that runs the magic (get_ipython().run_cell_magic(...)), nor its hidden frames.
    shown, plain = (_frames(cells[i]) for i in (8, 9))
    assert [re.sub(r"line \d+", "line L", frame) for frame in shown] == [
        re.sub(r"line \d+", "line L", frame) for frame in plain] == [
        "Cell In[n], line L", "Cell In[n], line L, in fail()"]
    assert shown == ["Cell In[n], line 5", "Cell In[n], line 4, in fail()"]  # (line 1: %%con)


def _frames(cell):
    """The frame headers of a cell's error, the cell numbers made alike."""
    [error] = [out for out in cell.outputs if out.output_type == "error"]
    assert error.ename == "ValueError"
    text = re.sub("\x1b\\[[0-9;]*m", "", "\n".join(error.traceback))
    return [re.sub(r"In\[\d+\]", "In[n]", line) for line in text.splitlines()
            if line.startswith(("Cell In[", "File ", "    [... skipping"))]


TCP_CELL = """%%con
from con import tcplisten, tcpconnect, ipv4addr

def echo(stream):
    try:
        while True:
            stream.write@(stream.read@())
    except EOFError:
        pass
    finally:
        stream.close()

def serve(listener, n):
    for _ in range(n):
        sibling echo@(listener.accept@())

def client(address, text, replies):
    with tcpconnect@(address) as stream:
        stream.write@(text.encode())
        stream.shutdown_write()
        data = b""
        try:
            while True:
                data += stream.read@()
        except EOFError:
            pass
    replies[text] = data.decode()

def clients(address, replies):
    for text in ("ann", "bob", "carol"):
        sibling client@(address, text, replies)

listener = tcplisten@(ipv4addr("127.0.0.1", 0))
replies = {}
sibling serve@(listener, 3)
clients@(listener.addresses[0], replies)
listener.close()
sorted(replies.items())"""


@pytest.mark.skipif(not hasattr(conhook.api, "tcplisten"),
                    reason="the networking API (tcplisten, tcpconnect) is not in this tree yet")
def test_notebook_tcp_server_and_clients_as_siblings(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in ("%load_ext conhook", TCP_CELL)]
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert _value(notebook.cells[1]) == "[('ann', 'ann'), ('bob', 'bob'), ('carol', 'carol')]"
