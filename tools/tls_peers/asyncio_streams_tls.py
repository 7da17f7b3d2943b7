"""TLS echo server: asyncio streams with ``ssl=`` (a coroutine per connection, StreamReader/StreamWriter)."""
import argparse
import asyncio
import signal
import ssl


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    except asyncio.CancelledError:  # shutdown with clients connected: Python 3.11's start_server
        pass                        # would print the cancelled handler as an error
    finally:
        writer.close()


async def serve(port, context):
    server = await asyncio.start_server(echo, ["127.0.0.1", "::1"], port, ssl=context)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(loop_factory=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6840)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.port, context))


if __name__ == "__main__":
    main()
