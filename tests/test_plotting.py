"""Tests of conservative.plotting (Agg backend, no windows)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from conservative.errors import InputError, ShapeError  # noqa: E402
from conservative.ifs import ifs_attractor  # noqa: E402
from conservative.plotting import plot_attractor, plot_convergence  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def attractor(n, m, *, hull=False, tol=0.05):
    rng = np.random.default_rng(n * 10 + m)
    A = rng.standard_normal((2, n, n))
    A *= 0.4 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    B = rng.uniform(-1, 1, (2, n, m))
    return ifs_attractor(A, B, hull=hull, tol=tol), np.linalg.solve(np.eye(n) - A, B)


def test_one_dimensional_set_on_a_line_with_its_hull():
    att, imp = attractor(1, 1, hull=True, tol=1e-2)
    ax = plot_attractor(att, implicit=imp)
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == "J[0, 0]"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "implicit set" in labels and any(label.startswith("hull [") for label in labels)
    offsets = ax.collections[1].get_offsets()  # the attractor points, at height 0
    assert len(offsets) == len(att) and np.all(offsets[:, 1] == 0)
    assert "Hausdorff" in ax.get_title()


def test_two_dimensional_scatter_on_given_axes():
    att, imp = attractor(2, 1)
    fig, ax = plt.subplots()
    out = plot_attractor(att, implicit=imp, ax=ax)
    assert out is ax
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("J[0, 0]", "J[1, 0]")
    np.testing.assert_allclose(ax.collections[0].get_offsets(), att.points.reshape(-1, 2))


@pytest.mark.parametrize("shape", [(3, 1), (2, 2), (1, 3)])
def test_higher_dimensions_are_projected(shape):
    att, imp = attractor(*shape)
    ax = plot_attractor(att, implicit=imp)  # principal directions by default
    assert ax.get_xlabel() == "principal direction 1"
    ax = plot_attractor(att, entry=[(0, 0), (shape[0] - 1, shape[1] - 1)])
    assert ax.get_ylabel() == f"J[{shape[0] - 1}, {shape[1] - 1}]"
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], att.points[:, 0, 0])
    ax = plot_attractor(att, entry=(0, 0))  # a single entry: on a line
    assert ax.get_xlabel() == "J[0, 0]" and ax.get_yticks().size == 0
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
    fig, ax2 = plt.subplots()
    assert plot_convergence({"a": [1.0, 0.1]}, ax=ax2) is ax2


@pytest.mark.parametrize("errors", [{}, [1.0, 2.0], {"a": np.ones((2, 2))}, {"a": [1.0, -1.0]},
                                    {"a": [1.0, float("nan")]}])
def test_plot_convergence_bad_input(errors):
    with pytest.raises(InputError, match="cv.plot_convergence"):
        plot_convergence(errors)
