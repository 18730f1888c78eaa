"""One Prefect task per stage. Each reads Parquet, calls ``spectral_core``, writes Parquet.

Layout of a run's checkpoints (``<root>/<key>/<stage>/``; each stage's key hashes the input
fingerprint, the parameters that stage depends on and the format version)::

    <key>/sample_landmarks/landmarks.parquet
    <key>/kernel_blocks/pass1/part-000000.parquet ...  weights.parquet  gram.parquet
    <key>/eigendecompose/eigen.parquet
    <key>/embed/part-000000.parquet ...
    <key>/assign_labels/labels.parquet
    <key>/<stage>/_SUCCESS.json      written last: the stage's small reference

A stage whose ``_SUCCESS.json`` is valid is not recomputed; a stage that died part-way redoes
only its missing or invalid parts. Tasks return small JSON references, never arrays.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

import spectral_core as sc
from spectral_core import blocks
from spectral_core.params import check_nonnegative

from . import faults
from .io import (
    Block,
    DatasetPlan,
    InputError,
    check_block,
    read_arrays,
    read_block,
    write_arrays,
    write_text_atomic,
)
from .parallel import fan_out, one_blas_thread
from .retries import retry_transient

STAGES = sc.STAGES
# spectral_core logs stage timings at INFO; let them reach the run logs (with
# PREFECT_LOGGING_EXTRA_LOGGERS=spectral_core), not only its warnings.
logging.getLogger("spectral_core").setLevel(logging.INFO)


def _stage_cache_key(stage: str):
    def key(context, parameters) -> str:
        return f"spectral-{stage}-{parameters['job']['keys'][stage]}"

    key.__name__ = f"{stage}_cache_key"
    return key


def _stage_task(stage: str, **options):
    return task(
        name=stage,
        cache_key_fn=_stage_cache_key(stage),
        persist_result=True,
        # Cached results are read back from disk: JSON, so nothing persisted is unpickled.
        result_serializer="json",
        retries=2,
        retry_delay_seconds=1,
        retry_condition_fn=retry_transient,
        **options,
    )


# --------------------------------------------------------------------------------------------
# Paths, markers and small helpers
# --------------------------------------------------------------------------------------------


def stage_dir(job: dict[str, Any], stage: str) -> Path:
    return Path(job["checkpoint_root"]) / job["keys"][stage] / stage


def read_marker(job: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """The stage's reference if it completed (and its marker matches its key), else None."""
    path = stage_dir(job, stage) / "_SUCCESS.json"
    try:
        ref = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if ref.get("key") != job["keys"][stage]:
        return None
    return {**ref, "from_checkpoint": True}


def _reuse_or_start(job: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """The stage's reference if its checkpoint is complete (nothing to do), else None."""
    done = read_marker(job, stage)
    if done:
        get_run_logger().info("%s: reused checkpoint %s", stage, job["keys"][stage])
    else:
        get_run_logger().info("%s: started (key %s)", stage, job["keys"][stage])
    return done


def _finish(job: dict[str, Any], stage: str, ref: dict[str, Any], start: float) -> dict[str, Any]:
    get_run_logger().info("%s: done in %.3f s (key %s)", stage,
                          time.perf_counter() - start, job["keys"][stage])
    ref = {"stage": stage, "key": job["keys"][stage], "seconds": time.perf_counter() - start,
           "flow_run_id": job.get("flow_run_id"), **ref}
    write_text_atomic(stage_dir(job, stage) / "_SUCCESS.json", json.dumps(ref))
    return ref


def _plan(job: dict[str, Any]) -> DatasetPlan:
    return DatasetPlan.from_dict(job["plan"])


def _kernel(job: dict[str, Any]) -> sc.Kernel:
    p = job["params"]
    return sc.make_kernel(p["affinity"], gamma=p["gamma"], degree=p["degree"], coef0=p["coef0"],
                          kernel_params=p["kernel_params"], n_neighbors=p["n_neighbors"])


def _dtype(job: dict[str, Any]) -> np.dtype:
    return np.dtype(job["dtype"])


def _log_warnings(caught: list[warnings.WarningMessage]) -> None:
    logger = get_run_logger()
    for w in caught:
        logger.warning("%s: %s", w.category.__name__, w.message)


class _Progress:
    """A Prefect progress artifact (and a log line) that moves as parts complete.

    Updated at most once a second, and at the end: each update is an API round trip from the
    task's thread, and per-part updates cost ~0.2 s per pass at a million rows (measured).
    """

    INTERVAL = 1.0

    def __init__(self, stage: str, what: str):
        self.stage, self.what = stage, what
        self.id = create_progress_artifact(progress=0.0, description=f"{stage}: {what}")
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.INTERVAL or done == total:
            update_progress_artifact(self.id, progress=100.0 * done / total)
            self.last = now
            get_run_logger().info("%s: %s %d/%d parts", self.stage, self.what, done, total)


class ParquetRows:
    """Rows of a planned dataset by global index: enough of an array for sample_landmarks."""

    def __init__(self, plan: DatasetPlan, dtype: np.dtype):
        self.plan = plan
        self.shape = (plan.n_rows, plan.n_features)
        self.dtype = dtype
        self._starts = np.array([b.start for b in plan.blocks])

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        out = np.empty((indices.size, self.shape[1]), dtype=self.dtype)
        which = np.searchsorted(self._starts, indices, side="right") - 1
        for b in np.unique(which):
            block = self.plan.blocks[b]
            sel = np.flatnonzero(which == b)
            out[sel] = read_block(self.plan, block)[indices[sel] - block.start]
        return out


# --------------------------------------------------------------------------------------------
# Input validation (one read pass, before any kernel work)
# --------------------------------------------------------------------------------------------


def _validate_cache_key(context, parameters) -> str:
    job = parameters["job"]
    return f"spectral-validate_input-{job['plan']['fingerprint']}-{job['params']['affinity']}"


@task(name="validate_input", retries=2, retry_delay_seconds=1,
      retry_condition_fn=retry_transient, cache_key_fn=_validate_cache_key, persist_result=True,
      result_serializer="json")
def validate_input(job: dict[str, Any]) -> dict[str, Any]:
    """Reads every block once: non-finite values (file, row, column), row counts, minimum."""
    plan = _plan(job)
    results = fan_out(check_block, plan.blocks, plan)
    for r in results:
        if "error" in r:
            block = plan.blocks[r["block"]]
            raise InputError(f"The input file {block.path!r} changed while reading: "
                             f"{r['error']} in row groups {block.row_groups}.")
        if "bad_row" in r:
            block = plan.blocks[r["block"]]
            raise InputError(
                f"The input contains NaN or inf: file {block.path!r}, row {r['file_row']} of "
                f"that file (row {r['bad_row']} of the dataset), column {r['column']!r} "
                f"(value {r['value']}). Remove or impute those values first."
            )
    if plan.id_column:
        _check_ids(plan, [r["ids"] for r in results])
    low = min(r["min"] for r in results)
    try:
        check_nonnegative(low, job["params"]["affinity"], subject="The input")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return {"rows": int(sum(r["rows"] for r in results)), "min": float(low)}


def _check_ids(plan: DatasetPlan, parts: list[np.ndarray]) -> None:
    """Ids must be unique and present: labels.parquet is joined back to the data on them."""
    ids = np.concatenate(parts)
    if ids.dtype == object and any(v is None for v in ids):
        raise InputError(f"The id column {plan.id_column!r} has missing values; ids must be "
                         "present on every row.")
    values, counts = np.unique(ids, return_counts=True)
    dup = counts > 1
    if dup.any():
        first = values[dup][0]
        first = first.item() if hasattr(first, "item") else first
        raise InputError(
            f"The id column {plan.id_column!r} has {int(dup.sum())} duplicated values (e.g. "
            f"{first!r} appears {int(counts[dup][0])} times); ids must be unique so that "
            "labels.parquet can be joined back to the data. Choose another id column or none "
            "(rows are then numbered)."
        )


# --------------------------------------------------------------------------------------------
# Stage 1
# --------------------------------------------------------------------------------------------


@_stage_task("sample_landmarks")
def sample_landmarks(job: dict[str, Any]) -> dict[str, Any]:
    """Reads the sampled rows; writes sample_landmarks/landmarks.parquet."""
    stage, start = "sample_landmarks", time.perf_counter()
    done = _reuse_or_start(job, stage)
    if done:
        return done
    p = job["params"]
    plan = _plan(job)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm = sc.sample_landmarks(
            ParquetRows(plan, _dtype(job)), p["n_components"], method=p["landmarks"],
            precomputed=p["affinity"] == "precomputed",
            random_state=job["seeds"]["sample_landmarks"],
        )
    _log_warnings(caught)
    indices = lm.indices if lm.indices is not None else np.full(lm.n_landmarks, -1)
    write_arrays(stage_dir(job, stage) / "landmarks.parquet",
                 {"points": lm.points, "index": indices.astype(np.int64)},
                 stage=stage, key=job["keys"][stage])
    faults.after_part(stage)
    return _finish(job, stage, {"n_landmarks": lm.n_landmarks}, start)


def load_landmarks(job: dict[str, Any]) -> sc.Landmarks:
    stage = "sample_landmarks"
    got = read_arrays(stage_dir(job, stage) / "landmarks.parquet",
                      expect={"stage": stage, "key": job["keys"][stage]})
    if got is None:
        raise FileNotFoundError(f"Landmarks of {job['keys'][stage]} are missing; rerun.")
    arrays, _ = got
    idx = arrays["index"]
    return sc.Landmarks(points=np.ascontiguousarray(arrays["points"], dtype=_dtype(job)),
                        indices=None if (idx < 0).any() else idx)


# --------------------------------------------------------------------------------------------
# Stage 2
# --------------------------------------------------------------------------------------------


def _column_sums_part(block: Block, plan: DatasetPlan, landmarks: sc.Landmarks,
                      kernel: sc.Kernel, out: str, key: str) -> np.ndarray:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    s = blocks.block_column_sums(read_block(plan, block), landmarks, kernel)
    write_arrays(Path(out) / f"part-{block.index:06d}.parquet", {"s": s},
                 stage="kernel_blocks", key=key, block=block.index)
    faults.after_part("kernel_blocks")
    return s


def _gram_part(block: Block, plan: DatasetPlan, landmarks: sc.Landmarks, kernel: sc.Kernel,
               weights: blocks.DegreeWeights, out: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    gram, stats = blocks.block_gram(read_block(plan, block), landmarks, kernel,
                                weights.degree_weights, weights.degree_floor,
                                weights.normalizer, weights.diagonal)
    write_arrays(Path(out) / f"part-{block.index:06d}.parquet", {"gram": gram},
                 stage="kernel_blocks", key=key, block=block.index, stats=stats.tolist())
    faults.after_part("kernel_blocks")
    return gram, stats


def _resume_parts(folder: Path, plan: DatasetPlan, key: str, stage: str):
    """Valid parts already on disk (by block index) and the blocks still to compute."""
    have, todo = {}, []
    for block in plan.blocks:
        got = read_arrays(folder / f"part-{block.index:06d}.parquet",
                          expect={"stage": stage, "key": key, "block": block.index})
        if got is None:
            todo.append(block)
        else:
            have[block.index] = got
    return have, todo


@_stage_task("kernel_blocks")
def kernel_blocks(job: dict[str, Any], landmarks_ref: dict[str, Any]) -> dict[str, Any]:
    """Two passes over the blocks; writes per-part partials, weights.parquet, gram.parquet."""
    stage, start = "kernel_blocks", time.perf_counter()
    done = _reuse_or_start(job, stage)
    if done:
        return done
    p, plan, key = job["params"], _plan(job), job["keys"][stage]
    folder = stage_dir(job, stage)
    landmarks, kernel = load_landmarks(job), _kernel(job)
    computed = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = blocks.prepare_landmark_kernel(landmarks, kernel, dtype=_dtype(job),
                                              min_rank=p["n_clusters"])
        have, todo = _resume_parts(folder / "pass1", plan, key, stage)
        new = fan_out(_column_sums_part, todo, plan, landmarks, kernel,
                        str(folder / "pass1"), key,
                        on_progress=_Progress(stage, "pass 1 (column sums)"))
        computed += len(todo)
        sums = {b.index: s for b, s in zip(todo, new, strict=True)}
        sums.update({i: a["s"] for i, (a, _) in have.items()})
        s = blocks.sum_in_order([sums[b.index] for b in plan.blocks])
        weights = blocks.degree_weights(s, prepared, kernel, n_samples=plan.n_rows,
                                    dtype=_dtype(job), min_rank=p["n_clusters"])
        write_arrays(folder / "weights.parquet",
                     {"S": weights.normalizer, "t": weights.degree_weights, "s": s,
                      "lam": weights.landmark_eigenvalues},
                     stage=stage, key=key, diagonal=weights.diagonal,
                     floor=weights.degree_floor)

        have, todo = _resume_parts(folder / "pass2", plan, key, stage)
        new = fan_out(_gram_part, todo, plan, landmarks, kernel, weights,
                        str(folder / "pass2"), key,
                        on_progress=_Progress(stage, "pass 2 (Gram)"))
        computed += len(todo)
        parts = {b.index: g for b, g in zip(todo, new, strict=True)}
        parts.update({i: (a["gram"], np.asarray(m["stats"])) for i, (a, m) in have.items()})
        ordered = [parts[b.index] for b in plan.blocks]
        summary = blocks.summarize_kernel_blocks(weights, [g for g, _ in ordered],
                                             [st for _, st in ordered], kernel,
                                             n_samples=plan.n_rows)
    _log_warnings(caught)
    write_arrays(folder / "gram.parquet", {"G": summary.gram}, stage=stage, key=key,
                 n_clipped=summary.n_clipped, degree_min=summary.degree_min,
                 degree_max=summary.degree_max, degree_mean=summary.degree_mean)
    return _finish(job, stage, {
        "rank": summary.rank, "n_clipped": summary.n_clipped, "parts": 2 * len(plan.blocks),
        "parts_computed": computed, "degree_min": summary.degree_min,
        "degree_mean": summary.degree_mean,
    }, start)


def load_kernel_summary(job: dict[str, Any]) -> sc.KernelSummary:
    stage, key = "kernel_blocks", job["keys"]["kernel_blocks"]
    folder = stage_dir(job, stage)
    w = read_arrays(folder / "weights.parquet", expect={"stage": stage, "key": key})
    g = read_arrays(folder / "gram.parquet", expect={"stage": stage, "key": key})
    if w is None or g is None:
        raise FileNotFoundError(f"kernel_blocks checkpoint {key} is incomplete; rerun.")
    (wa, wm), (ga, gm) = w, g
    return sc.KernelSummary(
        column_sums=wa["s"], normalizer=wa["S"], diagonal=wm["diagonal"],
        degree_weights=wa["t"], degree_floor=wm["floor"], gram=ga["G"],
        landmark_eigenvalues=wa["lam"], n_samples=job["plan"]["n_rows"],
        n_clipped=gm["n_clipped"], degree_min=gm["degree_min"], degree_max=gm["degree_max"],
        degree_mean=gm["degree_mean"],
    )


# --------------------------------------------------------------------------------------------
# Stage 3
# --------------------------------------------------------------------------------------------


@_stage_task("eigendecompose")
def eigendecompose(job: dict[str, Any], kernel_ref: dict[str, Any]) -> dict[str, Any]:
    """Reads gram.parquet and weights.parquet; writes eigendecompose/eigen.parquet."""
    stage, start = "eigendecompose", time.perf_counter()
    done = _reuse_or_start(job, stage)
    if done:
        return done
    p = job["params"]
    eigen = sc.eigendecompose(load_kernel_summary(job), p["n_clusters"],
                              eigen_solver=p["eigen_solver"], eigen_tol=p["eigen_tol"],
                              random_state=job["seeds"]["eigendecompose"])
    write_arrays(stage_dir(job, stage) / "eigen.parquet", {"P": eigen.projection},
                 stage=stage, key=job["keys"][stage], eigenvalues=eigen.eigenvalues.tolist())
    faults.after_part(stage)
    return _finish(job, stage, {"eigenvalues": eigen.eigenvalues.tolist()}, start)


def load_eigen(job: dict[str, Any]) -> sc.EigenResult:
    stage = "eigendecompose"
    got = read_arrays(stage_dir(job, stage) / "eigen.parquet",
                      expect={"stage": stage, "key": job["keys"][stage]})
    if got is None:
        raise FileNotFoundError(f"eigendecompose checkpoint {job['keys'][stage]} is missing.")
    arrays, meta = got
    return sc.EigenResult(eigenvalues=np.asarray(meta["eigenvalues"]), projection=arrays["P"])


# --------------------------------------------------------------------------------------------
# Stage 4
# --------------------------------------------------------------------------------------------


def _embed_part(block: Block, plan: DatasetPlan, landmarks: sc.Landmarks, kernel: sc.Kernel,
                summary: sc.KernelSummary, eigen: sc.EigenResult, out: str, key: str) -> int:
    faults.before_part("embed")
    one_blas_thread()
    U = blocks.block_embedding(read_block(plan, block), landmarks, kernel, summary.degree_weights,
                           summary.degree_floor, eigen.projection)
    write_arrays(Path(out) / f"part-{block.index:06d}.parquet", {"u": U},
                 stage="embed", key=key, block=block.index)
    faults.after_part("embed")
    return block.index


@_stage_task("embed")
def embed(job: dict[str, Any], eigen_ref: dict[str, Any]) -> dict[str, Any]:
    """Third pass over the blocks; writes embed/part-*.parquet (row-normalized, n × k)."""
    stage, start = "embed", time.perf_counter()
    done = _reuse_or_start(job, stage)
    if done:
        return done
    plan, key, folder = _plan(job), job["keys"][stage], stage_dir(job, stage)
    _, todo = _resume_parts(folder, plan, key, stage)
    fan_out(_embed_part, todo, plan, load_landmarks(job), _kernel(job),
              load_kernel_summary(job), load_eigen(job), str(folder), key,
              on_progress=_Progress(stage, "embedding"))
    return _finish(job, stage, {"parts": len(plan.blocks), "parts_computed": len(todo)}, start)


def load_embedding(job: dict[str, Any]) -> np.ndarray:
    plan, key, folder = _plan(job), job["keys"]["embed"], stage_dir(job, "embed")
    parts = []
    for block in plan.blocks:
        got = read_arrays(folder / f"part-{block.index:06d}.parquet",
                          expect={"stage": "embed", "key": key, "block": block.index})
        if got is None:
            raise FileNotFoundError(f"embed part {block.index} of {key} is missing; rerun.")
        parts.append(got[0]["u"])
    return np.concatenate(parts, axis=0)


# --------------------------------------------------------------------------------------------
# Stage 5
# --------------------------------------------------------------------------------------------


@_stage_task("assign_labels")
def assign_labels(job: dict[str, Any], embed_ref: dict[str, Any]) -> dict[str, Any]:
    """Reads the embedding parts; writes assign_labels/labels.parquet and the outputs."""
    stage, start = "assign_labels", time.perf_counter()
    done = _reuse_or_start(job, stage)
    if done:
        return done
    p, key = job["params"], job["keys"][stage]
    U = load_embedding(job)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels, _model, _ = sc.assign_labels(
            U, p["n_clusters"], assigner=p["assign_labels"], n_init=p["n_init"],
            kmeans_params=p["kmeans_params"], random_state=job["seeds"]["assign_labels"],
        )
    _log_warnings(caught)
    write_arrays(stage_dir(job, stage) / "labels.parquet", {"label": labels.astype(np.int64)},
                 stage=stage, key=key)
    faults.after_part(stage)
    sizes = np.bincount(labels[labels >= 0], minlength=p["n_clusters"]).tolist()
    return _finish(job, stage, {"cluster_sizes": sizes, "n_rows": int(labels.size)}, start)


def load_labels(job: dict[str, Any]) -> np.ndarray:
    stage = "assign_labels"
    got = read_arrays(stage_dir(job, stage) / "labels.parquet",
                      expect={"stage": stage, "key": job["keys"][stage]})
    if got is None:
        raise FileNotFoundError(f"labels of {job['keys'][stage]} are missing; rerun.")
    return got[0]["label"]


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.get_id()
