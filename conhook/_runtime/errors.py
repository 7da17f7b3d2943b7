"""The exceptions that the runtime raises to user code.

Both are shown as the API names them (``con.Deadlock``, not this module's path): tracebacks
print ``__module__``, and pickle finds them as ``con.Deadlock`` too.
"""
from __future__ import annotations


class Interrupted(BaseException):
    """Raised by a blocking operation of a thread that has been interrupted.

    A thread is interrupted when a sibling in the same prejoining invocation failed, when a
    ``timeout`` block ran out of time, or when the program was stopped (Ctrl-C).  From then
    on every blocking operation raises ``Interrupted`` at once, until the exception has left
    the scope that interrupted the thread.  It derives from ``BaseException`` so that
    ``except Exception`` does not swallow it.
    """
    __module__ = "con"


class Deadlock(RuntimeError):
    """No thread can ever make progress: nothing is ready, no I/O or timer is awaited and no
    worker thread is busy.  ``bootstrap`` raises it; the message holds the cactus stack."""
    __module__ = "con"
