"""The package installs like its peers: a wheel with types, data and licence, and a clean tree."""

import pathlib
import subprocess
import sys
import textwrap
import tomllib
import zipfile

import pytest

import conservative
from conservative.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "conservative"


def test_wheel_ships_every_module_the_data_the_types_and_the_licence(tmp_path, monkeypatch):
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    backend = pytest.importorskip(build_system["build-backend"])   # hatchling: the test extra
    before = {p.name for p in ROOT.iterdir()}
    monkeypatch.chdir(ROOT)                 # PEP 517 hooks run in the project's root
    name = backend.build_wheel(str(tmp_path))
    dist_info = f"conservative-{conservative.__version__}.dist-info"
    with zipfile.ZipFile(tmp_path / name) as wheel:
        files = set(wheel.namelist())
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
    sources = {p.relative_to(ROOT).as_posix() for p in PKG.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert sources <= files, sorted(sources - files)
    assert {"conservative/py.typed", "conservative/data/lasso_small.csv",
            f"{dist_info}/licenses/LICENSE"} <= files
    assert "conservative = conservative.cli:main" in entry_points
    assert f"\nVersion: {conservative.__version__}\n" in metadata
    assert "\nLicense-Expression: BSD-3-Clause\n" in metadata
    # nothing built into the source tree (setuptools leaves build/ and *.egg-info there); other
    # tests may add unrelated folders meanwhile (.hypothesis), so look for build output only
    added = {p.name for p in ROOT.iterdir()} - before
    assert not {name for name in added if name in ("build", "dist") or ".egg-info" in name}


def test_metadata_agrees_with_the_licence_and_the_citation():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation
    assert f"version: {conservative.__version__}\n" in citation
    assert "license: BSD-3-Clause\n" in citation


def test_command_line_prints_its_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"conservative {conservative.__version__}\n"


# Modules that take a large part of a second to import. The package imports each of them in the
# function that uses it, so that `import conservative` stays well under half a second.
HEAVY = ("sympy", "cvxpy", "matplotlib", "networkx", "scipy.optimize", "scipy.linalg",
         "scipy.spatial")


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter on this checkout; its standard output."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_leaves_heavy_modules_for_later():
    out = _fresh_python(f"""
        import sys
        import conservative
        print([name for name in {HEAVY!r} if name in sys.modules])
        """)
    assert out.strip() == "[]", f"`import conservative` imported {out.strip()}: import them in " \
        "the function that uses them"


def test_sympy_forms_import_sympy_on_first_use():
    out = _fresh_python("""
        import sys
        import conservative as cv
        from conservative.primitives import PRIMITIVES
        F = cv.trace(lambda x, t: cv.relu(x - t) + abs(x) * cv.exp(t), (), ())
        assert "sympy" not in sys.modules
        expr, x, t = cv.symbolic.to_sympy(F)
        import sympy
        X, T = x[()], t[()]
        assert sympy.simplify(expr[()] - (sympy.Max(X - T, 0) + sympy.Abs(X) * sympy.exp(T))) == 0
        assert PRIMITIVES["abs"].sympy(-2) == 2
        print("ok")
        """)
    assert out.strip() == "ok"
