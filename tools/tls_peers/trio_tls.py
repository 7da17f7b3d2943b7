"""TLS echo server: trio, ``SSLStream`` over TCP (``serve_ssl_over_tcp``), a task per connection."""
import argparse
import signal
import ssl
from functools import partial

import trio


async def echo(stream):
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def serve(port, context):
    async with trio.open_nursery() as nursery:
        for host in ("127.0.0.1", "::1"):
            nursery.start_soon(partial(trio.serve_ssl_over_tcp, echo, port, context, host=host))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6840)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    trio.run(serve, args.port, context)
