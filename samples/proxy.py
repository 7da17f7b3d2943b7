"""A TCP proxy: every connection to a local port is forwarded to a target.

    python -m conhook samples/proxy.py PORT TARGET_HOST TARGET_PORT
    python -m conhook samples/proxy.py 8080 example.com 80    # then: curl -H 'Host: example.com' localhost:8080

Two sibling threads per connection, one for each direction.  When either side closes (or
fails), its pipe closes both streams, which ends the other pipe too.
"""
import sys

from con import bootstrap, ipv4addr, ipv6addr, tcpconnect, tcplisten


def main(port, host, target_port):
    serve@(tcplisten@(ipv6addr('::1', port), ipv4addr('127.0.0.1', port)), host, target_port)


def serve(listener, host, port):
    while 1:
        sibling proxy@(listener.accept@(), host, port)


def proxy(client, host, port):
    try:
        server = tcpconnect@(host, port)
    except OSError:
        return client.close()  # the target is down: hang up
    sibling pipe@(client, server)
    sibling pipe@(server, client)


def pipe(source, sink):
    try:
        while 1:
            sink.write@(source.read@())
    except (EOFError, OSError):
        pass
    finally:
        source.close()
        sink.close()


if __name__ == '__main__':
    try:
        bootstrap(main, int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    except KeyboardInterrupt:
        pass
