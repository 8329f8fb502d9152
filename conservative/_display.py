"""Short text and HTML summaries of result objects (``repr`` and ``_repr_html_``).

A result's summary is a title and a few labelled rows; :func:`text` prints them as at most
eight lines for the terminal, :func:`html` as a small table for Jupyter, so that both say the
same thing. The full data stays in the objects' attributes and ``to_dict()``.

Examples
--------
>>> print(text("Thing(3 parts)", [("size", "3 x 4"), ("kind", "finite")]))
Thing(3 parts)
  size  3 x 4
  kind  finite
>>> html("Thing", [("size", "3 x 4")]).startswith("<table")
True
"""

from __future__ import annotations

import html as _html

import numpy as np

__all__ = ["Summary", "text", "html", "number", "count", "interval_range", "listed", "matrix"]

MAX_LINES = 8


class Summary:
    """Mixin: ``repr`` and ``_repr_html_`` from the class's ``_summary() -> (title, rows)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return text(*self._summary())

    def _repr_html_(self) -> str:
        return html(*self._summary())


def text(title: str, rows: list) -> str:
    """``title`` then one indented ``label  value`` line per row (at most 8 lines in all)."""
    rows = rows[:MAX_LINES - 1]
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join([title] + [f"  {label:<{width}}  {value}" for label, value in rows])


def html(title: str, rows: list) -> str:
    """The same summary as a two-column HTML table with ``title`` as its caption."""
    body = "".join(f"<tr><th style='text-align:left'>{_html.escape(label)}</th>"
                   f"<td style='text-align:left'>{_html.escape(str(value))}</td></tr>"
                   for label, value in rows)
    return (f"<table><caption style='text-align:left'><b>{_html.escape(title)}</b></caption>"
            f"{body}</table>")


def number(value: float) -> str:
    """A float in 4 significant digits."""
    return f"{float(value):.4g}"


def count(n: int) -> str:
    """An exact count, or about ``d.dde+k`` beyond a million (counts of choices can be huge).

    >>> count(16), count(2 ** 300)
    ('16', 'about 2.04e+90')
    """
    digits = str(int(n))
    if len(digits) <= 6:
        return digits
    mantissa, exponent = int(digits[:4]) / 1000, len(digits) - 1
    if mantissa >= 9.995:
        mantissa, exponent = 1.0, exponent + 1
    return f"about {mantissa:.2f}e+{exponent}"


def interval_range(lo, hi) -> str:
    """``[min lo, max hi]`` of arrays (``[]`` when empty)."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    if lo.size == 0:
        return "[]"
    return f"[{number(np.min(lo))}, {number(np.max(hi))}]"


def listed(counts: dict, most: int = 6) -> str:
    """``name (count), ...`` in decreasing count (the ``most`` largest), or ``none``."""
    if not counts:
        return "none"
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    more = f", ... ({len(ranked) - most} more)" if len(ranked) > most else ""
    return ", ".join(f"{k} ({v})" for k, v in ranked[:most]) + more


def matrix(M) -> str:
    """A small matrix on one line, 4 significant digits."""
    return np.array2string(np.asarray(M), separator=", ", max_line_width=10_000,
                           formatter={"float_kind": number}).replace("\n", "")
