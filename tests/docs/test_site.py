"""The built site: the API reference, the flow's parameter table and the command's reference
are complete, and the pages render in a real browser."""

import html as html_lib
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from spectral_core import SpectralClustering

from .conftest import DOCS_GROUP

pytestmark = [pytest.mark.slow, DOCS_GROUP]

ESTIMATOR_PAGE = "generated/spectral_core.SpectralClustering.html"


def _text(path) -> str:
    """The page's text, tags removed, entities decoded."""
    raw = path.read_text()
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", raw))


def _field_names(page: str, section: str) -> set[str]:
    """The names listed in one numpydoc section ('Parameters', 'Attributes') of a page:
    the <strong> term of each entry of the field list that follows the section's title."""
    start = re.search(rf">\s*{section}\s*<", page)
    assert start, f"no {section} section"
    rest = page[start.end():]
    end = re.search(r"<dt class=\"field-(odd|even)\"", rest)  # the next section's title
    return set(re.findall(r"<strong>([A-Za-z_0-9]+)</strong>", rest[: end.start() if end
                                                                     else len(rest)]))


def _fitted_attributes() -> set[str]:
    """Every public fitted attribute a fit sets, found by fitting (a DataFrame input with
    ``persist_embedding=True``, so that the optional ones are set too)."""
    import pandas as pd
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(300, centers=3, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b"])
    est = SpectralClustering(n_clusters=3, n_components=30, persist_embedding=True,
                             random_state=0).fit(frame)
    return {name for name in vars(est) if name.endswith("_") and not name.startswith("_")}


def test_the_estimator_page_lists_every_parameter_and_fitted_attribute(site):
    import inspect

    page = (site / ESTIMATOR_PAGE).read_text()
    parameters = set(inspect.signature(SpectralClustering).parameters)
    assert len(parameters) == 17
    assert parameters <= _field_names(page, "Parameters"), \
        parameters - _field_names(page, "Parameters")
    attributes = _fitted_attributes()
    assert {"labels_", "spectrum_", "embedding_", "feature_names_in_"} <= attributes
    documented = set()
    for names in re.findall(r"<strong>([A-Za-z_0-9, ]+)</strong>", page):
        documented |= {n.strip() for n in names.split(",")}
    assert attributes <= documented, attributes - documented
    assert ">Examples<" in page and "make_blobs" in page


class _Table(HTMLParser):
    """The rows (lists of cell texts) of the table with a given id."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.depth, self.rows, self.cell = table_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (dict(attrs).get("id") == self.table_id or self.depth):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _rows(path, table_id):
    parser = _Table(table_id)
    parser.feed(path.read_text())
    assert parser.rows, f"no table {table_id} in {path.name}"
    return parser.rows


def test_the_flow_parameters_page_has_one_row_per_parameter(site):
    from spectral_core.params import PARAMETERS
    from spectral_pipeline.flows.params import DaskOptions, _order

    header, *rows = _rows(site / "flow-parameters.html", "flow-parameters-table")
    assert header == ["parameter", "flag", "type", "default", "range or choices",
                      "description"]
    assert [r[0] for r in rows] == _order()  # the form's order
    by_name = {r[0]: r for r in rows}
    assert by_name["n_clusters"][1:5] == ["--n-clusters", "int", "8", "≥ 1, ≤ n_components"]
    assert by_name["gamma"][4] == "> 0"
    assert by_name["output_dir"][1] == "--output"
    assert by_name["affinity"][4].count("'") == 2 * len(PARAMETERS["affinity"].choices)
    _, *dask_rows = _rows(site / "flow-parameters.html", "dask-parameters-table")
    assert [r[0] for r in dask_rows] == list(DaskOptions.model_fields)
    assert {r[1] for r in dask_rows} >= {"--dask-address", "--dask-n-workers"}


def test_the_cli_page_lists_every_flag_of_spectral_flow_run(site):
    import argparse

    from spectral_pipeline.flows.cli import build_parser

    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    flags = {f for action in sub.choices["run"]._actions for f in action.option_strings
             if not isinstance(action, argparse._HelpAction)}  # sphinx-argparse omits -h
    assert {"--n-clusters", "--dask-address", "--report", "--verbose"} <= flags
    text = _text(site / "cli.html")
    missing = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])",
                                                         text))
    assert not missing, missing


def _looks_like_a_page(png) -> None:
    """Not blank: many colours, text (dark pixels) and a light background."""
    from ..browser import rgb_pixels

    pixels = rgb_pixels(png)
    colours = len(np.unique(pixels, axis=0))
    dark = int((pixels.max(axis=1) < 90).sum())
    light = int((pixels.min(axis=1) > 230).sum())
    assert colours > 50, colours
    assert dark > 2000, dark  # text
    assert light > pixels.shape[0] // 3, light  # the theme's light background


def test_the_site_in_a_browser(site, tmp_path):
    from ..browser import dump_dom, screenshot

    shots = {}
    for name, page in (("home", "index.html"), ("estimator", ESTIMATOR_PAGE)):
        shots[name] = tmp_path / f"{name}.png"
        screenshot((site / page).as_uri(), shots[name])
        _looks_like_a_page(shots[name])
    home = dump_dom((site / "index.html").as_uri())
    for title in ("Getting started", "The library", "Operations", "API reference"):
        assert title in home, title
    dom = dump_dom((site / ESTIMATOR_PAGE).as_uri())
    assert re.search(r"<dt class=\"field-odd\">Parameters", dom), dom[:3000]
    shown = _field_names(dom, "Parameters")  # the rendered list, as the browser has it
    assert {"n_clusters", "affinity", "n_components", "landmarks"} <= shown, shown
    assert len(shown) == 17, shown
