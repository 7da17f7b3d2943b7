"""A plain module of the library: it does not import con, so it is not rewritten."""


def square(value):
    return value * value
