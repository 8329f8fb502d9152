"""Every primitive has every rule it needs; imports only point down the layers of
docs/architecture.md."""

import ast
import pathlib

import pytest

import conservative  # noqa: F401  (registers the primitives)
from conservative.primitives import PRIMITIVES

PKG = pathlib.Path(conservative.__file__).parent

LAYERS = {
    "_types": 0, "errors": 0, "_deadline": 0,
    "sets": 1, "interval": 1, "distances": 1, "_exact": 1,
    "primitives": 2, "rules": 2,
    "dsl": 3, "graph": 3, "linalg": 3,
    "evaluate": 4, "jacobian": 4, "map": 4, "iterate": 4, "enclose": 4,
    "picard": 5, "piggyback": 5, "attractor": 5, "implicit": 5, "jsr": 5, "certify": 5,
    "ifs": 5, "derivatives": 5, "verify": 5,
    "algorithms": 6, "examples": 6, "symbolic": 6, "plotting": 6, "cli": 6, "datasets": 6,
    "__init__": 7, "__main__": 7,
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_has_its_rules(name):
    prim = PRIMITIVES[name]
    assert callable(prim.impl) and callable(prim.shape_rule)
    assert prim.sympy is not None, f"{name} has no sympy form"
    if prim.kind == "elementwise":
        assert (prim.partials is None) != (prim.pieces is None), name
        assert callable(prim.interval) and callable(prim.interval_partials), name
        if prim.pieces is not None:
            assert prim.default_rule, f"{name} must document its default selection"
            assert callable(prim.default_partials), name
    elif prim.kind == "structural":
        assert callable(prim.jvp) and callable(prim.transpose), name
        assert callable(prim.interval) and callable(prim.interval_jvp), name
    else:
        assert prim.kind == "input", name


def _layer_of(path: pathlib.Path) -> int:
    rel = path.relative_to(PKG)
    if rel == pathlib.Path("__init__.py"):
        return LAYERS["__init__"]
    top = rel.with_suffix("").parts[0]
    assert top in LAYERS, f"{rel} has no layer: add it to LAYERS in this test"
    return LAYERS[top]


def _imported_tops(path: pathlib.Path):
    """Top-level package modules named by the relative imports of ``path``."""
    here = list(path.relative_to(PKG).parts[:-1])        # the file's package, below PKG
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.level > 0):
            continue
        base = here[:len(here) - (node.level - 1)]
        target = base + (node.module.split(".") if node.module else [])
        if target:
            yield target[0]
        else:
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    mine = _layer_of(path)
    for target in _imported_tops(path):
        assert target in LAYERS, f"{path.name} imports {target}, which has no layer"
        assert LAYERS[target] <= mine, \
            f"{path.relative_to(PKG)} (layer {mine}) imports {target} (layer {LAYERS[target]})"


def test_the_project_cites_only_its_own_documents():
    # reference values and conventions live in docs/; the design notes outside the repository
    # are not something a user can open
    root = PKG.parent
    outside = ("DESIGN" + ".md", "../" + "shared")
    files = [p for d in ("conservative", "tests", "notebooks", "docs", "bench")
             for p in (root / d).rglob("*") if p.suffix in {".py", ".ipynb", ".md", ".rst"}]
    files.append(root / "README.md")
    cited = [f"{p.relative_to(root)}: {word}" for p in files if p.exists()
             for word in outside if word in p.read_text(encoding="utf-8")]
    assert not cited, cited
    assert (root / "docs" / "reference_values.md").exists()
