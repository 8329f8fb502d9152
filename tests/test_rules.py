"""Differential tests of the rule blocks: for every nonsmooth primitive, the directly computed
``default_partials`` equal the partials of the default piece (looked up in ``piece_partials``),
and the default piece is active, at random points and at kink points."""

import zlib

import numpy as np
import pytest

import conservative  # noqa: F401  (registers the primitives)
from conservative.primitives import PRIMITIVES, Nonsmooth

NONSMOOTH = sorted(name for name, p in PRIMITIVES.items() if isinstance(p, Nonsmooth))

# inputs made valid for each primitive's domain (thresholds >= 0, lo <= hi, continuous where)
VALID = {
    "soft_threshold": lambda v: [v[0], np.abs(v[1])],
    "clip": lambda v: [v[0], np.minimum(v[1], v[2]), np.maximum(v[1], v[2])],
    "select": lambda v: [v[0], v[1], np.where(v[0] == 0, v[1], v[2])],
}
PARAMS = {"select": [{"strict": True}, {"strict": False}]}


def _points(prim, rng, grid: bool, size=400):
    """Batched inputs; on a coarse grid ties and kinks (|z| == t, z == lo, a == b, ...) are
    frequent, off the grid they are absent."""
    n_inputs = len(prim.piece_partials[0])
    shape = (1, size)
    raw = [rng.integers(-2, 3, size=shape) * 0.5 if grid else rng.normal(size=shape)
           for _ in range(n_inputs)]
    return VALID.get(prim.name, list)(raw)


@pytest.mark.parametrize("name", NONSMOOTH)
@pytest.mark.parametrize("grid", [False, True], ids=["random", "kinks"])
def test_default_partials_are_the_default_pieces_partials(name, grid):
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(zlib.crc32(f"{name} {grid}".encode()))
    for params in PARAMS.get(name, [{}]):
        vals = _points(prim, rng, grid)
        out = prim.impl(*vals, **params)
        pieces = prim.pieces(vals, out, 0.0, **params)
        default = np.broadcast_to(pieces.default, out.shape)
        table = np.asarray(prim.piece_partials, dtype=float)         # (pieces, inputs)
        direct = prim.default_partials(vals, out, **params)
        assert len(direct) == table.shape[1]
        for i, d in enumerate(direct):
            np.testing.assert_array_equal(np.broadcast_to(d, out.shape), table[default, i],
                                          err_msg=f"{name} {params}: input {i}")
        # the default piece is one of the active ones, and the fallback lookup agrees
        active = np.broadcast_to(pieces.active, (len(table),) + out.shape)
        assert np.all(np.take_along_axis(active, default[None], axis=0))
        lookup = prim.selected_partials(vals, out, params)
        for d, e in zip(direct, lookup):
            np.testing.assert_array_equal(np.broadcast_to(d, out.shape),
                                          np.broadcast_to(e, out.shape))
        kinks = int(np.sum(active.sum(axis=0) >= 2))
        if grid:
            assert kinks > 0, f"{name}: no kink point sampled"
        else:
            assert kinks == 0


@pytest.mark.parametrize("name", NONSMOOTH)
def test_kink_default_is_active_on_every_kink(name):
    """On a kink (two or more pieces active), the piece the enclosure-based selection takes
    (``kink_default``) is one of them for the kinks a box around 0 meets."""
    from conservative.interval import Interval
    prim = PRIMITIVES[name]
    n_inputs = len(prim.piece_partials[0])
    for params in PARAMS.get(name, [{}]):
        box = [Interval(-1e-9, 1e-9)] + [Interval(0.0)] * (n_inputs - 1)
        possible = np.stack(np.broadcast_arrays(*prim.interval_active(box, 0.0, **params)))
        assert possible.sum(axis=0).max() >= 2, name
        assert possible[prim.kink_default(**params)].all(), name
