"""The README's and the pipeline page's examples: the command on the data they name, then
the pycon blocks that read what it wrote (run in the same folder).

The two pages show the same command (the README's runs ``.venv/bin/spectral-flow``, the
pipeline page's the activated environment's ``spectral-flow``): it runs once, as the README
writes it, and both pages' blocks read that run (``customers_run``). The two tests run on one
worker (their xdist group), so the run is made once a session.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ..flows.helpers import cli_env, current_api_url
from .examples import DOCS, README, block, customers, run_bash, run_page_doctest, venv_link

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("customers-run")]


@pytest.fixture(scope="module")
def customers_run(prefect_server, tmp_path_factory):
    """The README's `spectral-flow run` (`readme-run`, on this worker's Prefect server), as
    written, in a folder whose `.venv` is this test environment and whose `data/` holds
    3,000 customers in 10 groups: (folder, true groups, the finished command)."""
    tmp = tmp_path_factory.mktemp("customers-run")
    folder = venv_link(tmp / "project")
    truth = customers(folder / "data")
    env = cli_env(tmp, PREFECT_API_URL=current_api_url())
    return folder, truth, run_bash(block("readme-run"), cwd=folder, env=env)


def _check_run(folder, truth, done):
    assert done.returncode == 0, done.stderr[-3000:]
    assert "suggested  n_clusters = 10 (its eigengap is " in done.stdout, done.stdout
    labels = pd.read_parquet(folder / "out" / "labels")
    assert labels["customer_id"].tolist() == list(range(10_000, 13_000))
    assert adjusted_rand_score(truth, labels["label"]) == 1.0
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["parameters"]["n_components"] == 500
    assert (folder / "out" / "report.html").exists()


def test_readme_run_and_its_examples(customers_run):
    """The README's pycon blocks (the library on digits; pandas reading `out/labels`) after
    its `spectral-flow run`."""
    folder, truth, done = customers_run
    _check_run(folder, truth, done)
    assert run_page_doctest(README, folder) >= 10


def test_pipeline_page(customers_run, tmp_path):
    """The pipeline page: its command (the README's, typed in the activated environment),
    then its pycon blocks (pandas, Dask, summary.json, and the flow called from Python, whose
    labels must equal the command's), in a folder of their own holding the command's data
    and output."""
    ran, truth, done = customers_run
    assert block("pipeline-run") == block("readme-run").removeprefix(".venv/bin/")
    folder = tmp_path / "project"
    for name in ("data", "out"):
        shutil.copytree(ran / name, folder / name)
    _check_run(folder, truth, done)
    assert run_page_doctest(DOCS / "pipeline.md", folder) >= 15
    python_run = pd.read_parquet(folder / "out-python" / "labels")
    np.testing.assert_array_equal(python_run["label"],
                                  pd.read_parquet(folder / "out" / "labels")["label"])
