"""The samples beyond the echo server: chat, proxy and check.

They are con code, imported here through the import hook (they opt in with ``from con import``),
and their functions are run in-process beside client threads written with ``async def``.
"""
from __future__ import annotations

import importlib
import sys

import pytest

import conhook  # noqa: F401 - installs the import hook
import conhook.api as con

from .helpers import SAMPLES, beside, listen_both, run, start_conhook, together


@pytest.fixture(scope="module")
def samples():
    sys.path.insert(0, str(SAMPLES))
    try:
        yield {name: importlib.import_module(name) for name in ("chat", "proxy", "check")}
    finally:
        sys.path.remove(str(SAMPLES))
        for name in ("chat", "proxy", "check"):
            sys.modules.pop(name, None)


async def read_lines(stream, count, pending=b""):
    """`count` lines from `stream`, and what came after them."""
    lines = []
    while len(lines) < count:
        *got, pending = (pending + await stream.read()).split(b"\n")
        lines.extend(got)
    return lines[:count], b"\n".join(lines[count:] + [pending])


async def read_to_end(stream):
    """All bytes until the stream ends (end of stream or reset)."""
    data = b""
    try:
        while True:
            data += await stream.read()
    except (EOFError, ConnectionResetError):
        return data


# -- chat --------------------------------------------------------------------------------------

def test_chat_broadcasts_to_the_others_only_and_drops_a_slow_client(samples):
    chat = samples["chat"]
    lines = [b"%05d " % i + b"x" * 1000 for i in range(12000)]  # more than socket buffers hold

    async def main():
        listener = await listen_both()
        v4, v6 = listener.addresses

        async def clients():
            a = await con.tcpconnect(v4)
            b = await con.tcpconnect(v6)
            while True:  # both have joined once b hears a
                await a.write(b"ping\n")
                got, rest = await read_lines(b, 1)
                if got == [b"ping"]:
                    break
            slow = await con.tcpconnect(v4)
            await slow.write(b"slow here\n")
            while True:  # b drains the pings; slow has joined once b hears it
                got, rest = await read_lines(b, 1, rest)
                if got == [b"slow here"]:
                    break
            heard = []

            async def talk():
                for line in lines:
                    await a.write(line + b"\n")

            async def listen():
                got, _ = await read_lines(b, len(lines), rest)
                heard.extend(got)
            await together(talk, listen)  # slow reads nothing meanwhile
            assert heard == lines  # b heard everything, in order, though slow never read
            received = await read_to_end(slow)  # slow was dropped: its connection ends
            assert len(received) < sum(len(line) + 1 for line in lines)
            heard_by_a = b""
            with pytest.raises(TimeoutError):
                with con.timeout(0.1):
                    while True:
                        heard_by_a += await a.read()
            assert heard_by_a == b"slow here\n"  # never its own lines
            for s in (a, b, slow):
                s.close()
        await beside(lambda: chat.serve(listener), clients)
        listener.close()
    run(main)


def test_chat_counts_a_clients_backlog_in_bytes(samples):
    chat = samples["chat"]

    class Stream:
        closed = False

        def close(self):
            self.closed = True

    sender, reader = chat.Client(Stream()), chat.Client(Stream())
    clients = {sender, reader}
    line = b"x" * 99 + b"\n"
    for _ in range(chat.BACKLOG // len(line)):  # many batches, the bytes within the bound: kept
        chat.broadcast(clients, sender, line)
    assert reader.queued == chat.BACKLOG // len(line) * len(line) and not reader.stream.closed
    chat.broadcast(clients, sender, line)  # past the bound in bytes: dropped
    assert reader.stream.closed and not sender.stream.closed


def test_chat_hangs_up_on_a_line_longer_than_its_bound(samples):
    chat = samples["chat"]

    async def main():
        listener = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))

        async def clients():
            with await con.tcpconnect(listener.addresses[0]) as talker:
                with con.timeout(30):  # a guard: a server that buffers without bound never hangs up
                    try:
                        while True:
                            await talker.write(b"x" * 65536)  # no newline, ever
                    except OSError:
                        pass  # the server closed the connection
        await beside(lambda: chat.serve(listener), clients)
        listener.close()
    run(main)


# -- proxy --------------------------------------------------------------------------------------

def test_proxy_forwards_both_ways_and_closing_one_side_ends_both(samples):
    proxy = samples["proxy"]
    payload = bytes(range(256)) * 4096  # 1 MiB
    ended = []

    async def main():
        target = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        front = await listen_both()

        async def echo():
            with await target.accept() as s:
                try:
                    while True:
                        await s.write(await s.read())
                except EOFError:
                    ended.append("target saw the end")

        async def servers():
            await together(echo, lambda: proxy.serve(front, "127.0.0.1", target.addresses[0].port))

        async def client():
            with await con.tcpconnect(front.addresses[1]) as c:
                async def send():
                    await c.write(payload)

                async def receive():
                    got = b""
                    while len(got) < len(payload):
                        got += await c.read()
                    assert got == payload
                await together(send, receive)
            while not ended:  # the client closed: the proxy closes its side to the target too
                await con.sleep(0.01)
        await beside(servers, client)
        target.close()
        front.close()
    run(main)
    assert ended == ["target saw the end"]


def test_proxy_target_closing_ends_the_client_side(samples):
    proxy = samples["proxy"]

    async def main():
        target = await con.tcplisten(con.ipv6addr("::1", 0))
        front = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))

        async def greeter():
            while True:
                with await target.accept() as s:
                    await s.write(b"hello, and goodbye")

        async def servers():
            await together(greeter, lambda: proxy.serve(front, "::1", target.addresses[0].port))

        async def client():
            for _ in range(3):
                with await con.tcpconnect(front.addresses[0]) as c:
                    assert await read_to_end(c) == b"hello, and goodbye"
        await beside(servers, client)
        port = target.addresses[0].port
        target.close()

        async def down():  # the target is gone: the proxy hangs up on the client
            with await con.tcpconnect(front.addresses[0]) as c:
                assert await read_to_end(c) == b""
        await beside(lambda: proxy.serve(front, "::1", port), down)
        front.close()
    run(main)


@pytest.mark.parametrize("size", [100, 1 << 20], ids=["100B", "1MiB"])
def test_proxy_passes_a_half_close_on_and_keeps_the_reply(samples, size):
    # The client sends its request, shuts down its writing side, then reads the whole reply.
    proxy = samples["proxy"]
    payload = bytes(range(256)) * (size // 256) or b"x" * size

    async def main():
        target = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        front = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))

        async def echo_until_the_end():  # reads everything first, then answers and closes
            with await target.accept() as s:
                got = await read_to_end(s)
                await s.write(got)

        async def servers():
            await together(echo_until_the_end, lambda: proxy.serve(front, "127.0.0.1", target.addresses[0].port))

        async def client():
            with await con.tcpconnect(front.addresses[0]) as c:
                await c.write(payload)
                c.shutdown_write()
                return await read_to_end(c)
        reply = await beside(servers, client)
        target.close()
        front.close()
        return reply
    assert run(main) == payload


# -- check -------------------------------------------------------------------------------------

def test_check_reports_each_endpoint_within_its_timeout(samples):
    check = samples["check"]

    async def main():
        up = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        silent = await con.tcplisten(con.ipv6addr("::1", 0))
        rude = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        down = await con.tcplisten(con.ipv4addr("127.0.0.1", 0))
        down_port = down.addresses[0].port
        down.close()

        async def answer():
            while True:
                with await up.accept() as s:
                    await s.read()
                    await s.write(b"PONG\r\n")

        async def hang_up():
            while True:
                (await rude.accept()).close()

        async def never_answer():
            held = []
            try:
                while True:
                    held.append(await silent.accept())
            finally:
                for stream in held:
                    stream.close()

        async def servers():
            await together(answer, hang_up, never_answer)

        async def client():
            endpoints = [("127.0.0.1", up.addresses[0].port), ("::1", silent.addresses[0].port),
                         ("127.0.0.1", rude.addresses[0].port), ("127.0.0.1", down_port),
                         ("localhost", up.addresses[0].port)]
            return endpoints, await check.check_all(endpoints, 0.2, b"PING\r\n")
        endpoints, results = await beside(servers, client)
        for listener in (up, silent, rude):
            listener.close()
        return endpoints, results
    endpoints, results = run(main)
    outcomes = [results[e] for e in endpoints]
    assert outcomes[0].startswith("up (")
    assert outcomes[1] == "timed out after 0.2 s"
    assert outcomes[2] in ("closed without answering", "down: Connection reset by peer")
    assert outcomes[3].startswith("down: ") and "Connection refused" in outcomes[3]
    assert outcomes[4].startswith("up (")


def test_check_from_the_command_line():
    proc = start_conhook(["samples/check.py", "--timeout", "0.5", "127.0.0.1:1"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out.startswith("127.0.0.1:1  down: ") and "Connection refused" in out


def test_check_takes_an_ipv6_endpoint_in_brackets():
    proc = start_conhook(["samples/check.py", "--timeout", "0.5", "[::1]:1"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out.startswith("[::1]:1  down: ") and "Connection refused" in out


def test_check_without_endpoints_prints_its_usage_and_exits_2():
    proc = start_conhook(["samples/check.py"])
    out, _ = proc.communicate(timeout=60)  # (stderr goes to out)
    assert proc.returncode == 2
    assert out.startswith("usage: python -m conhook samples/check.py")
