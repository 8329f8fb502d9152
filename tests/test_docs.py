"""The documentation site stays true, without running Sphinx.

* Every public name (``cv.__all__`` and the ``__all__`` of the public subpackages) is listed on a
  page of the API reference (``docs/api/*.rst``), and every listed name exists in the package
  or is declared still to come in ``docs/conf.py`` (``cv_api_pending``).
* The examples of the pages run as written: their ``python`` blocks, in order, in one fresh
  namespace per page (like ``tests/test_readme.py`` for the README).
* The pages for authors of extensions run against the package: the primitive of
  ``adding_a_primitive.md`` in a fresh process, the norm family of ``adding_a_norm_family.md``
  in the namespaces of the modules the page says it goes into.
* The commands of the command-line page run with the exit status it documents.
"""

import ast
import importlib
import inspect
import os
import pathlib
import re
import shlex
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import conservative as cv

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"

# subpackages whose __all__ the reference covers name by name
SUBPACKAGES = ("algorithms", "examples", "plotting", "datasets", "linalg", "symbolic")


# --- the API reference -----------------------------------------------------------------------

def _listed_names() -> dict[str, str]:
    """Full name -> page, for every entry of every ``autosummary`` block of the API pages.

    An independent reading of the reST (the build uses Sphinx's own parser): an entry is an
    indented line after ``.. autosummary::`` and its options; ``.. currentmodule::`` sets the
    module of the entries that follow.
    """
    listed = {}
    for page in sorted(API.glob("*.rst")):
        module, in_block = None, False
        for line in page.read_text().splitlines():
            directive = re.match(r"\.\.\s+(currentmodule|module|autosummary)::\s*(\S*)", line)
            if directive:
                kind, arg = directive.groups()
                in_block = kind == "autosummary"
                if kind != "autosummary":
                    module = arg
                continue
            if in_block:
                if line and not line[0].isspace():
                    in_block = False                      # the block ends at unindented text
                    continue
                entry = line.strip()
                if entry and not entry.startswith(":"):
                    entry = entry.lstrip("~").split()[0]
                    full = entry if module is None or entry.startswith(module + ".") \
                        else f"{module}.{entry}"
                    listed[full] = page.name
    return listed


def _pending() -> set[str]:
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "cv_api_pending"
                                                for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("docs/conf.py defines no cv_api_pending")


def _resolve(full: str):
    module, _, name = full.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _public_names() -> list[tuple[str, object]]:
    names = []
    for name in cv.__all__:
        obj = getattr(cv, name)
        if name in SUBPACKAGES:
            continue                  # a module: its own __all__ is listed below, name by name
        names.append((f"conservative.{name}", obj))
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"conservative.{sub}")
        names += [(f"conservative.{sub}.{name}", getattr(module, name))
                  for name in module.__all__]
    return names


def test_the_reader_of_the_reference_finds_the_blocks():
    listed = _listed_names()
    assert listed["conservative.trace"] == "tracing.rst"
    assert listed["conservative.algorithms.heavy_ball"] == "zoo.rst"
    assert listed["conservative.plotting.plot_attractor"] == "plotting.rst"
    assert "conservative.solve" not in listed             # under currentmodule linalg


def test_every_public_name_is_in_the_api_reference():
    listed = _listed_names()
    documented = {id(obj) for obj in filter(None, map(_resolve, listed))}
    missing = [full for full, obj in _public_names()
               # a re-export (cv.Counterexample is cv.examples.Counterexample) counts once
               if full not in listed and id(obj) not in documented]
    assert not missing, (
        f"public names missing from the API reference: {missing}; list each on the page of "
        "its topic in docs/api/ (one line in an autosummary block)")


def test_subpackages_of_the_public_api_are_all_covered():
    # a new public subpackage needs its names in the reference too: list it in SUBPACKAGES
    modules = {name for name in cv.__all__ if inspect.ismodule(getattr(cv, name))}
    assert modules == set(SUBPACKAGES), (
        f"public subpackages {sorted(modules)}, the test knows {sorted(SUBPACKAGES)}: add a new "
        "one to SUBPACKAGES and list its names in docs/api/")


def test_every_listed_name_exists_or_is_declared_still_to_come():
    pending = _pending()
    absent = [full for full in _listed_names() if _resolve(full) is None]
    undeclared = [full for full in absent if full.rpartition(".")[2] not in pending]
    assert not undeclared, (
        f"listed in docs/api/ but not in the package: {undeclared}; fix the name, or add it to "
        "cv_api_pending in docs/conf.py if it is still to come")


def test_the_names_declared_still_to_come_are_listed():
    listed_short = {full.rpartition(".")[2] for full in _listed_names()}
    assert _pending() <= listed_short


# --- examples of the pages -----------------------------------------------------------------

EXAMPLE_PAGES = sorted(
    [DOCS / "index.md", DOCS / "getting_started.md"]
    + list((DOCS / "howto").glob("*.md")) + list((DOCS / "concepts").glob("*.md")),
    key=str)
OPTIONAL = {"jax": "jax", "torch": "torch"}


def _python_blocks(page: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def test_the_pages_with_examples_have_them():
    pages = {p.relative_to(DOCS).as_posix() for p in EXAMPLE_PAGES if _python_blocks(p)}
    assert {"getting_started.md", "howto/certify_contraction.md", "howto/certify_region.md",
            "howto/inspect_attractor.md", "howto/counterexample.md",
            "howto/foreign_models.md"} <= pages


@pytest.mark.parametrize("page", [p for p in EXAMPLE_PAGES if _python_blocks(p)],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page, tmp_path, monkeypatch):
    code = "\n".join(_python_blocks(page))
    for module, dist in OPTIONAL.items():
        if re.search(rf"^\s*(import|from) {module}\b", code, re.M):
            pytest.importorskip(dist)
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)            # figures a page saves land in a temporary folder
    namespace = {"__name__": "__docs__"}   # nothing injected: the blocks run as written
    exec(compile(code, str(page), "exec"), namespace)


# --- the pages for authors of extensions --------------------------------------------------

def test_adding_a_primitive_page_runs_as_written(tmp_path):
    # a fresh process: the page registers the primitive "example_leaky_relu", and so does
    # tests/test_extend.py in this one (a name is registered once per process)
    code = "\n".join(_python_blocks(DOCS / "adding_a_primitive.md"))
    assert "extend.defpieces(" in code and "missing_rules(leaky_relu_p) == []" in code
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    run = subprocess.run([sys.executable, "-c", code + "\nprint('page ran')"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "page ran" in run.stdout, run.stderr


def test_adding_a_norm_family_page_runs_against_the_package():
    """The class and the FINDERS line of the page, executed where the page says they go."""
    import conservative.certify.finders as finders
    import conservative.certify.norms as norms
    from conservative.certify.targets import MatrixSet
    blocks = _python_blocks(DOCS / "adding_a_norm_family.md")
    assert len(blocks) == 2
    in_norms = dict(vars(norms))                   # the class, in conservative/certify/norms.py
    exec(compile(blocks[0], "adding_a_norm_family.md", "exec"), in_norms)
    family = in_norms["WeightedOneNorm"]
    assert issubclass(family, norms.Norm)
    in_finders = dict(vars(finders), WeightedOneNorm=family)
    exec(compile(blocks[1], "adding_a_norm_family.md", "exec"), in_finders)
    shown = [cls for cls in in_finders["FINDERS"] if cls is not Ellipsis]
    # the page shows the head of the real tuple, the new family inserted where it says
    assert [cls for cls in shown if cls is not family] == list(finders.FINDERS[:len(shown) - 1])
    assert shown.index(family) == 2
    # the names the text relies on exist
    assert callable(finders.analyse) and callable(norms.rigorous.prove_with_margin)
    for method in ("in_coordinates", "euclidean_factor", "describe", "to_dict", "estimate",
                   "prove", "applies", "find"):
        assert hasattr(norms.Norm, method), method
    # the loop uses the family like every other: with the page's FINDERS (and the rest of the
    # real ones) a set whose column sums contract is bounded by the new family, exactly
    A = np.array([[[0.5, 0.0], [0.4, 0.1]], [[0.2, 0.1], [0.1, 0.3]]])
    an = finders.analyse(MatrixSet(A), finders=tuple(shown) + finders.FINDERS[len(shown) - 1:])
    proved = [u for u in an.uppers if isinstance(u.norm, family)]
    assert proved and proved[0].verified == "exact" and proved[0].value < 1
    w = [Fraction(float(v)) for v in proved[0].norm.w]
    rho = Fraction(proved[0].value)
    for a in A:                                    # max_j sum_i w_i |a_ij| / w_j <= rho, exactly
        for j in range(2):
            assert sum(w[i] * abs(Fraction(float(a[i, j]))) for i in range(2)) <= rho * w[j]


# --- rows of the kink conventions page (docs/conventions.md) ---------------------------------

def test_conventions_rows_of_group_soft_threshold_and_huber():
    jax = pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    jnp = jax.numpy
    z0, t0 = np.array([3.0, 4.0]), 5.0                     # ||z|| = t: on the kink
    nonzero = np.concatenate([np.outer(z0, z0) / t0 ** 2, -z0[:, None] / t0], axis=1)
    zero = np.zeros((2, 3))
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (2,), ())
    js = F.jacobian(z0, t0, hull=False)
    assert len(js.vertices) == 2
    assert {tuple(v.round(12).ravel()) for v in js.vertices} == \
        {tuple(nonzero.ravel()), tuple(zero.ravel())}
    np.testing.assert_array_equal(js.default, zero)                    # the zero piece

    def jax_jacobian(fn):
        with jax.enable_x64(True):
            dz, dt = jax.jacfwd(fn, argnums=(0, 1))(jnp.asarray(z0), jnp.asarray(t0))
        return np.concatenate([np.asarray(dz), np.asarray(dt)[:, None]], axis=1)

    def with_relu(z, t, relu, norm):
        n = norm(z)
        return z / n * relu(n - t)

    relu_jax = jax_jacobian(lambda z, t: with_relu(z, t, jax.nn.relu, jnp.linalg.norm))
    max_jax = jax_jacobian(lambda z, t: jnp.maximum(1 - t / jnp.linalg.norm(z), 0) * z)
    np.testing.assert_allclose(relu_jax, zero, atol=1e-15)
    np.testing.assert_allclose(max_jax, (nonzero + zero) / 2, atol=1e-15)   # in the hull
    assert F.jacobian(z0, t0).contains(max_jax)
    jaxopt = pytest.importorskip("jaxopt")
    prox = jax_jacobian(lambda z, t: jaxopt.prox.prox_group_lasso(z, t))
    np.testing.assert_allclose(prox, nonzero, atol=1e-15)

    def torch_jacobian(fn):
        z = torch.tensor(z0, dtype=torch.float64)
        t = torch.tensor(t0, dtype=torch.float64)
        dz, dt = torch.autograd.functional.jacobian(fn, (z, t))
        return np.concatenate([dz.numpy(), dt.numpy()[:, None]], axis=1)

    clamp = torch_jacobian(lambda z, t: torch.clamp(1 - t / torch.linalg.norm(z), min=0) * z)
    np.testing.assert_allclose(clamp, nonzero, atol=1e-15)
    relu_torch = torch_jacobian(lambda z, t: with_relu(z, t, torch.relu, torch.linalg.norm))
    np.testing.assert_allclose(relu_torch, zero, atol=1e-15)

    # huber on |z| = delta: one Jacobian (clip(z, -d, d), max(|z| - d, 0)) = (1, 0), as in both
    H = cv.trace(lambda z, d: cv.huber(z, d), (), ())
    jh = H.jacobian(1.0, 1.0, hull=False, tol=1e-9)
    assert jh.is_singleton
    np.testing.assert_array_equal(jh.default, [[1.0, 0.0]])
    with jax.enable_x64(True):
        g = jax.grad(lambda z, d: jnp.where(jnp.abs(z) <= d, z ** 2 / 2, d * (jnp.abs(z) - d / 2)),
                     argnums=(0, 1))(1.0, 1.0)
    assert (float(g[0]), float(g[1])) == (1.0, 0.0)
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.huber_loss(x, torch.zeros((), dtype=torch.float64), delta=1.0).backward()
    assert float(x.grad) == 1.0


# --- the command-line page -------------------------------------------------------------------

def _console_commands(page: pathlib.Path) -> list[tuple[str, int, list[str]]]:
    """(command, exit status, output lines shown) for each ``$ ...`` line of console blocks.

    A trailing comment ``# exit status N`` gives the status (otherwise 0); the lines after a
    command, up to the next one, are the output the page shows.
    """
    commands = []
    for block in re.findall(r"^```console\n(.*?)^```", page.read_text(), re.S | re.M):
        for line in block.splitlines():
            if line.startswith("$ "):
                command, _, comment = line[2:].partition("  #")
                status = re.search(r"exit status (\d+)", comment)
                commands.append((command.strip(), int(status.group(1)) if status else 0, []))
            elif commands:
                commands[-1][2].append(line)
    return commands


@pytest.mark.slow
def test_cli_page_commands_run(tmp_path):
    commands = _console_commands(DOCS / "cli.md")
    assert any(c.startswith("conservative jsr") for c, _, _ in commands)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    cli = f"{shlex.quote(sys.executable)} -m conservative.cli"   # the checkout's command line
    for command, status, shown in commands:
        if command.startswith("conservative demo"):
            continue                       # the demo is run by tests/test_cli.py
        shell = re.sub(r"^conservative\b", cli, command)
        shell = re.sub(r"^python\b", shlex.quote(sys.executable), shell)
        run = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == status, (command, run.stdout, run.stderr)
        # the output shown is the output printed, up to its numbers (solver digits may move)
        for line in shown:
            words = re.split(r"[0-9]", line)[0].rstrip()
            assert words in run.stdout + run.stderr, (command, words, run.stdout, run.stderr)
