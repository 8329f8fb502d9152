"""Pictures of attractors and of derivative convergence (matplotlib).

Nothing here calls ``plt.show``; every function draws on the Axes it is given (or on a new one)
and returns that Axes, so it works under the non-interactive Agg backend, in scripts, tests and
notebooks alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._types import as_float_array
from .errors import InputError, ShapeError, fail_message

__all__ = ["plot_attractor", "plot_convergence"]


def _new_axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # lazy: importing this module must not choose a backend

    _, ax = plt.subplots()
    return ax


def _entry_index(entry, shape: tuple[int, int], call: str) -> int:
    """Flat (C-order) index of an entry given as an int or an (i, j) pair."""
    n, m = shape
    try:
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            flat = int(entry)
        else:
            i, j = entry
            if not (0 <= int(i) < n and 0 <= int(j) < m):
                raise IndexError
            flat = int(i) * m + int(j)
        if not 0 <= flat < n * m:
            raise IndexError
    except (TypeError, ValueError, IndexError):
        raise InputError(fail_message(
            call, f"entry {entry!r} for Jacobians of shape {shape}",
            f"pass a flat index in [0, {n * m}) or a pair (i, j) with i < {n}, j < {m}"))
    return flat


def _entry_label(flat: int, shape: tuple[int, int], names=None) -> str:
    """``∂x_i/∂θ_j`` (mathtext), or the user's name of the flat entry."""
    if names is not None:
        return str(names[flat])
    i, j = divmod(flat, shape[1])
    return rf"$\partial x_{{{i}}} / \partial \theta_{{{j}}}$"


def _projection(Z: np.ndarray, shape, entry, projection, call: str, names=None):
    """Return (matrix (d, p), centre (d,), axis labels), p in {1, 2}, for flat points Z (N, d)."""
    d = Z.shape[1]
    centre = np.zeros(d)
    if entry is not None and projection is not None:
        raise InputError(fail_message(call, "both entry and projection",
                                      "pass at most one of them"))
    if entry is not None:
        entries = list(entry) if isinstance(entry, list) else [entry]
        if len(entries) not in (1, 2):
            raise InputError(fail_message(call, f"entry={entry!r}",
                                          "pass one entry or a pair of entries"))
        flats = [_entry_index(e, shape, call) for e in entries]
        return np.eye(d)[:, flats], centre, [_entry_label(f, shape, names) for f in flats]
    if projection is None and d <= 2:
        return np.eye(d), centre, [_entry_label(f, shape, names) for f in range(d)]
    if projection is None:
        # the entries that vary most, when they carry the set (a flat set in few entries)
        spread = np.ptp(Z, axis=0)
        top = np.argsort(spread)[::-1][:2]
        if np.sum(spread > 1e-12 * max(spread.max(), 1e-300)) <= 2:
            top = np.sort(top) if spread[top[1]] > 0 else top[:1]
            return np.eye(d)[:, top], centre, [_entry_label(f, shape, names) for f in top]
    if projection is None or (isinstance(projection, str) and projection == "pca"):
        centre = Z.mean(axis=0)
        _, _, Vt = np.linalg.svd(Z - centre, full_matrices=False)
        V = Vt[:2].T
        if V.shape[1] < 2:
            V = np.concatenate([V, np.zeros((d, 2 - V.shape[1]))], axis=1)
        return V, centre, ["principal direction 1", "principal direction 2"]
    V = as_float_array(projection, name="projection", call=call)
    if V.shape == (2, d) and d != 2:
        V = V.T
    if V.shape != (d, 2):
        raise ShapeError(fail_message(call, f"projection of shape {V.shape}",
                                      f"pass 'pca' or a matrix of shape ({d}, 2)"))
    return V, centre, ["projection 1", "projection 2"]


def plot_attractor(attractor, *, implicit=None, ax=None, entry=None, projection=None,
                   names=None, zoom: bool = True):
    """Draw an attractor (and the implicit set), with axes named after the derivative.

    * one-dimensional sets (dimension 1, ``n*m == 1`` or a single ``entry``): a *strip*, the
      intervals of the set as bars on a number line along the entry's axis (no y axis: it
      would carry nothing), with an inset that zooms on the accumulation point (the narrowest
      window holding half of the intervals) when the set has many pieces;
    * two-dimensional views (``n*m == 2``, a pair of entries, or a set that varies in two
      entries only): a scatter plot of the points;
    * otherwise the projection onto the top two principal directions (``projection=None`` or
      ``"pca"``) or onto the columns of a given (d, 2) matrix.

    Axes are labelled ``∂x_i/∂θ_j`` (C-order indices of the flattened state and parameters), or
    with ``names``; the implicit set is drawn as red diamonds on top; the title says what is
    drawn and the proved Hausdorff bound.

    Parameters
    ----------
    attractor : Attractor
        Or any object with ``points`` of shape (N, n, m) (and optionally ``hausdorff_bound``).
    implicit : array_like of shape (k, n, m), or a JacobianSet, optional
        The implicit Jacobians ``(I - A_i)^{-1} B_i``.
    ax : matplotlib.axes.Axes, optional
    entry : int, tuple (i, j), or list of two of those, optional
        One entry (flat C-order index or ``(i, j)``) for a strip, or a *list* of two for a
        scatter plot.
    projection : "pca" or array_like of shape (d, 2), optional
    names : sequence of str, optional
        Names of the entries (C order), e.g. ``["dw0/dlam", ...]``; default the attractor's.
    zoom : bool
        Draw the inset on the accumulation point of a one-dimensional set.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ShapeError, InputError
        Points or implicit set of the wrong shape, entries out of range, both ``entry`` and
        ``projection``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from conservative.derivatives.attractor import ifs_attractor
    >>> att = ifs_attractor([[[1 / 3]], [[1 / 3]]], [[[0.0]], [[2 / 3]]], hull=False, tol=1e-2)
    >>> ax = plot_attractor(att, implicit=[[[0.0]], [[1.0]]])
    >>> ax.get_xlabel().startswith("$"), ax.get_title()
    (True, 'attractor: 16 intervals, Hausdorff error <= 0.0058')
    """
    call = "cv.plot_attractor"
    pts = as_float_array(getattr(attractor, "points", attractor), name="attractor.points",
                         call=call)
    if pts.ndim == 2:
        pts = pts[:, :, None]
    if pts.ndim != 3 or len(pts) == 0:
        raise ShapeError(fail_message(call, f"points of shape {pts.shape}",
                                      "pass an Attractor or a point set of shape (N, n, m)"))
    shape = pts.shape[1:]
    names = names if names is not None else getattr(attractor, "names", None)
    if names is not None and len(names) != shape[0] * shape[1]:
        raise InputError(fail_message(call, f"{len(names)} names for {shape[0] * shape[1]} "
                                      "entries", "pass one name per entry of J (C order)"))
    line = getattr(attractor, "line", None)
    if entry is None and projection is None and line is not None:
        flat = attractor.space.pivots[0]
        entry = divmod(flat, shape[1])
    Z = pts.reshape(len(pts), -1)
    V, centre, labels = _projection(Z, shape, entry, projection, call, names)
    X = (Z - centre) @ V
    imp = _implicit_points(implicit, shape, call)
    imp = None if imp is None else (imp.reshape(len(imp), -1) - centre) @ V
    ax = _new_axes(ax)
    bound = getattr(attractor, "hausdorff_bound", None)
    if X.shape[1] == 1:
        bars = _strip_bars(attractor, V[:, 0], centre, X[:, 0])
        _draw_strip(ax, bars, X[:, 0], imp, labels[0], zoom)
        what = f"{len(bars)} interval{'s' if len(bars) != 1 else ''}"
        if getattr(attractor, "kind", None) == "point":
            what = "a single point"
    else:
        size = max(1.0, min(12.0, 4000.0 / len(X)))
        ax.scatter(X[:, 0], X[:, 1], s=size, color="C0", label="attractor")
        if imp is not None:
            ax.scatter(imp[:, 0], imp[:, 1], marker="D", s=40, facecolor="none",
                       edgecolor="C3", linewidths=1.5, label="implicit set", zorder=3)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        what = f"{len(pts)} points"
    title = f"attractor: {what}"
    if bound is not None:
        title += f", Hausdorff error <= {bound:.2g}"
    ax.set_title(title)
    if X.shape[1] != 1:
        ax.legend(loc="best", fontsize="small")
    return ax


def _implicit_points(implicit, shape, call):
    if implicit is None:
        return None
    imp = as_float_array(getattr(implicit, "vertices", implicit), name="implicit", call=call)
    if imp.ndim == 2 and shape[1] == 1 and imp.shape[1] == shape[0]:
        imp = imp[:, :, None]
    if imp.ndim == 3 and imp.shape[1:] != shape and imp.shape[1] == shape[0] and \
            imp.shape[2] == shape[0] + shape[1]:
        imp = imp[:, :, shape[0]:]
    if imp.ndim != 3 or imp.shape[1:] != shape:
        raise ShapeError(fail_message(call, f"implicit of shape {imp.shape}",
                                      f"pass an array of shape (k, {shape[0]}, {shape[1]})"))
    return imp


def _strip_bars(attractor, v, centre, x):
    """Intervals (N, 2) along the drawn axis: the attractor's own (dimension 1) or the points."""
    line = getattr(attractor, "line", None)
    if line is not None:
        ends = attractor.space.embed(line.reshape(-1, 1)).reshape(len(line), 2, -1)
        proj = (ends - centre) @ v
        return np.sort(proj, axis=1)
    xs = np.unique(x)
    return np.stack([xs, xs], axis=1)


def _draw_strip(ax, bars, x, imp, label, zoom):
    span = float(bars.max() - bars.min()) or 1.0
    _bars_on(ax, bars, span)
    if imp is not None:
        ax.scatter(imp[:, 0], np.zeros(len(imp)), marker="D", s=45, facecolor="none",
                   edgecolor="C3", linewidths=1.5, label="implicit set", zorder=3)
    ax.set_ylim(-0.5, 0.5)
    _number_line(ax)
    ax.set_xlabel(label)
    ax.set_xlim(bars.min() - 0.05 * span, bars.max() + 0.05 * span)
    if zoom and len(bars) >= 8:
        half = len(bars) // 2
        widths = bars[half:, 1] - bars[:len(bars) - half, 0]
        i = int(np.argmin(widths))
        dense_lo, dense_hi = bars[i, 0], bars[i + half, 1]
        if dense_hi - dense_lo < 0.2 * span:
            # a window of a twentieth of the span around the accumulation point
            width = max(span / 20, dense_hi - dense_lo)
            centre = (dense_lo + dense_hi) / 2
            lo = max(bars.min(), centre - width / 2)
            hi = min(bars.max(), lo + width)
            lo = hi - width
            pad = 0.05 * width
            right = centre > bars.min() + span / 2
            inset = ax.inset_axes([0.04, 0.58, 0.42, 0.34] if right else
                                  [0.54, 0.58, 0.42, 0.34])
            _bars_on(inset, bars, width + 2 * pad, legend=False)
            if imp is not None:
                inset.scatter(imp[:, 0], np.zeros(len(imp)), marker="D", s=30,
                              facecolor="none", edgecolor="C3", zorder=3)
            inset.set_xlim(lo - pad, hi + pad)
            inset.set_ylim(-0.5, 0.5)
            inset.set_yticks([])
            inset.ticklabel_format(axis="x", useOffset=False)
            from matplotlib.ticker import MaxNLocator
            inset.xaxis.set_major_locator(MaxNLocator(3))
            inset.tick_params(labelsize="x-small")
            inset.set_title("zoom on the accumulation point", fontsize="x-small")
            ax.indicate_inset_zoom(inset, edgecolor="0.5")
            ax.legend(loc="lower left" if right else "lower right", fontsize="small")
            return
    ax.legend(loc="best", fontsize="small")


def _number_line(ax):
    """A strip is a number line: its y axis carries nothing, so it is not drawn at all."""
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)


def _merged(bars: np.ndarray, gap: float) -> np.ndarray:
    """The union of intervals (N, 2) with gaps up to ``gap`` closed: what the axis shows."""
    if len(bars) < 2:
        return bars
    b = bars[np.argsort(bars[:, 0], kind="stable")]
    reach = np.maximum.accumulate(b[:, 1])
    first = np.concatenate([[True], b[1:, 0] - reach[:-1] > gap])
    starts = np.flatnonzero(first)
    return np.stack([b[starts, 0], np.maximum.reduceat(b[:, 1], starts)], axis=1)


def _bars_on(ax, bars, span, legend=True):
    """Intervals as bars; degenerate ones (points) as ticks, so that none is invisible. Gaps
    below 1e-4 of the drawn span (far below a pixel) are closed first: a set of a million
    intervals draws as the few hundred pieces one can see."""
    bars = _merged(bars, 1e-4 * span)
    wide = bars[:, 1] - bars[:, 0] > 2e-3 * span
    label = "attractor" if legend else None
    if np.any(wide):
        ax.broken_barh([(a, b - a) for a, b in bars[wide]], (-0.08, 0.16), color="C0",
                       label=label)
        label = None
    if np.any(~wide):
        mids = bars[~wide].mean(axis=1)
        ax.vlines(mids, -0.1, 0.1, color="C0", linewidth=1.2, label=label)


def plot_convergence(errors, ax=None, *, reference=None, floor=None):
    """Plot ``||J_k - J̄||`` against k on a log scale, one line per mode.

    Parameters
    ----------
    errors : dict[str, array_like]
        For each mode (e.g. ``"piggyback"``, ``"fpad"``, ``"one-step"``), the errors
        ``||J_k - J̄||`` for k = 0, 1, ... (1-D). Zeros are not drawn (log scale). Curves that
        coincide stay visible: each has its own line style and marker (markers offset along
        k), and a curve drawn under earlier ones is wider, so that it shows around them.
    ax : matplotlib.axes.Axes, optional
    reference : dict[str, array_like], optional
        Reference curves (e.g. ``{"rho^k": rho ** k}``), thin grey lines on top of the
        curves, each with its own dash pattern, drawn only down to the *noise floor*: the
        smallest positive error of ``errors`` (a reference says nothing about where no
        measurement reaches), or ``floor`` if higher.
    floor : float, optional
        The bottom of the y axis (default: 1e-1 of the smallest positive error drawn, at
        least 1e-17): no curve is drawn below it. References never stretch the axis.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    InputError
        If ``errors`` is not a non-empty mapping of names to 1-D arrays of non-negative numbers.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> k = np.arange(30)
    >>> ax = plot_convergence({"piggyback": 0.25 * (1 + k) * 0.5**k, "fpad": 0.5**k},
    ...                       reference={"rho^k": 0.5**k, "rho^(2k)": 0.25**k})
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['piggyback', 'fpad', 'rho^k', 'rho^(2k)']
    >>> bool(ax.get_ylim()[0] >= 0.1 * 0.5**29)       # not stretched by rho^(2k)
    True
    """
    call = "cv.plot_convergence"
    curves = _curves(errors, call, "errors")
    refs = _curves(reference, call, "reference") if reference is not None else {}
    positive = [a[a > 0] for a in curves.values() if np.any(a > 0)]
    lowest = min((float(p.min()) for p in positive), default=1.0)
    if floor is None:
        floor = max(1e-17, 1e-1 * lowest)
    noise = max(floor, lowest)
    ax = _new_axes(ax)
    n = len(curves)
    for i, (name, arr) in enumerate(curves.items()):
        k = np.arange(len(arr))
        every = max(1, len(arr) // 12)
        ax.plot(k, np.where(arr > floor, arr, np.nan), _STYLES[i % len(_STYLES)],
                marker=_MARKERS[i % len(_MARKERS)], markevery=(i * every // max(1, n), every),
                markersize=4 + i, linewidth=1.3 + 0.9 * i, label=name, zorder=3 + n - i)
    for j, (name, arr) in enumerate(refs.items()):
        k = np.arange(len(arr))
        ax.plot(k, np.where(arr >= noise, arr, np.nan), color=_REF_GREYS[j % len(_REF_GREYS)],
                linestyle=_REF_DASHES[j % len(_REF_DASHES)], linewidth=1.1, label=name,
                zorder=4 + n)             # thin, on top: visible on the curve they match
    ax.set_yscale("log")
    top = max(float(np.nanmax(np.where(a > 0, a, np.nan))) if np.any(a > 0) else 1.0
              for a in list(curves.values()) + list(refs.values()))
    ax.set_ylim(floor, top * 2)
    ax.set_xlabel("iteration k")
    ax.set_ylabel(r"$\|J_k - \bar J\|$")
    ax.legend(loc="best")
    return ax


# measured curves: a line style and a marker each; references: grey, a dash pattern each
_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "v", "D", "x"]
_REF_DASHES = [":", "--", "-.", (0, (6, 2, 1, 2, 1, 2))]
_REF_GREYS = ["0.1", "0.45", "0.25", "0.6"]


def _curves(errors, call, what):
    if not isinstance(errors, Mapping) or len(errors) == 0:
        raise InputError(fail_message(call, f"{what} of type {type(errors).__name__}",
                                      f"pass a non-empty dict {{name: 1-D array}} as {what}"))
    curves = {}
    for name, values in errors.items():
        arr = as_float_array(values, name=f"{what}[{name!r}]", call=call, finite=False)
        if arr.ndim != 1:
            raise ShapeError(fail_message(call, f"{what}[{name!r}] of shape {arr.shape}",
                                          "pass a 1-D array of ||J_k - J_bar|| for k = 0, 1, ..."))
        if np.any(arr < 0) or np.any(np.isnan(arr)):
            raise InputError(fail_message(call, f"{what}[{name!r}] with negative or NaN values",
                                          "pass norms ||J_k - J_bar|| (non-negative)"))
        curves[str(name)] = arr
    return curves
