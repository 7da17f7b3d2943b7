"""Echo server: a minimal hand-written select.epoll loop in pure Python (the pure-Python ceiling).

Level-triggered. A send that the kernel cuts short keeps the rest, waits for EPOLLOUT and stops reading
from that connection until it is flushed, so memory never grows with a slow reader.
"""
import argparse
import select
import signal
import socket

IN, OUT = select.EPOLLIN, select.EPOLLOUT


def serve(listeners):
    ep = select.epoll()
    servers = {sock.fileno(): sock for sock in listeners}
    conns = {}    # fd -> socket
    pending = {}  # fd -> bytes still to send
    for fd, sock in servers.items():
        sock.setblocking(False)
        ep.register(fd, IN)
    while True:
        for fd, events in ep.poll():
            if fd in servers:
                try:
                    conn, _ = servers[fd].accept()
                except OSError:  # the client gave up before we got to it (a real server also handles EMFILE)
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[conn.fileno()] = conn
                ep.register(conn.fileno(), IN)
                continue
            conn = conns[fd]
            try:
                data = pending.pop(fd) if events & OUT else conn.recv(65536)
                if not data:
                    raise EOFError
                try:
                    sent = conn.send(data)
                except BlockingIOError:
                    sent = 0
                if sent < len(data):
                    pending[fd] = data[sent:]
                    ep.modify(fd, OUT)
                elif events & OUT:
                    ep.modify(fd, IN)
            except BlockingIOError:  # a spurious wake-up: nothing to read after all
                pass
            except (EOFError, OSError):
                ep.unregister(fd)
                del conns[fd]
                pending.pop(fd, None)
                conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    port = parser.parse_args().port
    listeners = [socket.create_server(("127.0.0.1", port)),
                 socket.create_server(("::1", port), family=socket.AF_INET6)]
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may have been ignored when started
        signal.signal(sig, signal.default_int_handler)
    try:
        serve(listeners)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
