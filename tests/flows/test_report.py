"""The run's report: summary.json's eigengap suggestion, report.html, the artifact's images."""

import base64
import io
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import run_spectral

from ..browser import near, rgb_pixels, screenshot
from .conftest import BLOBS_RUN

FEATURES = ["f0", "f1", "f2", "f3"]
#: matplotlib's first tab10 colours: the report's clusters 0, 1, 2.
TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _params(data, out, **kw):
    base = dict(input=str(data), output_dir=str(out), feature_columns=FEATURES,
                id_column="id", block_size=1000, n_clusters=3, gamma=0.1, n_components=50,
                random_state=0, dask={"n_workers": 1, "threads_per_worker": 2})
    return SpectralParams(**{**base, **kw})


def _decode_png(encoded: str) -> np.ndarray:
    from matplotlib import image

    png = base64.b64decode(encoded, validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return image.imread(io.BytesIO(png), format="png")  # (h, w, 4) floats in [0, 1]


def _coloured_pixels(rgba: np.ndarray) -> tuple[int, int]:
    """Pixels that are not white, and distinct colours among them."""
    rgb = (rgba[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    ink = rgb[(rgb < 245).any(axis=1)]
    return len(ink), len(np.unique(ink // 16, axis=0))


async def _artifact_markdown(output_dir):
    """The summary artifacts (written by the stages' subflow) that name this output."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["spectral-clustering-summary"])))
    return [a.data for a in found if f"`{output_dir}" in a.data]


def test_report_has_three_figures_and_summary_suggests_the_true_count(blobs_data, tmp_path):
    data, _, y = blobs_data
    out = tmp_path / "out"
    # A wrong guess for n_clusters: the spectrum still suggests the three blobs.
    result = run_spectral(_params(data, out, n_clusters=5))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suggested_n_clusters"] == len(np.unique(y)) == 3
    assert result["suggested_n_clusters"] == 3
    # width 5 for rbf, so max(2 · 5, 20) leading eigenvalues, the first five the kept ones
    assert len(summary["spectrum"]) == 20
    np.testing.assert_allclose(summary["spectrum"][:5], summary["eigenvalues"], atol=1e-12)
    assert summary["outputs"]["report"] == result["files"]["report"] == str(out / "report.html")

    page = (out / "report.html").read_text()
    images = IMAGE.findall(page)
    assert len(images) == 3
    for encoded in images:
        rgba = _decode_png(encoded)
        assert 200 < rgba.shape[0] < 800 and 400 < rgba.shape[1] < 1000  # ~100 dpi
        ink, colours = _coloured_pixels(rgba)
        assert ink > 2_000 and colours >= 4
    assert "Suggested n_clusters = 3 (its eigengap is " in page
    assert summary["n_clusters_suggestion"]["clear"] and \
        summary["n_clusters_suggestion"]["text"].startswith("n_clusters = 3 ")
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace(
        str(out), "")  # self-contained: nothing to fetch

    import asyncio

    (markdown,) = asyncio.run(_artifact_markdown(out))
    assert markdown.count("](data:image/png;base64,") == 3
    assert len(markdown) < 400_000  # three small PNGs, not megabytes in the database
    assert "| 20 |" in markdown  # the whole spectrum's table


@pytest.mark.slow
@BLOBS_RUN
def test_report_renders_in_a_real_browser(blobs_run, tmp_path):
    """The report of the blobs' default run (tests/flows/conftest.py)."""
    shot = tmp_path / "screenshot.png"
    screenshot((blobs_run.out / "report.html").as_uri(), shot, tmp_path / "chromium-profile")
    from matplotlib import image

    assert image.imread(shot).shape[:2] == (1600, 1200)
    ink, colours = _coloured_pixels(image.imread(shot))
    # The three figures, drawn: far more than the text alone would colour.
    assert ink > 150_000, ink
    assert colours >= 20, colours
    # The bars of the three clusters, in matplotlib's tab10 blue, orange and green.
    pixels = rgb_pixels(shot)
    for colour in TAB10[:3]:
        assert near(pixels, colour) > 5_000, colour


def test_scatter_sample_is_bounded_and_its_labels_are_the_rows_labels(blobs_data, tmp_path):
    """The sample reads at most ``parts`` blocks, and each sampled row carries its own
    embedding and label (checked against every checkpointed part and labels/)."""
    from spectral_pipeline.tasks import report
    from spectral_pipeline.tasks.assign import Numbering, assign_labels
    from spectral_pipeline.tasks.checkpoints import read_part
    from spectral_pipeline.tasks.embed import embed
    from spectral_pipeline.tasks.preflight import build_job

    data, _, _ = blobs_data
    out = tmp_path / "out"
    params = _params(data, out, block_size=500)  # a block per row group: 12
    run_spectral(params)
    job = build_job(params.request())
    assert len(job.plan.blocks) == 12
    rows, U, raw = report.sample_embedding(job, rows=500, parts=4)
    blocks = {b.index for b in job.plan.blocks for r in rows if b.start <= r < b.start + b.rows}
    assert 0 < len(blocks) <= 4
    assert len(rows) == 500 and len(np.unique(rows)) == len(rows)  # exactly what was asked
    store, parts = embed.store(job), embed.manifest(job).parts
    full = np.concatenate([read_part(store, p, stage="embed")[0]["u"] for p in parts])
    np.testing.assert_array_equal(U, full[rows])
    numbering = Numbering(**assign_labels.manifest(job).result["numbering"])
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    np.testing.assert_array_equal(numbering[raw], labels[rows])
    again = report.sample_embedding(job, rows=500, parts=4)
    np.testing.assert_array_equal(again[0], rows)  # seeded: the same picture on a rerun
