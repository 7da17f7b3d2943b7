"""Echo server: asyncio protocols (callbacks on a transport, no coroutine per connection)."""
import argparse
import asyncio
import signal


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, ["127.0.0.1", "::1"], port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(loop_factory=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
