"""The TLS stream over memory streams and socket pairs: the handshake and its facts, the
stream contract, ending a connection (close_notify, truncation, unwrap), broken streams,
TLS inside TLS, and 16 MiB each way at once."""
from __future__ import annotations

import hashlib
import os
import socket
import ssl

import pytest

import conhook.api as con
from conhook._network.stream_contract import ByteStream
from conhook.testing import memory_stream_pair

from ..helpers import run, together


async def tls_pair(certs, a=None, b=None, client_alpn=None, server_alpn=None, **kwargs):
    """(client, server) TLS streams over a memory pair (or the streams given)."""
    if a is None:
        a, b = memory_stream_pair()
    client = await con.tls_wrap(a, certs.client_context(client_alpn), server_hostname="localhost",
                                **kwargs)
    server = await con.tls_wrap(b, certs.server_context(alpn=server_alpn), server_side=True)
    return client, server


async def handshake_both(client, server):
    async def c():
        await client.handshake()

    async def s():
        await server.handshake()
    await together(c, s)


def socket_pair():
    a, b = socket.socketpair()
    return con.Stream(a), con.Stream(b)


# -- the handshake and its facts ----------------------------------------------------------------

def test_facts_after_the_handshake_and_a_clear_error_before(certs):
    async def main():
        client, server = await tls_pair(certs, client_alpn=["h2", "http/1.1"], server_alpn=["http/1.1"])
        for fact in ("version", "cipher", "selected_alpn_protocol", "getpeercert"):
            with pytest.raises(RuntimeError, match="handshake has not happened yet"):
                getattr(client, fact)()
        await handshake_both(client, server)
        assert client.version() == server.version() == "TLSv1.3"
        assert client.cipher() == server.cipher() and client.cipher()[1] == "TLSv1.3"
        assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "http/1.1"
        assert ("DNS", "localhost") in client.getpeercert()["subjectAltName"]
        assert server.getpeercert() is None  # the client sent no certificate
        await client.handshake()  # again: nothing to do
        client.close()
        server.close()
    run(main)


def test_first_read_and_write_run_the_handshake_and_data_flows_both_ways(certs):
    async def main():
        client, server = await tls_pair(certs)

        async def c():
            await client.write(b"hello")
            assert await client.read() == b"HELLO"

        async def s():
            await server.write((await server.read()).upper())
        await together(c, s)
        assert client.version() == "TLSv1.3"
        client.close()
        server.close()
    run(main)


def test_wrong_hostname_is_the_ssl_modules_own_error(certs):
    async def main():
        a, b = memory_stream_pair()
        client = await con.tls_wrap(a, certs.client_context(), server_hostname="wrong.example")
        server = await con.tls_wrap(b, certs.server_context(), server_side=True)

        async def c():
            with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
                await client.handshake()
            with pytest.raises(con.BrokenStreamError, match="handshake failed"):
                await client.read()

        async def s():
            with pytest.raises(ssl.SSLError):
                await server.handshake()
        await together(c, s)
        client.close()
        server.close()
    run(main)


def test_untrusted_certificate_is_the_ssl_modules_own_error(certs):
    async def main():
        a, b = memory_stream_pair()
        client = await con.tls_wrap(a, certs.client_context(), server_hostname="localhost")
        server = await con.tls_wrap(b, certs.server_context(cert=certs.stranger), server_side=True)

        async def c():
            with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
                await client.write(b"x")

        async def s():
            with pytest.raises(ssl.SSLError, match="UNKNOWN_CA|unknown ca"):
                await server.read()
        await together(c, s)
        client.close()
        server.close()
    run(main)


def test_a_second_reader_is_an_error(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)

        async def first():
            assert await client.read() == b"late"

        async def second():
            await con.sleep(0.01)
            with pytest.raises(RuntimeError, match="already reading"):
                await client.read()
            await server.write(b"late")
        await together(first, second)
        client.close()
        server.close()
    run(main)


def test_renegotiation_is_refused_on_the_context(certs):
    async def main():
        ctx = certs.client_context()
        assert not ctx.options & ssl.OP_NO_RENEGOTIATION
        a, _ = memory_stream_pair()
        s = await con.tls_wrap(a, ctx, server_hostname="localhost")
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
        s.close()
    run(main)


def test_wrapping_sets_the_renegotiation_option_without_the_options_enum(certs):
    """ssl.SSLContext.options makes an enum.Flag at every get and set (thousands of instructions
    per connection): the wrap reads and sets the option as a plain int, once per context."""
    class CountingContext(ssl.SSLContext):
        gets = 0

        @property
        def options(self):
            CountingContext.gets += 1
            return super().options

        @options.setter
        def options(self, value):
            ssl.SSLContext.options.__set__(self, value)

    async def main():
        ctx = CountingContext(ssl.PROTOCOL_TLS_CLIENT)
        a, _ = memory_stream_pair()
        s = await con.tls_wrap(a, ctx, server_hostname="localhost")
        assert CountingContext.gets == 0
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
        s.close()
    run(main)


def test_wrapping_a_socket_stream_takes_no_abc_instance_check(certs, monkeypatch):
    """The common transport, a socket stream, is known by its type: isinstance against the
    ByteStream ABC (twice per wrap: is it a stream, is it TLS) costs about 1,000 instructions."""
    import abc
    checks = []
    check = abc.ABCMeta.__instancecheck__
    monkeypatch.setattr(abc.ABCMeta, "__instancecheck__",
                        lambda cls, instance: checks.append(cls) or check(cls, instance))

    async def main():
        a, b = socket_pair()
        checks.clear()
        s = await con.tls_wrap(a, certs.client_context(), server_hostname="localhost")
        assert checks == []
        s.close()
        b.close()
    run(main)


# -- ending a connection -------------------------------------------------------------------------

def test_close_sends_close_notify_so_the_peer_reads_end_of_stream(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        await server.write(b"last words")
        server.close()
        assert await client.read() == b"last words"
        with pytest.raises(EOFError, match="close_notify"):
            await client.read()
        client.close()
    run(main)


def test_truncation_is_an_error_by_default(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        await server.write(b"partial")
        server.transport.close()  # the connection ends without close_notify
        assert await client.read() == b"partial"
        with pytest.raises(ssl.SSLEOFError, match="without close_notify.*truncated"):
            await client.read()
        with pytest.raises(con.BrokenStreamError):
            await client.read()
        client.close()
    run(main)


def test_truncation_is_end_of_stream_when_https_compatible(certs):
    async def main():
        client, server = await tls_pair(certs, https_compatible=True)
        await handshake_both(client, server)
        await server.write(b"partial")
        server.transport.close()
        assert await client.read() == b"partial"
        with pytest.raises(EOFError, match="https_compatible"):
            await client.read()
        client.close()
    run(main)


def test_close_sends_nothing_when_the_transport_cannot_take_it_at_once(certs):
    async def main():
        a, b = memory_stream_pair(max_buffer=1000)
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        assert a.write_nowait(b"x" * 2000) == 1000  # the room taken: close_notify cannot go at once
        client.close()
        assert await b.read() == b"x" * 1000
        with pytest.raises(EOFError):
            await b.read()  # nothing more came
        server.close()
    run(main)


def test_shutdown_write_is_a_half_close(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        await client.write(b"question")
        client.shutdown_write()
        with pytest.raises(BrokenPipeError):
            await client.write(b"more")
        assert await server.read() == b"question"
        with pytest.raises(EOFError):
            await server.read()
        await server.write(b"answer")
        assert await client.read() == b"answer"
        client.close()
        server.close()
    run(main)


def test_unwrap_returns_the_plain_stream(certs):
    async def main():
        a, b = memory_stream_pair()
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        await client.write(b"over tls")
        assert await server.read() == b"over tls"
        got = {}

        async def c():
            got["client"] = await client.unwrap()
            await got["client"].write(b"plain from client")

        async def s():
            got["server"] = await server.unwrap()
            await got["server"].write(b"plain from server")
            assert await got["server"].read() == b"plain from client"
        await together(c, s)
        assert got["client"] is a and got["server"] is b
        assert await a.read() == b"plain from server"
        assert client.closed and not a.closed
        client.close()  # does not touch the plain stream any more
        assert not a.closed
        a.close()
        b.close()
    run(main)


def test_unwrap_keeps_bytes_that_came_after_the_peers_close_notify(certs):
    async def main():
        a, b = memory_stream_pair()
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)

        async def s():
            plain = await server.unwrap()  # sends close_notify, waits for the client's
            await plain.write(b"plain at once")

        async def c():
            await con.sleep(0.02)  # the server's close_notify and its plain bytes are both there
            with pytest.raises(EOFError):
                await client.read()  # takes them both from the memory stream
            plain = await client.unwrap()
            assert await plain.read() == b"plain at once"
            plain.close()
        await together(s, c)
        b.close()
    run(main)


# -- broken streams -----------------------------------------------------------------------------

def test_interrupted_read_leaves_the_stream_broken_and_says_so(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await client.read()  # waits for the transport: TLS work under way
        with pytest.raises(con.BrokenStreamError, match="read@\\(\\) was interrupted") as info:
            await client.read()
        assert isinstance(info.value.__cause__, con.Interrupted)
        with pytest.raises(con.BrokenStreamError):
            await client.write(b"x")
        client.close()
        server.close()
    run(main)


def test_interrupted_write_leaves_the_stream_broken_and_says_so(certs):
    async def main():
        a, b = memory_stream_pair(max_buffer=4096)
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await client.write(b"x" * 100_000)  # nobody reads: it waits for room
        with pytest.raises(con.BrokenStreamError, match="write@\\(\\) was interrupted"):
            await client.write(b"x")
        client.close()
        server.close()
    run(main)


def test_an_interruption_at_entry_leaves_the_stream_as_it_was(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)

        with pytest.raises(TimeoutError):
            with con.timeout(0.01):
                try:
                    await con.sleep(1)
                except con.Interrupted:
                    await client.read()  # already interrupted: raises at entry, before any TLS work
        await server.write(b"still fine")
        assert await client.read() == b"still fine"
        client.close()
        server.close()
    run(main)


def test_io_after_close_is_ebadf(certs):
    async def main():
        client, server = await tls_pair(certs)
        client.close()
        client.close()
        assert client.closed
        with pytest.raises(OSError, match="closed TLS stream"):
            await client.read()
        server.close()
    run(main)


# -- TLS inside TLS, and volume -----------------------------------------------------------------

def test_tls_inside_tls(certs):
    async def main():
        outer_c, outer_s = await tls_pair(certs)  # e.g. to a proxy
        inner_c, inner_s = await tls_pair(certs, outer_c, outer_s)  # end to end through it

        async def c():
            await inner_c.write(b"secret")
            assert await inner_c.read() == b"SECRET"
            inner_c.close()

        async def s():
            await inner_s.write((await inner_s.read()).upper())
            with pytest.raises(EOFError):
                await inner_s.read()
            inner_s.close()
        await together(c, s)
        assert inner_c.version() == outer_c.version() == "TLSv1.3"
        assert outer_c.closed and outer_s.closed
    run(main)


def test_16_mib_each_way_at_once_checked_by_hash(certs):
    size = 16 << 20

    async def main():
        client, server = await tls_pair(certs, *socket_pair())
        digests = {}

        def sender(stream, name):
            async def send():
                data = os.urandom(1 << 20)
                h = hashlib.sha256()
                for i in range(size // len(data)):
                    chunk = data[i:] + data[:i]
                    h.update(chunk)
                    await stream.write(chunk)
                stream.shutdown_write()
                digests[name + " sent"] = h.hexdigest()
            return send

        def receiver(stream, name):
            async def receive():
                h = hashlib.sha256()
                n = 0
                try:
                    while True:
                        data = await stream.read()
                        n += len(data)
                        h.update(data)
                except EOFError:
                    pass
                digests[name + " received"] = (h.hexdigest(), n)
            return receive
        await together(sender(client, "client"), receiver(client, "client"),
                       sender(server, "server"), receiver(server, "server"))
        assert digests["server received"] == (digests["client sent"], size)
        assert digests["client received"] == (digests["server sent"], size)
        client.close()
        server.close()
    run(main)


# -- reading without waste -----------------------------------------------------------------------

class CountingSSLObject:
    """An SSLObject whose read() and do_handshake() count the SSLWantReadError they raise."""

    def __init__(self, ssl_object):
        self.ssl_object = ssl_object
        self.wants = self.handshake_wants = 0

    def read(self, *args):
        try:
            return self.ssl_object.read(*args)
        except ssl.SSLWantReadError:
            self.wants += 1
            raise

    def do_handshake(self):
        try:
            return self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            self.handshake_wants += 1
            raise

    def __getattr__(self, name):
        return getattr(self.ssl_object, name)


def test_a_read_with_nothing_buffered_feeds_the_ssl_object_before_asking_it(certs):
    """SSLWantReadError costs microseconds to make (more than encrypting a small record): a read
    that finds nothing in the SSL object or its incoming BIO receives first."""
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        counting = server._ssl = CountingSSLObject(server._ssl)

        async def c():
            for i in range(20):
                await client.write(b"ping %d" % i)
                assert await client.read() == b"PING %d" % i
            client.close()

        async def s():
            with pytest.raises(EOFError):
                while True:
                    await server.write((await server.read()).upper())
        await together(c, s)
        assert counting.wants == 0
        server.close()
    run(main)


def test_a_server_waits_for_the_client_hello_before_its_first_handshake_step(certs):
    """The server's handshake asks the SSL object for nothing before the ClientHello is in: one
    SSLWantReadError in all, when its flight is out and it waits for the client's Finished."""
    async def main():
        client, server = await tls_pair(certs)
        counting = server._ssl = CountingSSLObject(server._ssl)
        await handshake_both(client, server)
        assert counting.handshake_wants == 1
        assert server.version() == "TLSv1.3"
        client.close()
        server.close()
    run(main)


def test_bytes_already_in_the_ssl_object_or_its_bio_are_read_without_waiting(certs):
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        await client.write(b"one")
        await client.write(b"two")  # a second record, in the BIO behind the first
        client.shutdown_write()
        got = b""
        with pytest.raises(EOFError, match="close_notify"):
            while True:
                got += await server.read(2)  # leaves part of each record in the SSL object
        assert got == b"onetwo"
        client.close()
        server.close()
    run(main)


class Trickle(ByteStream):
    """A stream over another that hands at most `size` bytes per read@ (to split TLS records and
    their 5-byte headers between reads) and counts the ways a write goes."""

    def __init__(self, stream, size=65536):
        self.stream, self.size = stream, size
        self.writes = self.nowaits = 0

    async def read(self, max_bytes=65536):
        return await self.stream.read(min(max_bytes, self.size))

    async def write(self, data):
        self.writes += 1
        await self.stream.write(data)

    def write_nowait(self, data):
        self.nowaits += 1
        return self.stream.write_nowait(data)

    def shutdown_write(self):
        self.stream.shutdown_write()

    def close(self):
        self.stream.close()

    @property
    def closed(self):
        return self.stream.closed


def test_a_read_that_ends_inside_a_record_receives_before_asking_the_ssl_object(certs):
    """Bulk: 80 KiB in one write is five records; the server's first transport read takes 64 KiB
    (three records and part of the fourth).  The read after the third record knows, from the
    record headers fed, that the rest of the fourth is not in, and receives first."""
    async def main():
        client, server = await tls_pair(certs)
        await handshake_both(client, server)
        counting = server._ssl = CountingSSLObject(server._ssl)
        payload = os.urandom(80 * 1024)

        async def c():
            await client.write(payload)

        async def s():
            got = b""
            while len(got) < len(payload):
                got += await server.read()
            assert got == payload
        await together(c, s)
        assert counting.wants == 0
        client.close()
        server.close()
    run(main)


@pytest.mark.parametrize("size", [1, 3, 4, 6, 700])
def test_record_headers_split_between_transport_reads_are_followed(certs, size):
    """Transport reads of `size` bytes split records and their headers anywhere: every record
    arrives whole and the SSL object is asked only once one is in (no SSLWantReadError)."""
    async def main():
        a, b = memory_stream_pair()
        trickle = Trickle(b, size)
        client, server = await tls_pair(certs, a, trickle)
        await handshake_both(client, server)
        counting = server._ssl = CountingSSLObject(server._ssl)
        messages = [os.urandom(n) for n in (1, 2, 3, 64, 700, 5000)]

        async def c():
            for message in messages:
                await client.write(message)
            client.shutdown_write()

        async def s():
            got = b""
            with pytest.raises(EOFError, match="close_notify"):
                while True:
                    got += await server.read()
            assert got == b"".join(messages)
        await together(c, s)
        assert counting.wants == 0
        client.close()
        server.close()
    run(main)


def test_bytes_that_are_not_tls_records_are_an_error_not_a_wait(certs):
    """A header announcing more than a TLS record can hold stops the record tracking: the SSL
    object is asked, and its error raised, rather than waiting for 64 KiB that never come."""
    async def main():
        a, b = memory_stream_pair()
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        await a.write(b"\x17\x03\x03\xff\xff" + b"x" * 100)
        with con.timeout(5):  # (a hang guard only)
            with pytest.raises(ssl.SSLError):
                await server.read()
        client.close()
        server.close()
    run(main)


def test_a_small_write_hands_its_records_on_at_once_in_one_call(certs):
    """The write fast path: nobody sending, one chunk: one write_nowait to the transport, no
    write@ (no lock, no coroutine of the transport's)."""
    async def main():
        a, b = memory_stream_pair()
        counted = Trickle(a)
        client, server = await tls_pair(certs, counted, b)
        await handshake_both(client, server)
        counted.writes = counted.nowaits = 0
        for i in range(10):
            await client.write(b"ping %d" % i)
            assert await server.read() == b"ping %d" % i
        assert (counted.writes, counted.nowaits) == (0, 10)
        client.close()
        server.close()
    run(main)


def test_the_handshake_hands_its_flights_on_at_once(certs):
    """A handshake's flights go to the transport by write_nowait when it takes them whole: no
    write@ (no sending lock, no coroutine of the transport's)."""
    async def main():
        a, b = memory_stream_pair()
        client_side, server_side = Trickle(a), Trickle(b)
        client, server = await tls_pair(certs, client_side, server_side)
        await handshake_both(client, server)
        assert (client_side.writes, server_side.writes) == (0, 0)
        assert client_side.nowaits >= 2 and server_side.nowaits >= 1  # (TLS 1.3: 2 flights, 1)
        await client.write(b"ping")
        assert await server.read() == b"ping"
        client.close()
        server.close()
    run(main)


def test_a_handshake_flight_the_transport_takes_in_part_goes_on_in_order(certs):
    """What write_nowait does not take of a handshake flight goes by write@, before anything
    else, and the handshake completes."""
    class Partial(Trickle):
        def write_nowait(self, data):
            self.nowaits += 1
            return self.stream.write_nowait(data[:7])

    async def main():
        a, b = socket_pair()
        client_side, server_side = Partial(a), Partial(b)
        client, server = await tls_pair(certs, client_side, server_side)
        await handshake_both(client, server)
        assert client_side.writes >= 2 and server_side.writes >= 1
        assert server.version() == "TLSv1.3"
        await client.write(b"ping")
        assert await server.read() == b"ping"
        await server.write(b"pong")
        assert await client.read() == b"pong"
        client.close()
        server.close()
    run(main)


def test_a_fast_write_the_transport_takes_in_part_finishes_in_order(certs):
    """The transport takes part of a fast-path write's records at once: the rest waits for
    room; meanwhile a second writer is refused and shutdown_write's close_notify queues behind
    the rest, so the peer reads everything, then the end of stream."""
    async def main():
        a, b = memory_stream_pair(max_buffer=2048)
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        payload = os.urandom(50_000)
        events = []

        async def writer():
            await client.write(payload)
            events.append("written")

        async def meddler():
            await con.sleep(0.01)  # the writer waits for room now
            assert client._sending.locked()
            with pytest.raises(RuntimeError, match="already writing"):
                await client.write(b"second")
            client.shutdown_write()
            events.append("shut")

        async def reader():
            await con.sleep(0.02)
            got = b""
            with pytest.raises(EOFError, match="close_notify"):
                while True:
                    got += await server.read()
            assert got == payload
        await together(writer, meddler, reader)
        assert events == ["shut", "written"]
        client.close()
        server.close()
    run(main)


def test_an_interrupted_fast_write_after_part_went_leaves_the_stream_broken(certs):
    async def main():
        a, b = memory_stream_pair(max_buffer=2048)
        client, server = await tls_pair(certs, a, b)
        await handshake_both(client, server)
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await client.write(b"x" * 50_000)  # 2048 bytes go at once, the rest waits
        assert len(await b.read()) == 2048  # part of the records went
        with pytest.raises(con.BrokenStreamError, match="write@\\(\\) was interrupted"):
            await client.write(b"x")
        client.close()
        server.close()
    run(main)
