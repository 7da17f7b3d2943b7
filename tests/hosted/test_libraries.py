"""The asyncio ecosystem from con threads, against real local servers (issue 14, Proof).

Each library is optional for the suite: a test skips, saying why, where its wheel is missing.
The con functions are spelled as the compiler emits them (``await con.aio(x)`` for ``con.aio@(x)``).
"""
from __future__ import annotations

import asyncio
import hashlib

import pytest

import conhook.api as con

from runtime.helpers import prejoining

BODY = bytes(range(256)) * 16384  # 4 MiB, for streaming


async def _aiohttp_server(aiohttp_web, handlers):
    """An aiohttp server on a free loopback port, serving `handlers`; (runner, base URL)."""
    app = aiohttp_web.Application()
    for path, handler in handlers.items():
        app.router.add_get(path, handler)
    runner = aiohttp_web.AppRunner(app)
    await runner.setup()
    site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_aiohttp_client_from_100_siblings_against_an_aiohttp_server_with_con_handlers(host_loop):
    aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is not installed for this Python")
    from aiohttp import web

    async def body_of(n):  # con code behind the aiohttp handler (item 3)
        await con.sleep(0.001)
        return f"body {n}"

    async def handler(request):
        return web.Response(text=await con.from_aio(body_of, int(request.query["n"])))

    bodies = {}

    async def fetch(session, base, n):
        response = await con.aio(session.get(f"{base}/?n={n}"))
        bodies[n] = await con.aio(response.text())

    @prejoining
    async def requests(scope, session, base):
        for n in range(100):
            scope.start(fetch, session, base, n)

    async def main():
        runner, base = await con.aio(_aiohttp_server(web, {"/": handler}))
        session = aiohttp.ClientSession()
        try:
            await requests(session, base)
        finally:
            await con.aio(session.close())
            await con.aio(runner.cleanup())

    con.bootstrap(main, loop=host_loop)
    assert bodies == {n: f"body {n}" for n in range(100)}


def test_httpx_async_client_and_a_streamed_body_driven_from_con_code(host_loop):
    httpx = pytest.importorskip("httpx", reason="httpx is not installed for this Python")
    pytest.importorskip("aiohttp", reason="aiohttp (the local server) is not installed for this Python")
    from aiohttp import web

    async def small(request):
        return web.json_response({"hello": "con"})

    async def large(request):
        return web.Response(body=BODY)

    async def main():
        runner, base = await con.aio(_aiohttp_server(web, {"/small": small, "/large": large}))
        client = httpx.AsyncClient()
        try:
            response = await con.aio(client.get(f"{base}/small"))
            small_json = response.json()
            request = client.build_request("GET", f"{base}/large")
            response = await con.aio(client.send(request, stream=True))
            chunks = response.aiter_bytes()
            digest, size, count = hashlib.sha256(), 0, 0
            while True:
                try:
                    chunk = await con.aio(chunks.__anext__())
                except StopAsyncIteration:
                    break
                digest.update(chunk)
                size += len(chunk)
                count += 1
            await con.aio(response.aclose())
            return small_json, size, digest.hexdigest(), count
        finally:
            await con.aio(client.aclose())
            await con.aio(runner.cleanup())

    small_json, size, digest, chunks = con.bootstrap(main, loop=host_loop)
    assert small_json == {"hello": "con"}
    assert (size, digest) == (len(BODY), hashlib.sha256(BODY).hexdigest())
    assert chunks > 1  # streamed, not read at once


def test_a_websockets_server_written_in_con_code_and_a_client_through_aio(host_loop):
    pytest.importorskip("websockets", reason="websockets is not installed for this Python")
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def shout(websocket):  # the server's handler: con code, through from_aio
        async for message in _messages(websocket):
            await con.sleep(0)
            await con.aio(websocket.send(message.upper()))

    async def _messages(websocket):  # (con code: aio@ on each receive, until the peer closes)
        from websockets.exceptions import ConnectionClosedOK
        while True:
            try:
                yield await con.aio(websocket.recv())
            except ConnectionClosedOK:
                return

    async def handler(websocket):
        await con.from_aio(shout, websocket)

    async def main():
        server = await con.aio(serve(handler, "127.0.0.1", 0))
        port = next(iter(server.sockets)).getsockname()[1]
        client = await con.aio(connect(f"ws://127.0.0.1:{port}"))
        replies = []
        for word in ["con", "threads", "asyncio"]:
            await con.aio(client.send(word))
            replies.append(await con.aio(client.recv()))
        await con.aio(client.close())
        server.close()
        await con.aio(server.wait_closed())
        return replies

    assert con.bootstrap(main, loop=host_loop) == ["CON", "THREADS", "ASYNCIO"]


def test_an_aiosqlite_transaction_interrupted_midway_is_rolled_back(host_loop, tmp_path):
    aiosqlite = pytest.importorskip("aiosqlite", reason="aiosqlite is not installed for this Python")
    tasks = []

    async def midway():
        tasks.append(asyncio.current_task())
        await asyncio.sleep(10)

    async def transfer(db):
        try:
            with con.timeout(0.05):
                await con.aio(db.execute("UPDATE accounts SET balance = balance - 10 WHERE name = 'a'"))
                await con.aio(midway())  # interrupted here, between the two updates
                await con.aio(db.execute("UPDATE accounts SET balance = balance + 10 WHERE name = 'b'"))
                await con.aio(db.commit())
        except TimeoutError:
            await con.aio(db.rollback())
            raise

    async def main():
        db = await con.aio(aiosqlite.connect(tmp_path / "bank.db"))
        try:
            await con.aio(db.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)"))
            await con.aio(db.executemany("INSERT INTO accounts VALUES (?, ?)", [("a", 100), ("b", 0)]))
            await con.aio(db.commit())
            try:
                await transfer(db)
            except TimeoutError:
                pass
            cursor = await con.aio(db.execute("SELECT name, balance FROM accounts ORDER BY name"))
            rows = await con.aio(cursor.fetchall())
            cursor = await con.aio(db.execute("PRAGMA integrity_check"))
            check = await con.aio(cursor.fetchone())
            return rows, check, db.in_transaction
        finally:
            await con.aio(db.close())

    rows, check, in_transaction = con.bootstrap(main, loop=host_loop)
    assert [tuple(row) for row in rows] == [("a", 100), ("b", 0)]
    assert tuple(check) == ("ok",) and not in_transaction
    assert tasks[0].done() and tasks[0].cancelled()  # the Task finished before the con thread went on
