"""Echo server: the smallest coroutine-per-connection scheduler over select.epoll, in pure Python.

The floor of conhook's design, not a peer: a thread per connection is a coroutine, and a wait is
the coroutine yielding to a run loop that polls epoll. Everything conhook adds is left out
(interruption, fairness, timers, nesting, errors that name their cause), and every trick it uses
is kept: read first and wait only after a short read, register each socket once, wake a waiter
without allocating. What this server does per request is what any coroutine-per-connection
runtime in pure Python must do at least.
"""
import argparse
import select
import signal
import socket
from collections import deque

IN, OUT = select.EPOLLIN, select.EPOLLOUT


class Wait(list):
    """``await Wait([(fd, events)])``: park until epoll reports `events` on `fd`.

    Awaiting it yields its one item to the run loop with no frame of its own: ``__await__`` is the
    list's reversed iterator, a C object (a generator here would cost a frame per wait).
    """
    __slots__ = ()
    __await__ = list.__reversed__


class Stream:
    """The API's shape: ``read``/``write`` are coroutines, as ``s.read@()``/``s.write@()`` are."""
    __slots__ = ("sock", "fd", "read_wait", "write_wait", "drained")

    def __init__(self, sock):
        self.sock, self.fd = sock, sock.fileno()
        self.read_wait, self.write_wait = Wait([(self.fd, IN)]), Wait([(self.fd, OUT)])
        self.drained = False

    async def read(self):
        if self.drained:  # the last read was short: wait for more before trying
            await self.read_wait
        while True:
            try:
                data = self.sock.recv(65536)
                break
            except BlockingIOError:
                await self.read_wait
        if not data:
            raise EOFError
        self.drained = len(data) < 65536
        return data

    async def write(self, data):
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            view = memoryview(data)
            while sent < len(data):
                await self.write_wait
                try:
                    sent += self.sock.send(view[sent:])
                except BlockingIOError:
                    pass


async def echo(s, forget):
    """The proposal's echo function, with ``await`` for ``@``."""
    try:
        try:
            while 1:
                await s.write(await s.read())
        except (EOFError, IOError):
            pass
    finally:
        forget(s.fd)
        s.sock.close()


async def accept_loop(listener, spawn, forget):
    wait = Wait([(listener.fileno(), IN)])
    while True:
        await wait
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        spawn(echo(Stream(conn), forget))


def run(listeners):
    ep = select.epoll()
    ready = deque()   # coroutines to resume
    waiting = {}      # fd -> the coroutine parked on it
    registered = {}   # fd -> the events epoll watches

    def forget(fd):  # before closing fd: its number may come back with the next connection
        if registered.pop(fd, None) is not None:
            ep.unregister(fd)

    for listener in listeners:
        listener.setblocking(False)
        ready.append(accept_loop(listener, ready.append, forget))
    while True:
        while ready:
            coro = ready.popleft()
            try:
                fd, events = coro.send(None)
            except StopIteration:
                continue
            waiting[fd] = coro
            if fd not in registered:
                ep.register(fd, events)
                registered[fd] = events
            elif registered[fd] != events:
                ep.modify(fd, events)
                registered[fd] = events
        for fd, _ in ep.poll():
            coro = waiting.pop(fd, None)
            if coro is None:  # readiness nobody waits for: stop watching it until someone does
                ep.unregister(fd)
                del registered[fd]
            else:
                ready.append(coro)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6839)
    port = parser.parse_args().port
    listeners = [socket.create_server(("127.0.0.1", port)),
                 socket.create_server(("::1", port), family=socket.AF_INET6)]
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may have been ignored when started
        signal.signal(sig, signal.default_int_handler)
    try:
        run(listeners)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
