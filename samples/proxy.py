"""A TCP proxy: every connection to a local port is forwarded to a target.

    python -m conhook samples/proxy.py PORT TARGET_HOST TARGET_PORT
    python -m conhook samples/proxy.py 8080 example.com 80    # then: curl -H 'Host: example.com' localhost:8080

Two sibling threads per connection, one for each direction.  When one side ends its half
(end of stream), the other side is told so (a half-close) and the other direction goes on:
a client may send its request, shut down its writing side, and still read the whole reply.
A failure either way closes both streams, which ends the other direction too.  The target's
name is resolved once, when the proxy starts.

Each connection needs two descriptors.  Before taking a client from the listen backlog the
proxy holds one for the connection to the target; when there is none to hold, it waits and
tries again, so that, out of descriptors, clients wait in the backlog (as the echo server's
accept@() leaves them) instead of being accepted and hung up on.
"""
import errno
import os
import socket
import sys

from con import bootstrap, ipv4addr, ipv6addr, sleep, tcpconnect, tcplisten, to_thread


def main(port, host, target_port):
    serve@(tcplisten@(ipv6addr('::1', port), ipv4addr('127.0.0.1', port)), host, target_port)


def serve(listener, host, port):
    family, _, _, _, sockaddr = to_thread@(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)[0]
    target = (ipv6addr if family == socket.AF_INET6 else ipv4addr)(sockaddr[0], sockaddr[1])
    while 1:
        spare = reserve@()
        try:
            client = listener.accept@()
        except BaseException:
            os.close(spare)
            raise
        sibling proxy@(client, spare, target)


def reserve():
    """A descriptor held for the next connection to the target (waits while there is none)."""
    delay = 0.01
    while 1:
        try:
            return os.open(os.devnull, os.O_RDONLY)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            sleep@(delay)
            delay = min(delay * 2, 0.1)


def proxy(client, spare, target):
    with client:
        os.close(spare)  # tcpconnect@ makes its socket before any switch: it gets this one
        try:
            server = tcpconnect@(target)
        except OSError:
            return  # the target is down: hang up
        with server:
            both_ways@(client, server)


def both_ways(client, server):
    sibling pipe@(client, server)
    sibling pipe@(server, client)


def pipe(source, sink):
    try:
        while 1:
            sink.write@(source.read@())
    except EOFError:
        try:
            sink.shutdown_write()  # pass the half-close on; the other direction goes on
        except OSError:
            pass
    except OSError:
        source.close()  # a failure either way ends both ways
        sink.close()


if __name__ == '__main__':
    try:
        bootstrap(main, int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    except KeyboardInterrupt:
        pass
