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


def _entry_label(flat: int, shape: tuple[int, int]) -> str:
    i, j = divmod(flat, shape[1])
    return f"J[{i}, {j}]"


def _projection(Z: np.ndarray, shape, entry, projection, call: str):
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
        return np.eye(d)[:, flats], centre, [_entry_label(f, shape) for f in flats]
    if projection is None and d <= 2:
        return np.eye(d), centre, [_entry_label(f, shape) for f in range(d)]
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


def plot_attractor(attractor, *, implicit=None, ax=None, entry=None, projection=None):
    """Draw the points of an :class:`~conservative.ifs.Attractor` (and the implicit set).

    * one-dimensional sets (``n*m == 1``, or a single ``entry``): the points on a line at height
      0, with the interval ``[min, max]`` (the convex hull) drawn as a band;
    * two-dimensional sets (``n*m == 2`` or a pair of entries): a scatter plot;
    * higher dimensions: the projection onto the top two principal directions of the points
      (``projection=None`` or ``"pca"``), onto the columns of a given (d, 2) matrix, or onto two
      chosen entries.

    The title reports the number of points and the proved Hausdorff bound.

    Parameters
    ----------
    attractor : Attractor
        Or any object with ``points`` of shape (N, n, m) (and optionally ``hausdorff_bound``).
    implicit : array_like of shape (k, n, m), optional
        The implicit Jacobians ``(I - A_i)^{-1} B_i``, drawn on top (red crosses).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created otherwise.
    entry : int, tuple (i, j), or list of two of those, optional
        One entry (a flat C-order index or an ``(i, j)`` tuple) to show on a line, or a *list*
        of two entries, e.g. ``[(0, 0), (1, 0)]``, for a scatter plot.
    projection : "pca" or array_like of shape (d, 2), optional
        Linear projection of the flattened points, d = n*m.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ShapeError
        If the points or the implicit set do not have shape (N, n, m), or the projection is not
        (d, 2).
    InputError
        If the entries are out of range, or both ``entry`` and ``projection`` are given.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from conservative.ifs import ifs_attractor
    >>> att = ifs_attractor([[[1 / 3]], [[1 / 3]]], [[[0.0]], [[2 / 3]]], hull=False, tol=1e-2)
    >>> ax = plot_attractor(att, implicit=[[[0.0]], [[1.0]]])
    >>> ax.get_xlabel()
    'J[0, 0]'
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
    Z = pts.reshape(len(pts), -1)
    V, centre, labels = _projection(Z, shape, entry, projection, call)
    X = (Z - centre) @ V
    imp = None
    if implicit is not None:
        imp = as_float_array(implicit, name="implicit", call=call)
        if imp.ndim == 2 and shape[1] == 1 and imp.shape[1] == shape[0]:
            imp = imp[:, :, None]
        if imp.ndim != 3 or imp.shape[1:] != shape:
            raise ShapeError(fail_message(call, f"implicit of shape {imp.shape}",
                                          f"pass an array of shape (k, {shape[0]}, {shape[1]})"))
        imp = (imp.reshape(len(imp), -1) - centre) @ V
    ax = _new_axes(ax)
    size = max(1.0, min(12.0, 4000.0 / len(X)))
    if X.shape[1] == 1:
        lo, hi = float(X.min()), float(X.max())
        ax.fill_between([lo, hi], -0.05, 0.05, color="C0", alpha=0.2,
                        label=f"hull [{lo:.4g}, {hi:.4g}]")
        ax.scatter(X[:, 0], np.zeros(len(X)), s=size, color="C0", label="attractor points")
        if imp is not None:
            ax.scatter(imp[:, 0], np.zeros(len(imp)), marker="x", s=60, color="C3",
                       label="implicit set", zorder=3)
        ax.set_ylim(-0.5, 0.5)
        ax.set_yticks([])
        ax.set_xlabel(labels[0])
    else:
        ax.scatter(X[:, 0], X[:, 1], s=size, color="C0", label="attractor points")
        if imp is not None:
            ax.scatter(imp[:, 0], imp[:, 1], marker="x", s=60, color="C3",
                       label="implicit set", zorder=3)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    bound = getattr(attractor, "hausdorff_bound", None)
    title = f"attractor: {len(pts)} points"
    if bound is not None:
        title += f", Hausdorff error <= {bound:.2g}"
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_convergence(errors, ax=None):
    """Plot ``||J_k - J̄||`` against k on a log scale, one line per mode.

    Parameters
    ----------
    errors : dict[str, array_like]
        For each mode (e.g. ``"piggyback"``, ``"fpad"``, ``"one-step"``), the errors
        ``||J_k - J̄||`` for k = 0, 1, ... (1-D). Zeros are not drawn (log scale).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created otherwise.

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
    >>> ax = plot_convergence({"piggyback": 0.25 * (1 + k) * 0.5**k, "fpad": 0.5**k})
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['piggyback', 'fpad']
    """
    call = "cv.plot_convergence"
    if not isinstance(errors, Mapping) or len(errors) == 0:
        raise InputError(fail_message(call, f"errors of type {type(errors).__name__}",
                                      "pass a non-empty dict {mode name: 1-D array of errors}"))
    curves = {}
    for name, values in errors.items():
        arr = as_float_array(values, name=f"errors[{name!r}]", call=call, finite=False)
        if arr.ndim != 1:
            raise ShapeError(fail_message(call, f"errors[{name!r}] of shape {arr.shape}",
                                          "pass a 1-D array of ||J_k - J_bar|| for k = 0, 1, ..."))
        if np.any(arr < 0) or np.any(np.isnan(arr)):
            raise InputError(fail_message(call, f"errors[{name!r}] with negative or NaN values",
                                          "pass norms ||J_k - J_bar|| (non-negative)"))
        curves[str(name)] = arr
    ax = _new_axes(ax)
    for name, arr in curves.items():
        ax.plot(np.arange(len(arr)), np.where(arr > 0, arr, np.nan), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel(r"$\|J_k - \bar J\|$")
    ax.legend(loc="best")
    return ax
