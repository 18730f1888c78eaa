"""Prefect's own UI shows the report's figures inline in the run's markdown artifact."""

import numpy as np
import pytest

from spectral_pipeline.tasks import report
from spectral_pipeline.tasks.summary import markdown as _markdown

from ..browser import LOADED, near, rgb_pixels, screenshot
from .conftest import ON_THE_SERVER, api

pytestmark = [pytest.mark.slow, ON_THE_SERVER]

#: matplotlib's tab10 blue, orange and green: the bars of clusters 0, 1, 2. Prefect's dark UI
#: draws nothing in these colours, so they count the figures' pixels alone.
TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]


def _summary() -> dict:
    return {
        "input": {"rows": 6000, "files": 3},
        "outputs": {"labels": "/out/labels", "report": "/out/report.html"},
        "parameters": {"n_clusters": 3},
        "spectrum": [1.0, 1.0, 0.9998, *np.linspace(0.07, 0.01, 17).tolist()],
        "eigenvalues": [1.0, 1.0, 0.9998],
        "suggested_n_clusters": 3,
        "n_clusters_suggestion": {"n_clusters": 3, "clear": True, "low": 3, "high": 3,
                                  "ratio": 5.0, "candidates": list(range(2, 11)),
                                  "curve": [0.0, 0.9, *[0.003] * 7],
                                  "text": "n_clusters = 3 (its eigengap is 300× any other)"},
        "cluster_sizes": [2000, 2000, 2000],
        "stages": {"embed": {"seconds": 1.0, "state": "Completed", "parts": 6,
                             "parts_computed": 6}},
    }


def test_prefect_ui_renders_the_artifact_figures(server, tmp_path):
    # The session's `prefect server start` with its UI (which asks /ui-settings where the API
    # is: that server, not the default port 4200).
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 300)
    xy = np.eye(3)[labels][:, :2] + 0.05 * rng.standard_normal((900, 2))
    summary = _summary()
    markdown = _markdown(summary, report.render_figures(summary, xy, labels))
    status, artifact = api(server["url"] + "/artifacts/", "POST", {
        "key": "spectral-clustering-summary", "type": "markdown", "data": markdown})
    assert status == 201, artifact
    shot = tmp_path / "ui.png"
    figures = markdown.count("data:image/png;base64,")
    assert figures >= 2, markdown[:2000]
    # Shot once the page shows every figure of the artifact as a loaded image.
    drawn = ("[...document.images].filter(i => i.src.startsWith('data:image/png') && "
             f"i.complete && i.naturalWidth > 0).length >= {figures}")
    screenshot(f"{server['ui']}/artifacts/artifact/{artifact['id']}", shot,
               size="1400,2400", ready=f"{LOADED} && {drawn}")
    pixels = rgb_pixels(shot)
    # Each cluster's bar (about 100 × 150 px on screen) and its scatter points: the data
    # URIs were rendered as images, not shown as text or dropped by a sanitizer.
    for colour in TAB10:
        assert near(pixels, colour) > 5_000, (colour, near(pixels, colour))
