"""Execute every notebook in ``notebooks/``; a failing cell (including an ``assert``) fails the test.

The notebooks check their own claims with plain ``assert`` statements, so executing them is the
test. Skipped when the notebook machinery (nbformat, nbclient, ipykernel) is not installed; a
notebook that uses scikit-learn as an oracle is skipped when scikit-learn is not installed.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


# notebooks that import programs from other frameworks need those frameworks (the test extra)
REQUIRES = {"09_bring_your_own_model.ipynb": ("jax", "jaxopt", "torch")}


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 7, f"expected the seven notebooks in {NOTEBOOK_DIR}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    for module in REQUIRES.get(path.name, ()):
        pytest.importorskip(module)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the kernel imports the package from this checkout, like the tests (not an installed copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(NOTEBOOK_DIR.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    nb = nbformat.read(path, as_version=4)
    if any("sklearn" in cell.source for cell in nb.cells):
        pytest.importorskip("sklearn")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed\n{exc}", pytrace=False)
