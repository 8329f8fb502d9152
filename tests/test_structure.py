"""Every primitive has every rule it needs; imports only point down the layers; modules stay
small, list in ``__all__`` only what they define or re-export, and keep private names private."""

import ast
import importlib
import pathlib

import pytest

import conservative  # noqa: F401  (registers the primitives)
from conservative.extend import missing_rules
from conservative.primitives import PRIMITIVES, Leaf, Nonsmooth, Smooth, Structural

PKG = pathlib.Path(conservative.__file__).parent

LAYERS = {
    "_types": 0, "errors": 0, "_deadline": 0, "_display": 0,
    "sets": 1, "interval": 1, "distances": 1, "_exact": 1, "_spectral": 1,
    "primitives": 2, "rules": 2, "extend": 2,
    "dsl": 3, "graph": 3, "linalg": 3,
    "interpreter": 4, "compiled": 4, "evaluate": 4, "jacobian": 4, "map": 4, "enclose": 4,
    "fixed_point_set": 4, "where_jumps": 4, "affine_enclosure": 4, "affine_krawczyk": 4,
    "iterate": 5,
    "picard": 5, "piggyback": 5, "attractor": 5, "implicit": 5, "jsr": 5, "certify": 5,
    "ifs": 5, "derivatives": 5, "verify": 5,
    "algorithms": 6, "interop": 6, "examples": 6, "symbolic": 6, "plotting": 6, "cli": 6, "datasets": 6,
    "__init__": 7, "__main__": 7,
}


# example parameters of the primitives whose rules take some
EXAMPLE_PARAMS = {"select": {"strict": True}}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_has_its_rules(name):
    prim = PRIMITIVES[name]
    assert isinstance(prim, (Leaf, Smooth, Nonsmooth, Structural)), name
    assert missing_rules(prim, **EXAMPLE_PARAMS.get(name, {})) == [], name


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


# ---------------------------------------------------------------------------------------------
# The shape of modules: size, function length, __all__, no private names across modules.
# Each check applies to the subtrees in its scope (None: the whole package); every check now
# covers the whole package.
# ---------------------------------------------------------------------------------------------

MAX_MODULE_LINES = 900
MAX_FUNCTION_LINES = 80          # lines of a function body after its docstring

SCOPE_MODULE_LINES = None
SCOPE_FUNCTION_LINES = None
SCOPE_PRIVATE_IMPORTS = None
SCOPE_HAS_ALL = None
SCOPE_ALL_NAMES = None
# Old module paths kept for one release as re-exports of the new ones (their __all__ may list
# what they import from the package), e.g. "picard.py" once piggyback lives in derivatives/.
REEXPORT_SHIMS: set[str] = {"iterate.py", "picard.py", "implicit.py", "ifs.py", "jsr.py", "verify.py",
                             "derivatives/attractor.py"}   # the facade of the engine
# Modules whose purpose is one import for a kind of user: the extension API for new primitives.
FACADES = {"extend.py"}


def _modules(scope):
    """Package modules under the given top-level subtrees of ``conservative/`` (None: all)."""
    paths = sorted(PKG.rglob("*.py"))
    if scope is None:
        return paths
    return [p for p in paths if p.relative_to(PKG).with_suffix("").parts[0] in scope]


def _rel(path: pathlib.Path) -> str:
    return str(path.relative_to(PKG))


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_submodule(package_dir: pathlib.Path, name: str) -> bool:
    return (package_dir / f"{name}.py").exists() or (package_dir / name / "__init__.py").exists()


def _top_level_statements(tree: ast.Module):
    """Module-level statements, looking inside ``if`` and ``try`` blocks (not functions)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            stack[:0] = node.body + node.orelse + getattr(node, "finalbody", []) + [
                stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]


def _bound_names(tree: ast.Module):
    """Names a module binds itself, and names it imports from its own package (level 1)."""
    defined, from_own_package = set(), set()
    for node in _top_level_statements(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            from_own_package.update(a.asname or a.name for a in node.names)
    return defined, from_own_package


def _all_names(tree: ast.Module):
    for node in _top_level_statements(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            assert isinstance(node.value, (ast.List, ast.Tuple)), "__all__ must be a literal list"
            return [elt.value for elt in node.value.elts]
    return None


@pytest.mark.parametrize("path", _modules(SCOPE_MODULE_LINES), ids=_rel)
def test_modules_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_rel(path)} has {lines} lines (at most " \
        f"{MAX_MODULE_LINES}): split it along its sections"


@pytest.mark.parametrize("path", _modules(SCOPE_FUNCTION_LINES), ids=_rel)
def test_function_bodies_are_short(path):
    for node in ast.walk(_tree(path)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if (len(body) > 1 and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body = body[1:]                                       # the docstring does not count
        length = body[-1].end_lineno - body[0].lineno + 1
        assert length <= MAX_FUNCTION_LINES, \
            f"{_rel(path)}:{node.lineno} {node.name} has a body of {length} lines (at most " \
            f"{MAX_FUNCTION_LINES})"


@pytest.mark.parametrize("path", _modules(SCOPE_PRIVATE_IMPORTS), ids=_rel)
def test_no_private_names_imported_across_modules(path):
    """``from .x import _name`` is refused (private modules themselves may be imported)."""
    here = path.parent
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
        elif (node.module or "").split(".")[0] == "conservative":
            base = PKG.parent
        else:
            continue                                              # third-party modules
        target = base.joinpath(*(node.module.split(".") if node.module else []))
        for alias in node.names:
            dunder = alias.name.startswith("__") and alias.name.endswith("__")   # __version__
            if alias.name.startswith("_") and not dunder and not _is_submodule(target, alias.name):
                raise AssertionError(f"{_rel(path)}:{node.lineno} imports the private name "
                                     f"{alias.name} from {node.module or '.'}: make it public "
                                     "within the package (no underscore) or move it here")


@pytest.mark.parametrize("path", _modules(SCOPE_ALL_NAMES), ids=_rel)
def test_all_names_only_what_the_module_defines_or_reexports(path):
    """``__all__`` lists names the module defines; a package's ``__init__`` (or a re-export
    shim) may also list what it imports from its own package, and its submodules."""
    tree = _tree(path)
    names = _all_names(tree)
    in_scope = SCOPE_HAS_ALL is None or path in _modules(SCOPE_HAS_ALL)
    if names is None:
        assert not in_scope, f"{_rel(path)} has no __all__"
        return
    assert len(names) == len(set(names)), f"{_rel(path)}: __all__ repeats a name"
    defined, reexported = _bound_names(tree)
    facade = path.name == "__init__.py" or _rel(path) in REEXPORT_SHIMS | FACADES
    for name in names:
        ok = name in defined or facade and (name in reexported
                                            or _is_submodule(path.parent, name))
        assert ok, f"{_rel(path)}: __all__ names {name!r}, which it does not define" + (
            " nor import from its own package" if facade else " (only a package's __init__ "
            "re-exports)")
    module = importlib.import_module(".".join(("conservative",) + path.relative_to(PKG)
                                              .with_suffix("").parts).removesuffix(".__init__"))
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{_rel(path)}: __all__ names {missing}, absent at run time"


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
