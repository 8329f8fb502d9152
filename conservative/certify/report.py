"""How results of ``conservative.certify`` say what they are: the verification level, short
text summaries and small HTML tables for Jupyter."""

from __future__ import annotations

import enum
import math

from .. import _display

__all__ = ["Verified", "format_word", "number", "summary_html", "verified_words"]


class Verified(str, enum.Enum):
    """How the final inequality of a certificate was checked.

    The values are plain strings and compare equal to them (``cert.verified == "exact"``).

    ``EXACT``
        rational arithmetic on the exact values of the float64 data;
    ``INTERVAL``
        rigorous floating point: outward-rounded interval arithmetic and a floating-point
        Cholesky factorisation with a proven a-priori bound on its rounding errors;
    ``FLOAT``
        floating-point evidence only (then nothing is certified).

    Examples
    --------
    >>> Verified.EXACT == "exact", str(Verified.INTERVAL), Verified("float")
    (True, 'interval', 'float')
    """

    EXACT = "exact"
    INTERVAL = "interval"
    FLOAT = "float"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def rigorous(self) -> bool:
        """True for "exact" and "interval"."""
        return self is not Verified.FLOAT

    @staticmethod
    def weakest(*levels: "Verified") -> "Verified":
        """The weakest of several levels (a chain of proofs is as strong as its weakest)."""
        order = (Verified.FLOAT, Verified.INTERVAL, Verified.EXACT)
        return min((Verified(v) for v in levels), key=order.index)


def format_word(word, limit: int = 24) -> str:
    """A product word for a summary line: ``[0, 1]``, or its length when it is long.

    Examples
    --------
    >>> format_word((0, 1)), format_word(tuple(range(40)))
    ('[0, 1]', '[0, 1, 2, ... (40 letters)]')
    """
    if word is None:
        return "none"
    word = [int(i) for i in word]
    if len(word) <= limit:
        return str(word)
    return "[" + ", ".join(map(str, word[:3])) + f", ... ({len(word)} letters)]"


def number(x, digits: int = 10) -> str:
    """A float for a summary (``inf``, ``nan`` spelled out)."""
    if x is None:
        return "none"
    x = float(x)
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def summary_html(title: str, rows) -> str:
    """A small two-column HTML table (what ``_repr_html_`` of a result shows).

    Examples
    --------
    >>> summary_html("JSR", [("lower", "0.5")]).startswith("<table")
    True
    """
    return _display.html(title, [(str(k), v) for k, v in rows])


_MEANING = {"exact": "rational arithmetic on the float64 data",
            "interval": "rigorous floating point",
            "float": "floating-point evidence only, not a proof"}


def verified_words(level) -> str:
    """A verification level with what it means, for a summary line.

    Examples
    --------
    >>> verified_words(Verified.INTERVAL)
    'interval (rigorous floating point)'
    """
    level = str(level)
    meaning = _MEANING.get(level)
    return level if meaning is None else f"{level} ({meaning})"
