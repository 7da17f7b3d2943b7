"""Echo server: an OS thread per connection, blocking sockets (the standard library, no framework)."""
import argparse
import signal
import socket
import threading


def echo(conn):
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except ConnectionError:
            pass


def accept_forever(listener):
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    port = parser.parse_args().port
    listeners = [socket.create_server(("127.0.0.1", port)),
                 socket.create_server(("::1", port), family=socket.AF_INET6)]
    for listener in listeners:
        threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may have been ignored when started
        signal.signal(sig, signal.default_int_handler)
    try:
        signal.pause()  # until SIGINT or SIGTERM; daemon threads end with the process
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
