"""A chat server: every line a client sends goes to every other client.

    python -m conhook samples/chat.py [port]          # then, in several terminals: nc ::1 6840

Each client has two threads: one reads its lines and broadcasts them, one writes what the
others said.  Broadcasting never waits: it drops the lines into each client's outbox Queue and
counts the bytes waiting there.  A client that lets more than BACKLOG bytes pile up (it does
not read) is disconnected, so one slow client never stalls the others; a client that sends a
line longer than MAX_LINE is disconnected too, so no client can make the server hold an
unbounded line.
"""
import sys

from con import Queue, bootstrap, idle, ipv4addr, ipv6addr, tcplisten

MAX_LINE = 64 * 1024  # bytes a line may hold (its newline included)
BACKLOG = 1024 * 1024  # bytes a client may fall behind before it is dropped


class Client:
    def __init__(self, stream):
        self.stream = stream
        self.outbox = Queue()  # batches of lines for it to write; None: finish
        self.queued = 0  # bytes in the outbox


def main(port=6840):
    serve@(tcplisten@(ipv6addr('::1', port), ipv4addr('127.0.0.1', port)))


def serve(listener):
    clients = set()
    while 1:
        sibling client@(listener.accept@(), clients)


def client(stream, clients):
    me = Client(stream)
    clients.add(me)
    sibling deliver@(me)
    try:
        pending = b''
        while len(pending) < MAX_LINE:
            lines, newline, pending = (pending + stream.read@()).rpartition(b'\n')
            if newline:
                broadcast(clients, me, lines + newline)
                idle@()  # let the others deliver it before this client says more
    except (EOFError, OSError):
        pass
    finally:
        clients.discard(me)
        me.outbox.put_nowait(None)  # tells deliver to finish


def broadcast(clients, sender, lines):
    for other in list(clients):
        if other is sender:
            continue
        if other.queued + len(lines) <= BACKLOG:
            other.queued += len(lines)
            other.outbox.put_nowait(lines)
        else:
            other.stream.close()  # too slow to keep up: drop it rather than wait for it


def deliver(me):
    try:
        while (lines := me.outbox.get@()) is not None:
            me.stream.write@(lines)
            me.queued -= len(lines)
    except OSError:
        pass
    finally:
        me.stream.close()


if __name__ == '__main__':
    try:
        bootstrap(main, *map(int, sys.argv[1:2]))
    except KeyboardInterrupt:
        pass
