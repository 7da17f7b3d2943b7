"""What only Python 3.11 needs of the token layer (3.12 tokenizes f-strings and identifiers
in full).  Dropping 3.11 is deleting this module and the two places ``tokens`` calls it.

* ``join_names``: 3.11's pure-Python tokenizer splits identifiers holding characters outside
  ``\\w``; put them together again.
* ``fstring_calls``: an f-string is one STRING token on 3.11, whose fields the compiler parses
  later; find the non-atomic calls in them, to reject them (they need 3.12's PEP 701).
"""
from __future__ import annotations

import io
import re
import tokenize


def join_names(tokens):
    """Mend what 3.11's regex tokenizer makes of identifiers with characters outside ``\\w``.

    ``x\u00b7``, ``e\u0301`` and ``\u2118`` are identifiers to CPython, but come out of the
    pure-Python tokenizer as NAME and ERRORTOKEN pieces (with a stray ERRORTOKEN for the
    blank before them); put the pieces together again, so that ``x\u00b7@(y)`` is seen.
    """
    out = []
    for tok in tokens:
        if tok.type == tokenize.ERRORTOKEN and tok.string.isspace():
            continue
        if tok.type in (tokenize.NAME, tokenize.ERRORTOKEN):
            prev = out[-1] if out else None
            if (prev is not None and prev.type == tokenize.NAME and prev.end == tok.start
                    and (prev.string + tok.string).isidentifier()):
                out[-1] = prev._replace(string=prev.string + tok.string, end=tok.end)
                continue
            if tok.type == tokenize.ERRORTOKEN and tok.string.isidentifier():
                tok = tok._replace(type=tokenize.NAME)
        out.append(tok)
    return out


def fstring_calls(literal: str, tokenize_source, ends_primary):
    """Offsets in ``literal`` (an f-string token of 3.11) of the '@' of non-atomic calls.

    Only code counts: the expressions of replacement fields (also those nested in format
    specs and in nested f-strings), never literal text, format specs or strings inside
    the expressions.  Each expression is judged as the rest of the file is: by
    ``tokenize_source`` (the token layer's tokenizer) and ``ends_primary``.
    """
    prefix = re.match(r"[A-Za-z]*", literal).group(0)
    if "f" not in prefix.lower():
        return
    for start, text in _fstring_expressions(literal, len(prefix)):
        try:
            tokens = tokenize_source("(" + text + ")")
        except (tokenize.TokenError, SyntaxError):
            continue  # not Python: compile() will say so
        lines = io.StringIO("(" + text + ")").readlines()
        line_starts = [0]
        for line in lines:
            line_starts.append(line_starts[-1] + len(line))
        for i in range(1, len(tokens) - 1):
            before, at, after = tokens[i - 1], tokens[i], tokens[i + 1]
            if (at.type == tokenize.OP and at.string == "@" and before.end == at.start and at.end == after.start
                    and after.type == tokenize.OP and after.string == "(" and ends_primary(before)):
                yield start + line_starts[at.start[0] - 1] + at.start[1] - 1
        for tok in tokens:
            if tok.type == tokenize.STRING:
                inner = line_starts[tok.start[0] - 1] + tok.start[1] - 1
                nested = fstring_calls(tok.string, tokenize_source, ends_primary)
                yield from (start + inner + offset for offset in nested)


def _fstring_expressions(literal: str, i: int):
    """(offset, text) of the expression of each replacement field of f-string ``literal``.

    ``i`` is the offset of the opening quote.  3.11 allows no backslash and no quote of
    the f-string's own kind inside its fields, which keeps this scanner simple.
    """
    quote = literal[i:i + 3] if literal[i:i + 3] in ('"""', "'''") else literal[i]
    end = len(literal) - len(quote)
    found = []

    def text(i, in_spec):
        """Literal text (or a format spec) from ``i``; returns where it stops."""
        while i < end:
            ch = literal[i]
            if ch == "{":
                if not in_spec and literal[i + 1:i + 2] == "{":
                    i += 2
                    continue
                i = field(i + 1)
            elif ch == "}":
                if in_spec:
                    return i
                i += 2 if literal[i + 1:i + 2] == "}" else 1
            else:
                i += 1
        return i

    def field(i):
        """A replacement field whose '{' precedes ``i``; returns the offset after its '}'."""
        start, depth = i, 0
        while i < end:
            ch = literal[i]
            if ch in "'\"":
                triple = literal[i:i + 3] if literal[i:i + 3] in ('"""', "'''") else ch
                close = literal.find(triple, i + len(triple))
                i = end if close < 0 else close + len(triple)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}" and depth:
                depth -= 1
            elif depth == 0 and (ch in "}:" or (ch == "!" and literal[i + 1:i + 2] != "=")
                                 or (ch == "=" and literal[i + 1:i + 2] != "="
                                     and literal[i - 1:i] not in ("=", "!", "<", ">"))):
                found.append((start, literal[start:i]))
                break
            i += 1
        # After the expression: an optional '=', '!conversion', ':format spec', then '}'.
        while i < end and literal[i] != "}":
            if literal[i] == ":":
                i = text(i + 1, True)
                break
            i += 1
        return i + 1

    text(i + len(quote), False)
    return found
