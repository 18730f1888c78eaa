"""The spectral-clustering flow on a real local Dask cluster and a real Prefect API."""

import json
import logging
import os
import re

import numpy as np
import pyarrow.parquet as pq

from spectral_core import SpectralClustering
from spectral_pipeline.flows.spectral import run_spectral
from spectral_pipeline.tasks.stages import STAGES
from spectral_pipeline.tasks.summary import all_stages

from .conftest import BLOBS_RUN, copy_run
from .conftest import blobs_params as _params

#: Several tests read one run of the flow (``blobs_run``), made once on their worker.
pytestmark = BLOBS_RUN


def _labels(out):
    table = pq.read_table(out / "labels")
    return table.column("id").to_numpy(), table.column("label").to_numpy()


def test_the_default_run_equals_library(blobs_data, blobs_run):
    """rbf kernel, random landmarks: the flow's defaults (``blobs_run``)."""
    _, X, _y = blobs_data
    assert (blobs_run.params.affinity, blobs_run.params.landmarks) == ("rbf", "random")
    _equals_library(X, blobs_run.params, blobs_run.result, blobs_run.out, *blobs_run.dask_logs)


def test_flow_with_knn_kmeans_landmarks_and_the_consensus_equals_library(blobs_data, tmp_path):
    """The recommended configuration with ``assign_labels='consensus'``: the eigendecomposition
    keeps 6k + 2 vectors, the consensus is fitted on embed's sample, each part labelled by
    its predict (the default run covers k-means)."""
    data, X, _y = blobs_data
    params = _params(data, tmp_path / "out", affinity="nearest_neighbors", n_neighbors=5,
                     landmarks="kmeans", assign_labels="consensus")
    dask_logs = logging.getLogger("distributed").level, os.environ.get(_DASK_LEVEL)
    result = run_spectral(params)
    _equals_library(X, params, result, tmp_path / "out", dask_logs,
                    (logging.getLogger("distributed").level, os.environ.get(_DASK_LEVEL)))


def _equals_library(X, params, result, out, dask_logs_before, dask_logs_after):
    # The run quieted Dask's logs for its cluster only: the process's are as they were.
    assert dask_logs_after == dask_logs_before
    ids, labels = _labels(out)
    np.testing.assert_array_equal(ids, np.arange(X.shape[0]) + 1000)
    library = SpectralClustering(**params.estimator_params()).fit(X)
    np.testing.assert_array_equal(labels, library.labels_)
    np.testing.assert_allclose(result["eigenvalues"], library.eigenvalues_, rtol=1e-9)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cluster_sizes"] == np.bincount(library.labels_).tolist()
    assert list(summary["stages"]) == ["sample_landmarks", "kernel_blocks", "eigendecompose",
                                       "embed", "assign_labels"]  # the library's
    assert list(summary["input_and_output_stages"]) == ["validate_input", "write_outputs"]
    assert list(all_stages(summary)) == list(STAGES)
    assert all(s["state"] == "Completed" for s in all_stages(summary).values())


def test_the_clusterer_is_fitted_on_the_sample_embed_gathered(blobs_data, tmp_path,
                                                             monkeypatch):
    """Above FIT_ROWS rows (here 500 instead of 100,000) the clusterer is fitted on the
    library's sample of the embedding: ``embed`` keeps those rows as it writes its parts
    (fit-sample.parquet), so ``assign_labels`` does not read every part twice."""
    import spectral_core as sc
    from spectral_core import _assign, blocks

    monkeypatch.setattr(_assign, "FIT_ROWS", 500)
    data, X, _ = blobs_data
    run_spectral(_params(data, tmp_path / "out"))
    library = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    assert library.assign_labels_.labels_.shape == (500,)  # the library's fit saw 500 rows
    np.testing.assert_array_equal(_labels(tmp_path / "out")[1], library.labels_)
    folder = next((tmp_path / "out").glob("checkpoints/*/embed"))
    U = np.vstack([pq.read_table(p).to_pandas().to_numpy()
                   for p in sorted(folder.glob("part-*.parquet"))])
    seed = json.loads((tmp_path / "out" / "summary.json").read_text())["seed"]
    rows = blocks.fit_rows(len(U), blocks.assignment_seed(sc.stage_seeds(seed)["assign_labels"]))
    sample = pq.read_table(folder / "fit-sample.parquet").to_pandas().to_numpy()
    np.testing.assert_array_equal(sample, U[rows])


def test_rerun_is_cached_and_n_clusters_change_reuses_early_stages(blobs_data, blobs_run,
                                                                   blobs_rerun, tmp_path):
    data, X, _ = blobs_data
    first, again = blobs_run.result, blobs_rerun  # the same run twice, into one folder
    assert {s: v["state"] for s, v in all_stages(again).items()} == dict.fromkeys(
        STAGES, "Cached")
    assert again["cluster_sizes"] == first["cluster_sizes"]
    # n_clusters changed, in a copy of that folder (write_outputs, keyed by the output's
    # location, runs there anyway: it does for a new n_clusters too).
    out = copy_run(blobs_run, tmp_path / "out")
    four = run_spectral(_params(data, out, n_clusters=4))
    states = {s: v["state"] for s, v in all_stages(four).items()}
    assert states == {"validate_input": "Cached", "sample_landmarks": "Cached",
                      "kernel_blocks": "Cached", "eigendecompose": "Completed",
                      "embed": "Completed", "assign_labels": "Completed",
                      "write_outputs": "Completed"}
    library = SpectralClustering(**_params(data, out, n_clusters=4).estimator_params()).fit(X)
    np.testing.assert_array_equal(_labels(out)[1], library.labels_)


def test_deleted_checkpoint_is_recomputed_not_served_from_cache(blobs_data, blobs_run,
                                                               tmp_path):
    import shutil

    data, _, _ = blobs_data
    out = copy_run(blobs_run, tmp_path / "out")
    first = blobs_run.result
    labels_before = _labels(out)[1]
    shutil.rmtree(out / "checkpoints" / first["stages"]["embed"]["key"])
    shutil.rmtree(out / "labels")
    again = run_spectral(_params(data, out))
    assert again["stages"]["embed"]["state"] == "Completed"
    assert again["stages"]["kernel_blocks"]["state"] == "Cached"
    np.testing.assert_array_equal(_labels(out)[1], labels_before)


def test_persist_embedding_writes_embedding(blobs_data, tmp_path):
    data, X, _ = blobs_data
    params = _params(data, tmp_path / "out", persist_embedding=True)
    run_spectral(params)
    table = pq.read_table(tmp_path / "out" / "embedding")
    U = np.column_stack([table.column(f"u_{j}").to_numpy() for j in range(3)])
    library = SpectralClustering(**params.estimator_params()).fit(X)
    # Signs are fixed by eigendecompose (largest entry positive), so they must agree too.
    np.testing.assert_allclose(U, library.embedding_, atol=1e-8)
    assert table.column("id").to_pylist()[:3] == [1000, 1001, 1002]


def test_corrupt_checkpoint_part_is_detected_and_only_it_recomputed(blobs_data, blobs_run,
                                                                     tmp_path, caplog):
    import shutil

    data, _, _ = blobs_data
    out = copy_run(blobs_run, tmp_path / "out")
    first = blobs_run.result
    labels_before = _labels(out)[1]
    embed_dir = out / "checkpoints" / first["stages"]["embed"]["key"] / "embed"
    part = embed_dir / "part-000002.parquet"
    raw = bytearray(part.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 16] = bytes(b ^ 0xFF for b in raw[middle:middle + 16])
    part.write_bytes(bytes(raw))
    (embed_dir / "_SUCCESS.json").unlink()
    shutil.rmtree(out / "checkpoints" / first["stages"]["assign_labels"]["key"])
    # Its footer is intact, so embed's resume trusts it; assign_labels reads its pages, finds
    # the bad checksum, and the flow recomputes that part alone.
    again = run_spectral(_params(data, out))
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(re.search(r"part-000002\.parquet' of stage 'embed' is corrupt .*CRC checksum", m)
               for m in said), said
    assert again["stages"]["embed"]["state"] == "Completed"
    assert (again["stages"]["embed"]["parts"], again["stages"]["embed"]["parts_computed"]) == \
        (6, 1)
    np.testing.assert_array_equal(_labels(out)[1], labels_before)


def test_the_manifest_is_the_only_record_prefect_keeps_no_result(blobs_run, blobs_rerun):
    """A stage is done when its manifest says so; Prefect persists nothing of its own (no
    result files in any machine's home directory, nothing unpickled from disk): its result
    storage is as it was before the first run (and every run this worker made since)."""
    from .conftest import _results_storage

    out, first, again = blobs_run.out, blobs_run.result, blobs_rerun
    assert _results_storage() == blobs_run.storage_before
    for stage, info in all_stages(first).items():
        folder = out / "labels" if stage == "write_outputs" else \
            out / "checkpoints" / info["key"] / stage  # the labels dataset's own manifest
        manifest = json.loads((folder / "_SUCCESS.json").read_text())
        assert (manifest["stage"], manifest["key"]) == (stage, info["key"])
        assert manifest["result"]["work"] == info["parts"]
        assert bool(manifest["parts"]) == (stage != "validate_input")  # it writes no part
    assert {s: v["state"] for s, v in all_stages(again).items()} == \
        dict.fromkeys(STAGES, "Cached")


def test_each_stage_task_run_waits_for_the_one_before_it(blobs_run):
    """The run's graph in Prefect chains the stages: each stage's task run names, among its
    inputs, the task run of the stage it is declared ``after`` (the edge the UI draws), and
    the report waits for the last stage."""
    import asyncio
    import itertools
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from spectral_pipeline.tasks.stage import REGISTRY

    flow_run_id = blobs_run.summary["flow_run_id"]

    async def task_runs():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_run_id])))

    wanted = {*STAGES, "plan", "write_report"}
    deadline = time.monotonic() + 30
    while True:  # task runs reach the API through its event stream: wait for all of them
        by_name = {r.name.rsplit("-", 1)[0]: r for r in asyncio.run(task_runs())}
        if wanted <= set(by_name) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert wanted <= set(by_name), sorted(by_name)

    def upstream(name):
        return {getattr(i, "id", None) for inputs in by_name[name].task_inputs.values()
                for i in inputs}

    assert [REGISTRY[s].after for s in STAGES] == [None, *STAGES[:-1]]
    for before, name in itertools.pairwise(STAGES):
        assert by_name[before].id in upstream(name), (name, by_name[name].task_inputs)
    assert by_name[STAGES[-1]].id in upstream("write_report")
    assert not upstream(STAGES[0]) & {by_name[s].id for s in STAGES}


_DASK_LEVEL = "DASK_LOGGING__DISTRIBUTED"


def test_the_last_run_to_finish_makes_dask_loud_again(monkeypatch):
    """Two runs at once in one process (as under serve): Dask stays quiet until both end."""
    from spectral_pipeline.flows.runner import VERBOSE, quiet_dask_logs

    monkeypatch.delenv(VERBOSE, raising=False)
    monkeypatch.delenv(_DASK_LEVEL, raising=False)
    logger = logging.getLogger("distributed")
    monkeypatch.setattr(logger, "level", logging.INFO)
    first, second = quiet_dask_logs(), quiet_dask_logs()
    assert (logger.level, os.environ.get(_DASK_LEVEL)) == (logging.WARNING, "warning")
    first()
    assert (logger.level, os.environ.get(_DASK_LEVEL)) == (logging.WARNING, "warning")
    second()
    assert (logger.level, os.environ.get(_DASK_LEVEL)) == (logging.INFO, None)
    monkeypatch.setenv(VERBOSE, "1")
    assert quiet_dask_logs() is None and logger.level == logging.INFO
