"""Check many TCP endpoints at once, each within its own time limit.

    python -m conhook samples/check.py [--timeout SECONDS] [--send TEXT] HOST:PORT ...
    python -m conhook samples/check.py python.org:443 localhost:22 10.255.255.1:80 [::1]:6839

A thread per endpoint: it connects (and, with --send, sends TEXT and waits for a reply) within
a `timeout` block.  The function that starts the threads returns only when all have finished
(prejoin), so the report is complete.
"""
import sys
import time

from con import bootstrap, tcpconnect, timeout


def check(results, host, port, seconds, probe):
    results[host, port] = outcome@(host, port, seconds, probe)


def outcome(host, port, seconds, probe):
    start = time.monotonic()
    try:
        with timeout(seconds):
            with tcpconnect@(host, port) as stream:
                if probe:
                    stream.write@(probe)
                    stream.read@()
    except TimeoutError:
        return f'timed out after {seconds:g} s'
    except EOFError:
        return 'closed without answering'
    except OSError as exc:
        return f'down: {exc.strerror or exc}'
    return f'up ({(time.monotonic() - start) * 1000:.1f} ms)'


def check_all(endpoints, seconds=2.0, probe=None):
    results = {}
    for host, port in endpoints:
        sibling check@(results, host, port, seconds, probe)
    return results


USAGE = 'usage: python -m conhook samples/check.py [--timeout SECONDS] [--send TEXT] HOST:PORT ...\n'


def endpoint(arg):
    """('::1', 6839) from '[::1]:6839', ('python.org', 443) from 'python.org:443'."""
    host, _, port = arg.rpartition(':')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    return host, int(port)


def shown(host, port):
    return f'[{host}]:{port}' if ':' in host else f'{host}:{port}'


def main(args):
    seconds, probe = 2.0, None
    while args and args[0] in ('--timeout', '--send'):
        option, value, *args = args
        if option == '--timeout':
            seconds = float(value)
        else:
            probe = value.encode() + b'\r\n'
    endpoints = [endpoint(arg) for arg in args]
    results = check_all@(endpoints, seconds, probe)
    for host, port in endpoints:
        print(f'{shown(host, port)}  {results[host, port]}')
    return all(result.startswith('up') for result in results.values())


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[-1].startswith('--'):
        sys.stderr.write(USAGE)
        sys.exit(2)
    sys.exit(0 if bootstrap(main, sys.argv[1:]) else 1)
