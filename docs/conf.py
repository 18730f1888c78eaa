"""Sphinx configuration of the documentation site.

Build (offline, warnings as errors)::

    pip install -e '.[docs]'
    sphinx-build -W -b html docs docs/_build/html

The guide pages are MyST Markdown; the API reference is generated from the docstrings
(autosummary writes one page per object into docs/generated/, which is not committed); the
flow's parameter table and the ``spectral-flow`` reference are generated from the code at
build time, so they cannot drift from it.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # our own extensions (flow_parameters)

project = "spectral-pipeline"
author = "the spectral-pipeline developers"
copyright = "the spectral-pipeline developers, BSD-3-Clause"
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinxarg.ext",
    "flow_parameters",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
# Quotes stay as typed: parameter values such as 'auto' must read as Python, not as prose.
smartquotes = False

# Markdown pages: `{directive}` blocks with ::: fences, $ math, and heading anchors so that
# links to a section of another page (page.md#section) resolve.
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# API reference: one page per public object, generated from its docstring.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False  # methods are listed by the class template instead
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# No intersphinx: the build must work offline, and -W must stay clean.

html_theme = "pydata_sphinx_theme"
html_title = "spectral-pipeline"
html_static_path = ["_static"]
html_css_files = ["flow-parameters.css"]
html_show_sourcelink = False
html_theme_options = {
    # Nothing fetched over the network: no version switcher, no external icon links, no
    # analytics; the theme's own assets are bundled with it.
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "icon_links": [],
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
# The wide parameter table gets the whole width (no side bars on its page).
html_sidebars = {"**": ["sidebar-nav-bs"], "flow-parameters": []}
html_context = {"default_mode": "light"}


def _flow_docstring(app, what, name, obj, options, lines):
    """The flow's docstring lists its parameters in the ``Args:`` form that Prefect shows in
    the run form; on this site they are one generated table, so keep the summary and link it."""
    if name == "spectral_pipeline.flows.spectral.spectral_clustering":
        summary = lines[: lines.index("")] if "" in lines else lines[:1]
        lines[:] = [*summary, "",
                    "A Prefect flow (``prefect.flows.Flow``): call it with keyword arguments, "
                    "one per parameter, or run it from a deployment. Its parameters, their "
                    "types, defaults and ranges are the table in :doc:`/flow-parameters`; the "
                    "guide's :doc:`/pipeline` page runs it.", ""]


def _plain_help() -> None:
    """The command's help strings are plain text (``f(X, Y, **kw)``), not reStructuredText:
    sphinx-argparse parses them as reST in a document of its own, outside Sphinx's warnings,
    so ``**`` would render as an error marker on the page. Render each as a plain paragraph."""
    import sphinxarg.ext
    from docutils import nodes

    original = sphinxarg.ext.render_list

    def render_list(items, markdown_help, settings=None):
        out = []
        for item in items:
            if isinstance(item, str):
                out += [nodes.paragraph(text=" ".join(part.split()))
                        for part in item.split("\n\n") if part.strip()]
            else:
                out += original([item], markdown_help, settings)
        return out

    sphinxarg.ext.render_list = render_list


def setup(app):
    app.connect("autodoc-process-docstring", _flow_docstring)
    _plain_help()
