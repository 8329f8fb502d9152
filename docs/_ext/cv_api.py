"""Sphinx extension for the API reference of ``conservative``.

The reference pages (``docs/api/*.rst``) list public names in plain ``.. autosummary::`` blocks,
one name per line, under a ``.. currentmodule::``. This extension

* writes one stub page per listed name into ``docs/api/generated/`` (git-ignored), with the
  autodoc directive that fits the object (``autoclass`` with its members, ``autofunction``,
  ``autodata``), so that adding a name to the reference is one line in one page;
* lets a page list a name that the installed package does not define *yet*, if that name is
  declared in ``cv_api_pending`` (conf.py): it is left out of the build with an info message,
  and documented as soon as it exists. A listed name that does not import and is not declared
  pending is a warning (an error under ``-W``): a typo never disappears silently.

* drops the docutils warnings of the *known* docstring problems declared in
  ``cv_docstring_known_issues`` (conf.py), each keyed by the object and the start of the
  message, so that ``-W`` still fails on every other problem, in any other docstring or page;
  an entry that no longer matches anything in a full build is reported (remove it).

``tests/test_docs.py`` checks, without running Sphinx, that every public name of the package is
listed on some reference page.
"""

from __future__ import annotations

import importlib
import inspect
import logging as std_logging
import pathlib
import re

from docutils.statemachine import StringList
from sphinx.ext.autosummary import Autosummary
from sphinx.ext.autosummary.generate import find_autosummary_in_files
from sphinx.util import logging
from sphinx.util.logging import WarningStreamHandler

logger = logging.getLogger(__name__)

STUB_DIR = "generated"     # relative to the folder of the page that lists the names


def resolve(full_name: str):
    """The object named ``package.module.attr`` (attributes of attributes allowed), or None."""
    parts = full_name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _stub(full_name: str, obj) -> str:
    module, _, name = full_name.rpartition(".")
    if inspect.isclass(obj):
        directive = f".. autoclass:: {name}\n   :members:\n"
        if issubclass(obj, BaseException):
            directive += "   :show-inheritance:\n"
        elif "__call__" in vars(obj):
            directive += "   :special-members: __call__\n"
    elif callable(obj):
        directive = f".. autofunction:: {name}\n"
    else:
        directive = f".. autodata:: {name}\n   :annotation:\n"
    title = full_name
    return (f"{title}\n{'=' * len(title)}\n\n.. currentmodule:: {module}\n\n{directive}")


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:   # unchanged stubs keep the build incremental
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def generate_stubs(app) -> None:
    """builder-inited: one stub page per listed name that imports; report the others."""
    srcdir = pathlib.Path(app.srcdir)
    pending = set(app.config.cv_api_pending)
    pages = sorted((srcdir / app.config.cv_api_dir).glob("*.rst"))
    wanted = set()
    for entry in find_autosummary_in_files([str(p) for p in pages]):
        obj = resolve(entry.name)
        short = entry.name.rpartition(".")[2]
        if obj is None:
            if short in pending or entry.name in pending:
                logger.info("[cv_api] %s is not in this version of the package yet: "
                            "left out of the reference", entry.name)
            else:
                logger.warning("[cv_api] %s is listed in the API reference but does not "
                               "import; fix the name, or declare it in cv_api_pending "
                               "(docs/conf.py) if it is still to come", entry.name)
            continue
        out = srcdir / app.config.cv_api_dir / (entry.path or STUB_DIR)
        path = out / f"{entry.name}.rst"
        wanted.add(path)
        _write_if_changed(path, _stub(entry.name, obj))
    # stubs of names no longer listed would be orphan pages (a warning): remove them
    for old in (srcdir / app.config.cv_api_dir / STUB_DIR).glob("*.rst"):
        if old not in wanted:
            old.unlink()


class GuardedAutosummary(Autosummary):
    """``autosummary`` that skips declared-pending names the package does not define yet."""

    def run(self):
        pending = set(self.config.cv_api_pending)
        module = self.env.ref_context.get("py:module")
        kept = StringList()
        for line, (source, offset) in zip(self.content, self.content.items):
            name = line.strip()
            if name and not name.startswith(":") and name in pending:
                full = f"{module}.{name}" if module else name
                if resolve(full) is None:
                    continue
            kept.append(line, source, offset)
        self.content = kept
        return super().run()


class KnownDocstringIssues(std_logging.Filter):
    """Drop a docutils warning when (object, message) is a declared known docstring problem."""

    _OBJECT = re.compile(r"docstring of ([\w.]+)")

    def __init__(self, app):
        super().__init__()
        self.app = app
        self.hits: set[tuple[str, str]] = set()

    def filter(self, record) -> bool:
        found = self._OBJECT.search(str(getattr(record, "location", "") or ""))
        if found is None:
            return True
        obj, message = found.group(1), record.getMessage()
        for suffix, start in self.app.config.cv_docstring_known_issues:
            if (obj == suffix or obj.endswith("." + suffix)) and message.startswith(start):
                self.hits.add((suffix, start))
                return False
        return True


def _count_reads(app, env, docnames):
    app.cv_full_read = set(docnames) >= set(env.found_docs)


def _report_stale(app, exception):
    known = getattr(app, "cv_known_issues", None)
    if exception is None and known is not None and getattr(app, "cv_full_read", False):
        for entry in app.config.cv_docstring_known_issues:
            if tuple(entry) not in known.hits:
                logger.info("[cv_api] known docstring issue %r no longer occurs: remove it "
                            "from cv_docstring_known_issues (docs/conf.py)", tuple(entry))


def setup(app):
    app.add_config_value("cv_api_dir", "api", "env")
    app.add_config_value("cv_api_pending", [], "env")
    # before autosummary's own builder-inited handler (priority 500), which we switch off
    app.connect("builder-inited", generate_stubs, priority=400)
    app.add_config_value("cv_docstring_known_issues", [], "env")
    app.add_directive("autosummary", GuardedAutosummary, override=True)
    # the filter runs before Sphinx's own warning filters, which count warnings for -W
    app.cv_known_issues = KnownDocstringIssues(app)
    for handler in std_logging.getLogger("sphinx").handlers:
        if isinstance(handler, WarningStreamHandler):
            handler.filters.insert(0, app.cv_known_issues)
    app.connect("env-before-read-docs", _count_reads)
    app.connect("build-finished", _report_stale)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
