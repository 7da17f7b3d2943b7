"""User-space instructions per TLS echo in one process, under callgrind: a count that neither the
machine's load nor a load generator's pace can move (bench_tls.py's counts move with both).

    python tools/bench_tls_loop.py [--size BYTES] [--sndbuf BYTES] [CHECKOUT ...]

A client and a server TLSStream over a socket pair, in one conhook program: the client writes
`--size` bytes and reads them back, the server echoes.  Each CHECKOUT (a conhook tree, e.g. a
git worktree of an earlier commit; default: this one) runs twice under callgrind, for 500 and
1,500 echoes (200 and 600 from 4 KiB up), and the difference per echo is printed: both sides'
work, start-up and handshake cancelled out.  ``--sndbuf`` shrinks the socket send buffers, so
that records arrive in parts (as over a real network) rather than whole (as over loopback).
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_tls import make_certificate

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import socket, ssl, sys
from conhook.api import Stream, bootstrap, tls_wrap
from conhook._runtime.prejoin import prejoin

cert, key, size, sndbuf, count = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_context.load_cert_chain(cert, key)
client_context = ssl.create_default_context(cafile=cert)

async def main():
    a, b = socket.socketpair()
    for sock in (a, b):
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    client = await tls_wrap(Stream(a), client_context, server_hostname="localhost")
    server = await tls_wrap(Stream(b), server_context, server_side=True)
    message = b"x" * size

    async def echo():
        try:
            while True:
                await server.write(await server.read())
        except EOFError:
            server.close()

    async def ask():
        for _ in range(count):
            await client.write(message)
            got = 0
            while got < size:
                got += len(await client.read())
        client.close()
    scope = prejoin()
    scope.start(echo)
    scope.start(ask)
    await scope.join()

bootstrap(main)
"""


def instructions(checkout, cert, key, size, sndbuf, count):
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
         PROGRAM, cert, key, str(size), str(sndbuf), str(count)],
        cwd=checkout, capture_output=True, text=True, check=True)  # (-c: the cwd's conhook)
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", default=[str(ROOT)])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sndbuf", type=int, default=0)
    args = parser.parse_args()
    few, many = (500, 1500) if args.size < 4096 else (200, 600)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(directory)
        for checkout in args.checkouts:
            counts = [instructions(checkout, cert, key, args.size, args.sndbuf, n) for n in (few, many)]
            print(f"{checkout}: {(counts[1] - counts[0]) // (many - few):,} instructions per "
                  f"{args.size}-byte echo (both sides)" + (f", sndbuf {args.sndbuf}" if args.sndbuf else ""))


if __name__ == "__main__":
    main()
