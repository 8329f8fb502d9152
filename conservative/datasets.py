"""Small data sets shipped with the package, for demos, docs and tests."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["lasso_small"]


def lasso_small() -> tuple[np.ndarray, np.ndarray]:
    """A 30 x 8 regression problem with a sparse ground truth (features 0, 1, 4 active).

    Returns
    -------
    X : ndarray (30, 8)
        Columns scaled to norm sqrt(30).
    y : ndarray (30,)

    Examples
    --------
    >>> X, y = lasso_small()
    >>> X.shape, y.shape
    ((30, 8), (30,))
    """
    with resources.files("conservative").joinpath("data/lasso_small.csv").open() as f:
        data = np.loadtxt(f, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]
