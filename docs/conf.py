"""Sphinx configuration of the documentation of ``conservative``.

Build (from the repository root)::

    pip install '.[docs]'
    sphinx-build -W -b html docs docs/_build/html

Pages are MyST Markdown; the API reference (``api/*.rst``) is generated from the numpydoc
docstrings; the notebooks of ``notebooks/`` are rendered from their committed outputs (never
executed here: the test suite executes them).
"""

from __future__ import annotations

import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
# document the package of this checkout, whatever else is installed (as pytest does)
sys.path.insert(0, str(ROOT))

import conservative  # noqa: E402

project = "conservative"
author = "the conservative developers"
copyright = "the conservative developers (BSD-3-Clause)"
release = conservative.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "cv_api",          # docs/_ext/cv_api.py: stub pages, names still to come
]

# -- pages ----------------------------------------------------------------------------------------
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3              # [text](page.md#a-heading) links resolve
suppress_warnings = [
    # the notebooks' markdown cells start at level 1 and jump to level 3 in places; their text is
    # shown as it was written (checked by the test suite as notebooks, not as Sphinx pages)
]

# -- notebooks: rendered from their committed outputs ----------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
GALLERY = DOCS / "gallery"           # git-ignored copy of ../notebooks, refreshed at each build


def _copy_notebooks() -> None:
    GALLERY.mkdir(exist_ok=True)
    sources = {p.name: p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    for old in GALLERY.glob("*.ipynb"):
        if old.name not in sources:
            old.unlink()
    for name, src in sources.items():
        dst = GALLERY / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)


_copy_notebooks()

# -- API reference --------------------------------------------------------------------------------
autosummary_generate = False         # cv_api writes the stubs (and skips names still to come)
cv_api_dir = "api"
# Second-wave public names (they join the package as the other open issues land). A reference
# page may list them already; until the package defines them they are left out of the build.
# Any other listed name that does not import is an error.
cv_api_pending = []   # names declared but not yet in the package (none now)
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"           # the numpydoc Parameters sections give the types
autodoc_class_signature = "mixed"
add_module_names = False
numpydoc_show_class_members = False  # members are documented by autodoc's :members: instead
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# numpydoc validation, limited to the checks that say a docstring is wrong or missing (not the
# stylistic ones): every documented object and member has a docstring (GL08), no unknown section
# (GL06), no documented parameter that the signature lacks (PR02), a
# space before the colon of a parameter (PR10), a summary line (SS01). Dataclass and class
# constructors are documented by their class docstring.
numpydoc_validation_checks = {"GL06", "GL08", "PR02", "PR10", "SS01"}
numpydoc_validation_exclude = {r"\.__init__$"}

# Docstring problems in the package that docutils reports (each a warning, hence an error under
# -W), left to the owners of the code to fix. Each entry is (object, start of the message) and
# drops only that message for that object (docs/_ext/cv_api.py); any other problem still fails
# the build. A full build reports entries that no longer occur: delete them.
cv_docstring_known_issues = [
    # "``(steps + 1, *state_shape)``" written without backquotes in a numpydoc type: "*" opens
    # emphasis
    ("iterate", "Inline emphasis start-string without end-string"),
    ("piggyback", "Inline emphasis start-string without end-string"),
    ("piggyback_sets", "Inline emphasis start-string without end-string"),
    ("Map.jvp", "Inline emphasis start-string without end-string"),
    ("Map.vjp", "Inline emphasis start-string without end-string"),
    ("Map.point", "Inline emphasis start-string without end-string"),
    # a "References: ... *Title over two lines*" paragraph after the Raises/Returns section: numpydoc
    # reads each of its lines as an entry of that section, splitting the emphasis (it wants a
    # References section)
    ("admm_lasso", "Inline emphasis start-string without end-string"),
    ("fista_lasso", "Inline emphasis start-string without end-string"),
    ("group_lasso_forward_backward", "Inline emphasis start-string without end-string"),
    ("heavy_ball", "Inline emphasis start-string without end-string"),
    ("sparse_inverse_covariance", "Inline emphasis start-string without end-string"),
    # "|z|" outside double backquotes is a reST substitution reference
    ("soft_threshold", 'Undefined substitution referenced: "z"'),
]

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"conservative {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
html_show_sourcelink = False
