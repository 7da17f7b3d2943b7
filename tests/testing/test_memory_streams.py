"""In-memory stream pairs: the stream API, backpressure, end of stream, closing, interruption."""
from __future__ import annotations

import errno
import inspect
import io
import time

import pytest

from conhook._network import stream_contract

from .helpers import bootstrap, con, prejoining, testing


async def read_all(stream, max_bytes=65536):
    chunks = []
    try:
        while True:
            chunks.append(await stream.read(max_bytes))
    except EOFError:
        return b"".join(chunks)


def test_round_trip_both_ways():
    async def main():
        a, b = testing.memory_stream_pair()
        await a.write(b"ping")
        assert await b.read() == b"ping"
        await b.write(bytearray(b"pong"))
        assert await a.read() == b"pong"
        await a.write(memoryview(b"xyz"))
        return await b.read()
    assert bootstrap(main) == b"xyz"


def test_read_returns_what_is_there_up_to_max_bytes():
    async def main():
        a, b = testing.memory_stream_pair()
        await a.write(b"abcdefghij")
        return [await b.read(4), await b.read(4), await b.read(4)]
    assert bootstrap(main) == [b"abcd", b"efgh", b"ij"]


def test_read_rejects_max_bytes_below_one():
    async def main():
        a, b = testing.memory_stream_pair()
        with pytest.raises(ValueError, match="max_bytes"):
            await b.read(0)
    bootstrap(main)


def test_shutdown_write_gives_end_of_stream_and_the_peer_can_still_send():
    async def main():
        a, b = testing.memory_stream_pair()
        await a.write(b"last words")
        a.shutdown_write()
        got = await read_all(b)
        with pytest.raises(EOFError):
            await b.read()
        await b.write(b"reply")
        return got, await a.read()
    assert bootstrap(main) == (b"last words", b"reply")


def test_backpressure_bounds_the_buffer():
    size = 1_000_000
    seen = []

    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair(max_buffer=1000)

        async def writer():
            await a.write(b"x" * size)
            a.close()
        scope.start(writer)
        await testing.wait_all_threads_blocked()
        seen.append(a.buffered())  # the writer waits for room: 1000 bytes in, not a megabyte
        seen.append(len(await read_all(b, 4096)))
    bootstrap(main)
    assert seen == [1000, size]


def test_reader_waits_for_data_and_is_woken_by_a_write():
    log = []

    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair()

        async def reader():
            log.append(("read", await b.read()))
        scope.start(reader)
        await testing.wait_all_threads_blocked()
        log.append("writing")
        await a.write(b"hello")
    bootstrap(main)
    assert log == ["writing", ("read", b"hello")]


def test_write_to_a_closed_peer_is_a_broken_pipe():
    async def main():
        a, b = testing.memory_stream_pair()
        b.close()
        with pytest.raises(BrokenPipeError):
            await a.write(b"anyone?")
        with pytest.raises(EOFError):  # and the peer's close is our end of stream
            await a.read()
    bootstrap(main)


def test_writer_waiting_for_room_gets_broken_pipe_when_the_peer_closes():
    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair(max_buffer=10)
        errors = []

        async def writer():
            try:
                await a.write(b"y" * 100)
            except BrokenPipeError as exc:
                errors.append(exc)
        scope.start(writer)
        await testing.wait_all_threads_blocked()
        b.close()
        await testing.wait_all_threads_blocked()
        return errors
    assert len(bootstrap(main)) == 1


def test_io_on_a_closed_end_is_ebadf_and_close_is_idempotent():
    async def main():
        a, b = testing.memory_stream_pair()
        with a:
            pass
        assert a.closed
        a.close()
        for op in (a.read(), a.write(b"x")):
            with pytest.raises(OSError) as info:
                await op
            assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            a.shutdown_write()
    bootstrap(main)


def test_closing_wakes_a_thread_waiting_on_the_same_end():
    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair()
        errors = []

        async def reader():
            try:
                await b.read()
            except OSError as exc:
                errors.append(exc.errno)
        scope.start(reader)
        await testing.wait_all_threads_blocked()
        b.close()
        await testing.wait_all_threads_blocked()
        return errors
    assert bootstrap(main) == [errno.EBADF]


def test_two_readers_at_once_is_an_error():
    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair()

        async def reader():
            await b.read()
        scope.start(reader)
        await testing.wait_all_threads_blocked()
        with pytest.raises(RuntimeError, match="already waiting to read"):
            await b.read()
        await a.write(b"x")
    bootstrap(main)


def test_an_interrupted_read_leaves_the_stream_usable():
    async def main():
        testing.VirtualClock().install()
        a, b = testing.memory_stream_pair()
        with pytest.raises(TimeoutError):
            with con.timeout(1):
                await b.read()
        await a.write(b"later")
        return await b.read()
    assert bootstrap(main) == b"later"


def test_an_interrupted_partial_write_closes_the_stream():
    async def main():
        testing.VirtualClock().install()
        a, b = testing.memory_stream_pair(max_buffer=10)
        with pytest.raises(TimeoutError):
            with con.timeout(1):
                await a.write(b"z" * 100)
        assert a.closed
        return await read_all(b)  # what went in before, then end of stream
    assert bootstrap(main) == b"z" * 10


def test_an_interrupted_thread_cannot_read_even_if_data_is_there():
    async def main():
        a, b = testing.memory_stream_pair()
        await a.write(b"data")
        testing.VirtualClock().install()
        with pytest.raises(TimeoutError):
            with con.timeout(1):
                await con.sleep(2)
        # outside the block the thread is normal again, and the data is still there
        return await b.read()
    assert bootstrap(main) == b"data"


def test_a_fast_stream_yields_so_others_run():
    spins = []

    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair(max_buffer=10**7)
        done = []

        async def spinner():
            while not done:
                spins.append(1)
                await con.idle()
        scope.start(spinner)
        for _ in range(1000):  # every write completes at once
            await a.write(b".")
        done.append(True)
    bootstrap(main)
    assert len(spins) >= 1000 // testing.BUDGET


def test_a_stream_whose_operations_take_long_yields_after_a_slice_of_its_work():
    # Every write completes at once and the thread works SLICE seconds after each: it yields at
    # its third write in a row (the clock starts at the second), not at the BUDGET-th.
    log = []

    @prejoining
    async def main(scope):
        a, b = testing.memory_stream_pair(max_buffer=10**7)

        async def spinner():
            while log.count("w") < 12:
                log.append("s")
                await con.idle()
        scope.start(spinner)
        for _ in range(12):
            await a.write(b".")
            log.append("w")
            time.sleep(stream_contract.SLICE)  # noqa: CON201 (atomic work: no switch)
    bootstrap(main)
    runs = [len(r) for r in "".join(log).split("s") if r]
    assert max(runs) == 2 and sum(runs) == 12


def test_facts_and_no_file_descriptor():
    a, b = testing.memory_stream_pair()
    assert a.local_address == b.peer_address and b.local_address == a.peer_address
    assert a.local_address != b.local_address
    with pytest.raises(io.UnsupportedOperation):
        a.fileno()
    assert isinstance(io.UnsupportedOperation(), OSError)
    assert "MemoryStream" in repr(a)
    a.close()
    b.close()


def test_reading_needs_a_scheduler():
    a, b = testing.memory_stream_pair()
    coro = a.read()
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        coro.send(None)


def test_max_buffer_must_be_positive():
    with pytest.raises(ValueError, match="max_buffer"):
        testing.memory_stream_pair(max_buffer=0)


def test_memory_streams_fixture(memory_streams):
    a, b = memory_streams

    async def main():
        await a.write(b"via fixture")
        return await b.read()
    assert bootstrap(main) == b"via fixture"


def test_memory_streams_fixture_closes_them():
    fixture = testing.memory_streams_fixture()
    a, b = next(fixture)
    with pytest.raises(StopIteration):
        next(fixture)
    assert a.closed and b.closed


def test_same_api_as_network_streams():
    from conhook._network.streams import Stream
    public = {name for name in dir(Stream) if not name.startswith("_")}
    mine = {name for name in dir(testing.MemoryStream) if not name.startswith("_")}
    assert public - mine == {"socket"}  # a memory stream has no socket
    for name in ("read", "write"):
        assert inspect.iscoroutinefunction(getattr(testing.MemoryStream, name))
        assert (list(inspect.signature(getattr(Stream, name)).parameters)
                == list(inspect.signature(getattr(testing.MemoryStream, name)).parameters))
    assert inspect.signature(Stream.read).parameters["max_bytes"].default == \
        inspect.signature(testing.MemoryStream.read).parameters["max_bytes"].default
    assert {"__enter__", "__exit__"} <= set(dir(testing.MemoryStream))
