"""A sample con library: threads started with `sibling`, non-atomic calls with `@`."""
from con import sleep

from .arithmetic import square


def squares(values):
    """The squares of `values`, each computed in a thread of its own."""
    out = []
    _compute_all@(values, out)  # returns once its threads have (prejoin)
    return sorted(out)


def _compute_all(values, out):
    for value in values:
        sibling _put@(out, value)


def _put(out, value):
    sleep@(0)
    out.append(square(value))
