"""``%%con`` hosted on the Jupyter kernel's own asyncio loop (issue 14, item 4): a notebook run by
nbclient on a real ipykernel.  A cell leaves a con TCP server running in the background; later
cells query it through ``con.aio@`` (asyncio streams) and through plain con code while it keeps
serving between cells; ``%con_threads`` lists it and ``%con_stop`` stops it, its ``finally`` run.
"""
from __future__ import annotations

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parents[2]

CELLS = [
    "%load_ext conhook",
    # 1: a server left running in the background; the cell ends at once
    """%%con --background
import asyncio
import con
from con import tcplisten, tcpconnect, ipv4addr, idle

log = []

def upper(stream):
    try:
        while True:
            stream.write@(stream.read@().upper())
    except EOFError:
        pass
    finally:
        stream.close()

def serve(listener):
    try:
        while True:
            sibling upper@(listener.accept@())
    finally:
        listener.close()
        log.append("server stopped")

listener = tcplisten@(ipv4addr("127.0.0.1", 0))
port = listener.addresses[0].port
sibling serve@(listener)
"served in the background"
""",
    # 2: the server is still there, between cells
    "%con_threads",
    # 3: asyncio code (asyncio streams) queries it, through aio@
    """%%con
async def ask(text):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text.encode())
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer.decode()

con_aio = con.aio@(ask("through aio"))
con_aio""",
    # 4: plain con code queries it
    """%%con
def ask_con(text):
    with tcpconnect@(ipv4addr("127.0.0.1", port)) as stream:
        stream.write@(text.encode())
        stream.shutdown_write()
        data = b""
        try:
            while True:
                data += stream.read@()
        except EOFError:
            pass
    return data.decode()

ask_con@("through con")""",
    # 5: an ordinary asyncio cell (autoawait) reaches it too, while no con cell runs
    """reader, writer = await asyncio.open_connection("127.0.0.1", port)
writer.write(b"plain asyncio"); writer.write_eof()
(await reader.read()).decode()""",
    # 6, 7: stopped; its finally blocks have run when the cell ends
    "%con_stop",
    "log",
    "%con_threads",
]


def _value(cell):
    [result] = [out for out in cell.outputs if out.output_type == "execute_result"]
    return result.data["text/plain"]


def _printed(cell):
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


def test_a_background_server_queried_from_later_cells_then_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    cells = notebook.cells
    assert _value(cells[1]) == "'served in the background'"
    assert _printed(cells[2]) == "serve\n"
    assert _value(cells[3]) == "'THROUGH AIO'"
    assert _value(cells[4]) == "'THROUGH CON'"
    assert _value(cells[5]) == "'PLAIN ASYNCIO'"
    assert _value(cells[7]) == "['server stopped']"
    assert _printed(cells[8]) == "no background threads\n"
