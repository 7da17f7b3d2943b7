"""A chat server: every line a client sends goes to every other client.

    python -m conhook samples/chat.py [port]          # then, in several terminals: nc ::1 6840

Each client has two threads: one reads its lines and broadcasts them, one writes what the
others said.  Broadcasting never waits: it drops the lines into each client's outbox Queue.
A client that lets more than BACKLOG batches pile up (it does not read) is disconnected, so
one slow client never stalls the others.
"""
import sys

from con import Queue, bootstrap, idle, ipv4addr, ipv6addr, tcplisten

BACKLOG = 100  # batches of lines a client may fall behind before it is dropped


def main(port=6840):
    serve@(tcplisten@(ipv6addr('::1', port), ipv4addr('127.0.0.1', port)))


def serve(listener):
    clients = {}  # outbox -> stream
    while 1:
        sibling client@(listener.accept@(), clients)


def client(stream, clients):
    outbox = Queue()
    clients[outbox] = stream
    sibling deliver@(stream, outbox)
    try:
        pending = b''
        while 1:
            lines, newline, pending = (pending + stream.read@()).rpartition(b'\n')
            if newline:
                broadcast(clients, outbox, lines + newline)
                idle@()  # let the others deliver it before this client says more
    except (EOFError, OSError):
        pass
    finally:
        del clients[outbox]
        outbox.put_nowait(None)  # tells deliver to finish


def broadcast(clients, sender, lines):
    for outbox, stream in list(clients.items()):
        if outbox is sender:
            continue
        if outbox.qsize() < BACKLOG:
            outbox.put_nowait(lines)
        else:
            stream.close()  # too slow to keep up: drop it rather than wait for it


def deliver(stream, outbox):
    try:
        while (lines := outbox.get@()) is not None:
            stream.write@(lines)
    except OSError:
        pass
    finally:
        stream.close()


if __name__ == '__main__':
    try:
        bootstrap(main, *map(int, sys.argv[1:2]))
    except KeyboardInterrupt:
        pass
