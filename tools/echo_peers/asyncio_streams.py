"""Echo server: asyncio streams (a coroutine per connection, StreamReader/StreamWriter)."""
import argparse
import asyncio
import signal


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    except asyncio.CancelledError:  # shutdown with clients connected: Python 3.11's start_server
        pass                        # would print the cancelled handler as an error
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(echo, ["127.0.0.1", "::1"], port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(loop_factory=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
