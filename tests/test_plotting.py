"""Tests of conservative.plotting (Agg backend, no windows)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

import conservative as cv  # noqa: E402
from conservative.errors import InputError, ShapeError  # noqa: E402
from conservative.derivatives.attractor import ifs_attractor  # noqa: E402
from conservative.plotting import plot_attractor, plot_convergence  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def lab(i, j):
    return rf"$\partial x_{{{i}}} / \partial \theta_{{{j}}}$"


def attractor(n, m, *, hull=False, tol=0.05):
    rng = np.random.default_rng(n * 10 + m)
    A = rng.standard_normal((2, n, n))
    A *= 0.4 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    B = rng.uniform(-1, 1, (2, n, m))
    return ifs_attractor(A, B, hull=hull, tol=tol), np.linalg.solve(np.eye(n) - A, B)


def test_one_dimensional_set_on_a_strip_with_its_intervals():
    att, imp = attractor(1, 1, hull=True, tol=1e-2)
    ax = plot_attractor(att, implicit=imp)
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == lab(0, 0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["attractor", "implicit set"]
    assert "Hausdorff" in ax.get_title() and "1 interval" in ax.get_title()
    lo, hi = ax.get_xlim()
    assert lo <= att.intervals[0, 0] and att.intervals[-1, 1] <= hi     # nothing cut off


def test_a_countable_set_gets_an_inset_on_its_accumulation_point():
    # {1 - 2^-j} and 1: the intervals pile up at 1
    att = ifs_attractor([[[0.0]], [[0.5]]], [[[0.5]], [[0.5]]], hull=False, tol=1e-6)
    ax = plot_attractor(att, names=["dw/dlam"])
    assert ax.get_xlabel() == "dw/dlam"
    insets = [child for child in ax.child_axes]
    assert len(insets) == 1
    lo, hi = insets[0].get_xlim()
    assert lo > 0.9 and hi >= 1.0 - 1e-6                                 # near 1


def test_two_dimensional_scatter_on_given_axes():
    att, imp = attractor(2, 1)
    fig, ax = plt.subplots()
    out = plot_attractor(att, implicit=imp, ax=ax)
    assert out is ax
    assert (ax.get_xlabel(), ax.get_ylabel()) == (lab(0, 0), lab(1, 0))
    np.testing.assert_allclose(ax.collections[0].get_offsets(), att.points.reshape(-1, 2))


@pytest.mark.parametrize("shape", [(3, 1), (2, 2), (1, 3)])
def test_higher_dimensions_are_projected(shape):
    att, imp = attractor(*shape)
    ax = plot_attractor(att, implicit=imp)  # principal directions by default
    if att.dimension >= 2:
        assert ax.get_xlabel() == "principal direction 1"
    else:                                   # a one-dimensional attractor: a strip of its entry
        assert ax.get_xlabel() == lab(*att.axis_entry)
    ax = plot_attractor(att, entry=[(0, 0), (shape[0] - 1, shape[1] - 1)])
    assert ax.get_ylabel() == lab(shape[0] - 1, shape[1] - 1)
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], att.points[:, 0, 0])
    ax = plot_attractor(att, entry=(0, 0))  # a single entry: on a strip
    assert ax.get_xlabel() == lab(0, 0) and ax.get_yticks().size == 0
    d = shape[0] * shape[1]
    V = np.zeros((d, 2))
    V[0, 0] = V[-1, 1] = 1.0
    ax = plot_attractor(att, projection=V)
    np.testing.assert_allclose(ax.collections[0].get_offsets(),
                               att.points.reshape(len(att), -1)[:, [0, -1]])


def test_plain_point_arrays_are_accepted():
    ax = plot_attractor(np.random.default_rng(0).standard_normal((50, 2)))
    assert ax.get_title() == "attractor: 50 points"


@pytest.mark.parametrize("kwargs, error", [
    (dict(entry=5), InputError),
    (dict(entry=(0, 3)), InputError),
    (dict(entry=[0, 1, 2]), InputError),
    (dict(entry=0, projection="pca"), InputError),
    (dict(projection=np.ones((4, 2))), ShapeError),
    (dict(implicit=np.zeros((2, 3, 1))), ShapeError),
])
def test_plot_attractor_bad_input(kwargs, error):
    att, _ = attractor(2, 1)
    with pytest.raises(error, match="cv.plot_attractor"):
        plot_attractor(att, **kwargs)


def test_convergence_plot_has_log_scale_and_one_line_per_mode():
    k = np.arange(40)
    errors = {"piggyback": 0.25 * (1 + k) * 0.5 ** k, "fpad": 0.5 ** k,
              "one-step": np.concatenate([[1.0], np.zeros(39)])}  # zeros are skipped
    ax = plot_convergence(errors)
    assert isinstance(ax, Axes)
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == list(errors)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), errors["piggyback"])
    # curves that coincide are told apart by markers and styles
    assert ax.get_lines()[0].get_marker() != ax.get_lines()[1].get_marker()


def test_reference_lines_stop_at_the_noise_floor():
    k = np.arange(80)
    measured = np.maximum(0.5 ** k, 1e-16)               # stalls at rounding
    ax = plot_convergence({"fpad": measured}, reference={"rho^k": 0.5 ** k})
    floor = ax.get_ylim()[0]
    assert floor >= 1e-18
    ref = ax.get_lines()[1].get_ydata()
    assert np.all(np.isnan(ref) | (ref >= floor))
    fig, ax2 = plt.subplots()
    assert plot_convergence({"a": [1.0, 0.1]}, ax=ax2) is ax2


@pytest.mark.parametrize("errors", [{}, [1.0, 2.0], {"a": np.ones((2, 2))}, {"a": [1.0, -1.0]},
                                    {"a": [1.0, float("nan")]}])
def test_plot_convergence_bad_input(errors):
    with pytest.raises(InputError, match="cv.plot_convergence"):
        plot_convergence(errors)


# --- figures that read well (issue 14) -------------------------------------------------------

def _y_axis_labelled_or_hidden(ax):
    hidden = ax.get_yticks().size == 0 and not ax.spines["left"].get_visible()
    return bool(ax.get_ylabel()) or hidden


def test_every_axis_is_labelled_or_not_drawn():
    k = np.arange(20)
    axes = [plot_convergence({"a": 0.5 ** k}, reference={"r": 0.5 ** k})]
    axes.append(plot_attractor(attractor(2, 1)[0]))                      # a scatter
    axes.append(plot_attractor(attractor(1, 1, hull=True, tol=1e-2)[0]))  # a strip
    axes.append(plot_attractor(ifs_attractor([[[0.0]], [[0.5]]], [[[0.5]], [[0.5]]],
                                             hull=False, tol=1e-6)))      # a strip, an inset
    for ax in axes:
        assert ax.get_xlabel()
        assert _y_axis_labelled_or_hidden(ax), ax.get_title()
    assert all(ax.get_title().startswith("attractor: ") for ax in axes[1:])
    strip = axes[2]
    assert strip.get_ylabel() == "" and not strip.spines["left"].get_visible()


def test_references_do_not_stretch_the_axis_below_the_noise_floor():
    # measured errors stall at 1e-12 (rounding); rho^k would reach 1e-60 after 200 steps
    k = np.arange(200)
    measured = np.maximum(0.5 ** k, 1e-12)
    ax = plot_convergence({"piggyback": measured},
                          reference={"rho^k": 0.5 ** k, "(k+1) rho^k": (k + 1) * 0.5 ** k})
    bottom = ax.get_ylim()[0]
    assert 1e-14 <= bottom <= 1e-12                    # a little below the lowest measurement
    for ref in ax.get_lines()[1:]:
        y = np.asarray(ref.get_ydata(), dtype=float)
        assert np.all(np.isnan(y) | (y >= 1e-12))      # nothing under the noise floor
        assert np.isnan(y[-1]) and not np.isnan(y[0])
    # an explicit floor above the measurements is respected by both kinds of line
    ax = plot_convergence({"piggyback": measured}, reference={"rho^k": 0.5 ** k}, floor=1e-6)
    assert ax.get_ylim()[0] == pytest.approx(1e-6)
    assert np.nanmin(ax.get_lines()[1].get_ydata()) >= 1e-6


def test_coinciding_curves_stay_distinguishable():
    # three modes with identical errors (FPAD and the implicit formula at w_k in notebook 05)
    k = np.arange(50)
    same = 0.25 * 0.5 ** k
    ax = plot_convergence({"piggyback": same, "FPAD": same, "implicit at w_k": same},
                          reference={"0.25 0.5^k": same, "0.25 (1+k) 0.5^k": (1 + k) * same})
    lines = ax.get_lines()
    modes, refs = lines[:3], lines[3:]
    looks = {(line.get_linestyle(), line.get_marker()) for line in modes}
    assert len(looks) == 3                             # no two modes drawn alike
    # a mode drawn under another is wider (it shows around it), and its markers do not sit
    # on the same iterations
    order = sorted(modes, key=lambda line: line.get_zorder(), reverse=True)
    widths = [line.get_linewidth() for line in order]
    assert widths == sorted(widths) and len(set(widths)) == 3
    starts = {line.get_markevery()[0] for line in modes}
    assert len(starts) == 3
    assert refs[0].get_linestyle() != refs[1].get_linestyle()   # a dash pattern each
    # references are thin lines on top: visible on the curve they match
    assert all(ref.get_zorder() > max(m.get_zorder() for m in modes) for ref in refs)
    assert all(ref.get_linewidth() < min(m.get_linewidth() for m in modes) for ref in refs)


@pytest.mark.slow
def test_a_strip_of_a_million_intervals_draws_the_visible_pieces():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from conservative.plotting import _merged
    F1 = cv.trace(lambda x, t: x / 3.0 + (2.0 / 3.0) * cv.relu(t), (), ())
    att = cv.attractor(F1, 0.0, 0.0, hull=False, tol=2e-10)     # the Cantor set, 2^20 pieces
    assert len(att.intervals) > 500_000
    fig, ax = plt.subplots()
    cv.plotting.plot_attractor(att, ax=ax)
    drawn = sum(len(c.get_paths()) for c in ax.collections)
    plt.close(fig)
    assert drawn < 5_000
    # merging closes exactly the gaps below the resolution: the Cantor gaps 3^-k of level
    # k <= 8 stay (2^8 pieces), finer ones close
    pieces = _merged(np.asarray(att.intervals), 1e-4)
    assert len(pieces) == 2 ** 8
    assert np.all(pieces[1:, 0] - pieces[:-1, 1] > 1e-4)
