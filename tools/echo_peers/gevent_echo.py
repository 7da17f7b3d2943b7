"""Echo server: gevent (a greenlet per connection under StreamServer, blocking-style code)."""
import argparse
import signal
import socket

import gevent
from gevent.event import Event
from gevent.server import StreamServer


def echo(sock, address):
    # Like asyncio, uvloop and trio do for their streams: answer small writes without Nagle's delay.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while data := sock.recv(65536):
            sock.sendall(data)
    except ConnectionError:
        pass
    finally:
        sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    port = parser.parse_args().port
    servers = [StreamServer(("127.0.0.1", port), echo), StreamServer(("::1", port), echo)]
    for server in servers:
        server.start()
    stop = Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    stop.wait()
    for server in servers:
        server.stop(timeout=1)


if __name__ == "__main__":
    main()
