"""con.signals (docs/spec.md §3): signals delivered to a con thread in order, floods coalesced
without losing the last of each kind, conhook's own handlers left alone, the previous handlers
restored; on every backend."""
from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

import conhook.api as con

from .helpers import prejoining, run

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="POSIX signals")


def flood(signum, count):
    for _ in range(count):
        os.kill(os.getpid(), signum)


def test_signals_arrive_in_order():
    async def main():
        with con.signals(signal.SIGHUP, signal.SIGUSR2) as received:
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGHUP)
            return [await received.get(), await received.get()]

    assert run(main) == [signal.SIGUSR2, signal.SIGHUP]


def test_a_waiting_thread_is_woken_by_a_signal_from_another_process():
    @prejoining
    async def main(scope):
        with con.signals(signal.SIGUSR2) as received:
            async def sender():
                sender_code = f"import os, signal; os.kill({os.getpid()}, signal.SIGUSR2)"
                await con.run_process([sys.executable, "-c", sender_code])
            scope.start(sender)
            return await received.get()

    assert run(main) == signal.SIGUSR2


def test_a_flood_of_10000_is_coalesced_and_the_last_is_not_lost():
    async def main():
        with con.signals(signal.SIGUSR2) as received:
            await con.to_thread(flood, signal.SIGUSR2, 10_000)
            first = await received.get()
            try:
                with con.timeout(0.1):
                    extra = await received.get()
            except TimeoutError:
                extra = None
            # A signal that arrives after its kind was taken is pending again.
            os.kill(os.getpid(), signal.SIGUSR2)
            last = await received.get()
        return first, extra, last

    assert run(main) == (signal.SIGUSR2, None, signal.SIGUSR2)


def test_a_flood_while_consuming_loses_no_kind():
    log, late = [], []

    @prejoining
    async def main(scope):
        with con.signals(signal.SIGUSR2, signal.SIGHUP) as received:
            def sender():
                flood(signal.SIGUSR2, 10_000)
                os.kill(os.getpid(), signal.SIGHUP)

            scope.start(con.to_thread, sender)
            while (signum := await received.get()) != signal.SIGHUP:
                log.append(signum)
                await con.idle()
            log.append(signum)
            await con.sleep(0.01)

    # Python runs the handlers of signals that arrived together in the order of their numbers
    # (SIGHUP before SIGUSR2): a SIGUSR2 still pending when the block ends goes to the
    # handler the block restores.
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: late.append(signum))
    try:
        run(main)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert log.count(signal.SIGHUP) == 1 and log[-1] == signal.SIGHUP
    assert set(log[:-1]) <= {signal.SIGUSR2}
    assert signal.SIGUSR2 in log + late


def test_previous_handlers_are_restored_even_after_a_failure():
    seen = []

    def mine(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGUSR2, mine)
    hangup = signal.getsignal(signal.SIGHUP)  # (SIG_IGN under nohup, SIG_DFL elsewhere)
    try:
        async def main():
            with con.signals(signal.SIGUSR2, signal.SIGHUP):
                assert signal.getsignal(signal.SIGUSR2) is not mine
                raise KeyError("fails inside")

        with pytest.raises(KeyError):
            run(main)
        assert signal.getsignal(signal.SIGUSR2) is mine
        assert signal.getsignal(signal.SIGHUP) is hangup
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_pending_signals_go_to_the_restored_handler_when_the_block_ends():
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        async def main():
            with con.signals(signal.SIGUSR2):
                os.kill(os.getpid(), signal.SIGUSR2)
                await con.idle()  # it is pending in the block, not taken
            await con.idle()

        run(main)
        assert seen == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_conhooks_own_handlers_keep_working_beside_it():
    async def main():
        with con.signals(signal.SIGUSR2) as received:
            os.kill(os.getpid(), signal.SIGINT)  # conhook's Ctrl-C: the program is interrupted
            await con.sleep(10)
            return await received.get()

    with pytest.raises(KeyboardInterrupt):
        run(main)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_waiter_left_when_the_block_ends_gets_an_error():
    @prejoining
    async def main(scope):
        errors = []
        with con.signals(signal.SIGUSR2) as received:
            async def waiter():
                try:
                    await received.get()
                except RuntimeError as exc:
                    errors.append(str(exc))
            scope.start(waiter)
            await con.idle()
        return errors

    [message] = run(main)
    assert "ended while get@() waited" in message


def test_misuse_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="at least one signal"):
        con.signals()
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        with con.signals(signal.SIGUSR2):
            pass

    async def main():
        receiver = con.signals(signal.SIGUSR2)
        with receiver:
            with pytest.raises(RuntimeError, match="already open"):
                receiver.__enter__()
        with pytest.raises(RuntimeError, match="outside its with block"):
            await receiver.get()
        return True

    assert run(main)


def test_the_dump_signal_of_the_runner_is_left_alone(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "import con, os, signal\n"
        "def main():\n"
        "    with con.signals(signal.SIGUSR2) as received:\n"
        "        os.kill(os.getpid(), signal.SIGUSR1)\n"
        "        os.kill(os.getpid(), signal.SIGUSR2)\n"
        "        print(received.get@().name)\n"
        "con.bootstrap(main)\n")
    import subprocess
    done = subprocess.run([sys.executable, "-m", "conhook", str(script)], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout == "SIGUSR2\n"
    assert "cactus stack" in done.stderr


def test_waiting_only_for_a_signal_is_not_a_deadlock():
    async def main():
        with con.signals(signal.SIGUSR2) as received:
            sender.start()
            return await received.get()

    sender = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2))
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # (a late one must not kill pytest)
    try:
        assert run(main) == signal.SIGUSR2
    finally:
        sender.join()
        signal.signal(signal.SIGUSR2, previous)


def test_an_interrupted_get_is_no_longer_counted_as_waiting():
    async def main():
        with con.signals(signal.SIGUSR2) as received:
            try:
                with con.timeout(0.01):
                    await received.get()
            except TimeoutError:
                pass
            await con.Event().wait()  # nothing can set it: a deadlock, reported

    with pytest.raises(con.Deadlock):
        run(main)
