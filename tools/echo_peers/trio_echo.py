"""Echo server: trio (a task per connection under serve_listeners)."""
import argparse
import signal

import trio


async def echo(stream):
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def serve(port):
    listeners = [*await trio.open_tcp_listeners(port, host="127.0.0.1"),
                 *await trio.open_tcp_listeners(port, host="::1")]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo, listeners)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    trio.run(serve, parser.parse_args().port)
