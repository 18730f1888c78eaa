"""The documentation site, built once per session as the development page says."""

import os

import pytest

from .examples import ROOT, block, run_bash

#: The tests of the built site run on one pytest-xdist worker: the build writes autosummary's
#: stubs into docs/generated/ in the checkout, which two builds at once would both rewrite.
DOCS_GROUP = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The development page's build command (``sphinx-build -W -b html docs
    docs/_build/html``), run as written but into a temporary folder; the built HTML's path."""
    command = block("docs-build")
    assert command.split() == ["sphinx-build", "-W", "-b", "html", "docs", "docs/_build/html"]
    html = tmp_path_factory.mktemp("site") / "html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    built = run_bash(command.replace("docs/_build/html", str(html)), cwd=ROOT, env=env,
                     timeout=600)
    assert built.returncode == 0, "sphinx-build -W failed:\n" + built.stderr[-6000:]
    assert (html / "index.html").exists()
    # Markup errors that docutils reports outside Sphinx's warnings still show on the page.
    broken = [page.name for page in html.rglob("*.html")
              if 'class="problematic"' in page.read_text() or "system-message" in
              page.read_text()]
    assert not broken, broken
    return html
