"""Opt-in diagnostics, set up by environment variables when ``bootstrap`` makes a kernel.

``CONHOOK_SCHEDULE_SEED=N``
    Shuffle the order in which the threads that are ready at the start of a turn run, with a
    ``random.Random(N)``: the same seed and the same I/O and timer events give the same run.
    ``CONHOOK_SCHEDULE_SEED=random`` picks a seed and prints it to stderr.  Each turn still
    runs every ready thread once (``idle`` keeps its meaning); only their order changes.  The
    FIFO order of waiters on a primitive (Lock, Queue, ...) is part of its contract and is kept.
``CONHOOK_WATCHDOG=SECONDS``
    A watchdog OS thread reports on stderr a conhook thread that holds the scheduler (runs
    without reaching a switch) for longer than SECONDS: its Python stack and the cactus stack.
    When the thread lets go, one more line says for how long it held it.
``CONHOOK_DEBUG=1`` (or a depth: how many frames to remember; 1 means 4)
    Remember where each coroutine is created (``sys.set_coroutine_origin_tracking_depth``), so
    that a non-atomic call object dropped without being run is reported with the place it was
    made.  Measured on 3.12, a non-atomic call that does not suspend costs 100 ns without it,
    180 ns at depth 1, 760 ns at depth 16: too much for every program, hence opt-in; without
    it the warning names the line where the call object was dropped, which for the usual
    mistake (``f()`` written for ``f@()``) is the same line.

None of them costs anything when unset: ``bootstrap`` checks for the three variables when it
makes a kernel (and imports this module only if one is set), and the kernel reads its
``on_turn`` hook once per run.
"""
from __future__ import annotations

import os
import random
import sys
import threading
import time
import traceback
import weakref

VARIABLES = ("CONHOOK_SCHEDULE_SEED", "CONHOOK_WATCHDOG", "CONHOOK_DEBUG")
WATCHDOG_MIN_INTERVAL = 0.005  # seconds between two looks of the watchdog, at least


def configure(kernel):
    """Set `kernel` up as the environment asks (see the module docstring)."""
    environ = os.environ
    hooks = []
    seed = environ.get("CONHOOK_SCHEDULE_SEED", "").strip()
    if seed:
        hooks.append(schedule_shuffler(seed))
    threshold = environ.get("CONHOOK_WATCHDOG", "").strip()
    if threshold:
        try:
            seconds = float(threshold)
        except ValueError:
            raise ValueError(f"CONHOOK_WATCHDOG must be a number of seconds, not {threshold!r}") from None
        if seconds > 0:
            hooks.append(Watchdog(kernel, seconds).start())
    depth = environ.get("CONHOOK_DEBUG", "").strip()
    if depth and depth != "0":
        sys.set_coroutine_origin_tracking_depth(int(depth) if depth.isdigit() and depth != "1" else 4)
    if len(hooks) == 1:
        kernel.on_turn = hooks[0]
    elif hooks:
        first, second = hooks

        def both(ready):
            first(ready)
            second(ready)
        kernel.on_turn = both


def schedule_shuffler(seed):
    """An ``on_turn`` hook that shuffles the ready queue with ``random.Random(seed)``."""
    if seed == "random":
        seed = str(random.SystemRandom().randrange(10**9))
        sys.stderr.write(f"conhook: CONHOOK_SCHEDULE_SEED={seed}\n")
    rng = random.Random(int(seed) if seed.lstrip("-").isdigit() else seed)
    shuffle = rng.shuffle

    def shuffle_ready(ready):
        if len(ready) > 1:
            threads = list(ready)
            shuffle(threads)
            ready.clear()
            ready.extend(threads)
    return shuffle_ready


class Watchdog:
    """Reports a conhook thread that holds the scheduler longer than `threshold` seconds.

    It is the ``on_turn`` hook (it counts turns) plus an OS thread that looks every quarter
    threshold at (turn, running thread).  One thread runs at most once per turn, so when both
    are unchanged between two looks, that thread has run all along without a switch.  The OS
    thread holds the kernel weakly and ends when the kernel is done or gone.
    """

    def __init__(self, kernel, threshold, stream=None):
        self.kernel = weakref.ref(kernel)
        self.threshold = threshold
        self.turns = 0
        self.stream = stream
        self.os_thread = None
        self.ident = threading.get_ident()  # the kernel runs in the OS thread that made it
        self.reports = 0
        self._held = None  # (name, since) of the thread reported, until it lets go
        self._lock = threading.Lock()

    def __call__(self, ready):
        self.turns += 1
        if self._held is not None:  # a new turn: the thread reported has let go
            self._let_go()

    def start(self):
        self.os_thread = threading.Thread(target=self._watch, name="conhook watchdog", daemon=True)
        self.os_thread.start()
        return self

    def _watch(self):
        interval = max(self.threshold / 4, WATCHDOG_MIN_INTERVAL)
        seen = None  # (turn, thread) at the last look
        since = 0.0
        reported = False
        while True:
            time.sleep(interval)
            kernel = self.kernel()
            now = time.monotonic()
            if kernel is None or kernel.done:
                self._let_go()
                return
            thread = kernel.current
            key = (self.turns, thread)
            if thread is not None and key == seen:
                if not reported and now - since >= self.threshold:
                    reported = True
                    name = _name(thread)  # (kept: a finished thread has no name)
                    self._report(kernel, thread, now - since)
                    self._held = (name, since)
            else:
                self._let_go()
                seen, since, reported = key, now, False
            del kernel, thread

    def _let_go(self):
        """Say that the thread reported has let go (once; from either OS thread)."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            name, since = held
            self._write(f"conhook watchdog: thread {name} let go of the scheduler after "
                        f"about {time.monotonic() - since:.3f} s\n")

    def _report(self, kernel, thread, held):
        frame = sys._current_frames().get(self.ident)
        parts = [f"conhook watchdog: thread {_name(thread)} has held the scheduler for "
                 f"{held:.3f} s (threshold {self.threshold} s) without reaching a switch: no "
                 f"other thread runs and no I/O is served meanwhile.  Split long atomic work "
                 f"with idle@(), or run it in a worker OS thread with to_thread@().\n"]
        try:
            parts.append("Its Python stack (most recent call last):\n")
            parts.append("".join(traceback.format_list(_user_stack(frame))))
        except Exception as exc:  # noqa: BLE001  (the stack changes under us: report what we can)
            parts.append(f"  (could not read it: {exc!r})\n")
        try:
            from .cactus_stack import tree
            parts.append("The cactus stack:\n" + tree(kernel, frame) + "\n")
        except Exception as exc:  # noqa: BLE001  (the watchdog reports what it can)
            parts.append(f"(could not draw the cactus stack: {exc!r})\n")
        self.reports += 1
        self._write("".join(parts))

    def _write(self, text):
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except Exception:  # noqa: BLE001  (the watchdog's thread must not die)
            pass


def _name(thread):
    from .threads import thread_name
    try:
        return repr(thread_name(thread))
    except Exception:  # noqa: BLE001  (the watchdog reports what it can)
        return repr(thread)


def _user_stack(frame):
    """The user's frames above conhook's run loop, outermost first, as a StackSummary."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    # Drop the outer frames up to conhook's run loop (the runner, bootstrap, the kernel).
    from .kernel import Kernel
    loop = Kernel.run_loop.__code__
    start = 0
    for i, f in enumerate(frames):
        if f.f_code is loop:
            start = i + 1
    return traceback.StackSummary.extract((f, f.f_lineno) for f in frames[start:]
                                          if not f.f_globals.get("__name__", "").startswith("conhook."))
