"""One Prefect task per stage. Each reads checkpoints, calls ``spectral_core``, writes parts.

Layout of a run's checkpoints (``<root>/<key>/<stage>/``; each stage's key hashes the input
fingerprint, the parameters that stage depends on and the format version)::

    <fingerprint>/validate_input/_SUCCESS.json             rows and minimum of the input
    <key>/sample_landmarks/landmarks.parquet
    <key>/kernel_blocks/pass1/part-000000.parquet ...       Cᵀ1 of each block
    <key>/kernel_blocks/weights.parquet                     S, t, s between the passes
    <key>/kernel_blocks/pass2/group-0000.parquet ...        Gram of each group of blocks
    <key>/kernel_blocks/gram.parquet
    <key>/eigendecompose/eigen.parquet
    <key>/embed/part-000000.parquet ...                     the row-normalized embedding
    <key>/assign_labels/part-000000.parquet ...             the clusterer's raw labels
    <key>/<stage>/_SUCCESS.json                             the manifest, written last

One rule decides whether a stage runs: its manifest. A stage with a manifest is not run
again: its task returns at once in a ``Cached`` state (Prefect persists no result of its own,
so nothing lives in any machine's home directory). A stage without one computes the parts its
footer checks do not find valid, then commits the manifest. Tasks return small JSON
references, never arrays.
"""

from __future__ import annotations

import itertools
import re
import time
import warnings
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE
from prefect.states import Completed

import spectral_core as sc
from spectral_core import blocks
from spectral_core.params import check_nonnegative

from . import faults
from .io import (
    CheckpointWarning,
    CorruptCheckpoint,
    InputError,
    Manifest,
    Part,
    check_block,
    check_checkpoint_root,
    check_part,
    commit_manifest,
    duplicate_ids_in_bucket,
    read_block,
    read_manifest,
    read_part,
    remember_fingerprints,
    stage_key,
    write_part,
)
from .job import Block, DatasetPlan, Job
from .parallel import fan_in, fan_out, one_blas_thread
from .retries import retry_transient
from .storage import Store

STAGES = sc.STAGES

#: Blocks whose Gram partials are summed on a worker into one checkpoint. r × r float64 per
#: block would be 2 MB each at r = 500 (2 GB for 1,000 blocks); summed 16 at a time it is 1/16
#: of that, and a crash in pass 2 loses at most one group's work per worker.
GRAM_GROUP = 16


def _stage_task(stage: str, **options):
    return task(
        name=stage,
        # The manifest is the only record of completion: Prefect keeps no result of its own.
        cache_policy=NONE,
        persist_result=False,
        retries=2,
        retry_delay_seconds=1,
        retry_condition_fn=retry_transient,
        **options,
    )


# --------------------------------------------------------------------------------------------
# The manifest rule and small helpers
# --------------------------------------------------------------------------------------------


def _reference(manifest: Manifest, reused: bool, computed: int | None = None) -> dict[str, Any]:
    """What a stage task returns: small, JSON-able. ``parts`` counts the stage's units of
    block work (a block per pass), ``parts_computed`` those this run computed."""
    result = dict(manifest.result)
    work = result.pop("work", len(manifest.parts))
    return {"stage": manifest.stage, "key": manifest.key, "seconds": manifest.seconds,
            "parts": work, "parts_computed": 0 if reused else computed,
            "reused": reused, "flow_run_id": manifest.flow_run_id, **result}


def committed(job: Job, stage: str) -> Manifest | None:
    return read_manifest(job.stage_store(stage), stage, job.stage_keys[stage])


def _reuse(job: Job, stage: str):
    """The ``Cached`` state to return if the stage is complete, else None (and log it)."""
    manifest = committed(job, stage)
    if manifest is None:
        get_run_logger().info("%s: started (key %s)", stage, job.stage_keys[stage])
        return None
    get_run_logger().info("%s: reused checkpoint %s", stage, job.stage_keys[stage])
    return Completed(name="Cached", message=f"reused checkpoint {job.stage_keys[stage]}",
                     data=_reference(manifest, reused=True))


def _commit(job: Job, stage: str, parts: list[Part], result: dict[str, Any], start: float,
            computed: int, work: int | None = None) -> dict[str, Any]:
    seconds = time.perf_counter() - start
    result = {**result, "work": len(parts) if work is None else work}
    manifest = commit_manifest(job.stage_store(stage), Manifest(
        stage=stage, key=job.stage_keys[stage], format_version=_format(), parts=parts,
        result=result, seconds=seconds, flow_run_id=job.flow_run_id))
    get_run_logger().info("%s: done in %.3f s (key %s)", stage, seconds, job.stage_keys[stage])
    return _reference(manifest, reused=False, computed=computed)


def _format() -> int:
    from .io import FORMAT_VERSION

    return FORMAT_VERSION


def _log_warnings(caught: list[warnings.WarningMessage]) -> None:
    logger = get_run_logger()
    for w in caught:
        logger.warning("%s: %s", w.category.__name__, w.message)


def _dtype(job: Job) -> np.dtype:
    return np.dtype(job.dtype)


class _Progress:
    """A Prefect progress artifact (and a log line) that moves as parts complete.

    It starts at the share of parts a resumed stage reused (and says how many), and carries a
    key per stage and pass, so the Artifacts page lists its history across runs. Updated at
    most once a second, and at the end: each update is an API round trip from the task's
    thread, and per-part updates cost ~0.2 s per pass at a million rows (measured).
    """

    INTERVAL = 1.0

    def __init__(self, stage: str, what: str, *, reused: int = 0, total: int | None = None):
        self.stage, self.what, self.reused = stage, what, reused
        key = re.sub(r"[^a-z0-9]+", "-", f"{stage} {what}".lower()).strip("-")
        note = f" ({reused}/{total} parts reused)" if reused and total else ""
        self.id = create_progress_artifact(
            progress=100.0 * reused / total if total else 0.0, key=key,
            description=f"{stage}: {what}{note}")
        self.last = time.monotonic()
        if reused and total:
            get_run_logger().info("%s: %s %d/%d parts reused", stage, what, reused, total)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.INTERVAL or done == total:
            done, total = done + self.reused, total + self.reused
            update_progress_artifact(self.id, progress=100.0 * done / total)
            self.last = now
            get_run_logger().info("%s: %s %d/%d parts", self.stage, self.what, done, total)


def _part_name(block: Block) -> str:
    return f"part-{block.index:06d}.parquet"


def _check_one(name: str, store: Store, expect: dict[str, Any]
               ) -> tuple[Part | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        part = check_part(store, name, expect)
    return part, [str(w.message) for w in caught]


def _valid_parts(store: Store, names: list[str], expect: dict[str, Any]) -> dict[str, Part]:
    """The parts already written and valid, judged from their footers alone (in parallel
    on the cluster: on an object store each check is a request). An invalid part is
    reported, here, with a :class:`CheckpointWarning` naming it."""
    checked = fan_out(_check_one, names, store, expect)
    for _, messages in checked:
        for message in messages:
            get_run_logger().warning("%s", message)
            warnings.warn(message, CheckpointWarning, stacklevel=2)
    return {name: part for name, (part, _) in zip(names, checked, strict=True)
            if part is not None}


class ParquetRows:
    """Rows of a planned dataset by global index: enough of an array for sample_landmarks."""

    def __init__(self, plan: DatasetPlan, dtype: np.dtype, store: Store):
        self.plan, self.store = plan, store
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
            out[sel] = read_block(self.plan, block, store=self.store)[indices[sel] - block.start]
        return out


# --------------------------------------------------------------------------------------------
# Input validation (one read pass, before any kernel work)
# --------------------------------------------------------------------------------------------


def validation_key(job: Job) -> str:
    return stage_key("validate_input", job.plan.fingerprint)


@task(name="validate_input", retries=2, retry_delay_seconds=1, cache_policy=NONE,
      persist_result=False, retry_condition_fn=retry_transient)
def validate_input(job: Job) -> dict[str, Any]:
    """Reads every block once: non-finite values (file, row, column), row counts, minimum.

    The one pass over the data before the stages; a refused input leaves no file behind.
    """
    stage, key = "validate_input", validation_key(job)
    store = job.checkpoints.child(key, stage)
    manifest = read_manifest(store, stage, key)
    if manifest is None:
        start = time.perf_counter()
        plan = job.plan
        results = fan_out(check_block, plan.blocks, plan, job.input)
        for r in results:
            block = plan.blocks[r["block"]]
            where = job.input.display() if len(plan.files) == 1 else plan.path(block)
            if "error" in r:
                raise InputError(f"The input file {where!r} changed while reading: "
                                 f"{r['error']} in row groups {block.row_groups}.")
            if "bad_row" in r:
                raise InputError(
                    f"The input contains NaN or inf: file {plan.path(block)!r}, row "
                    f"{r['file_row']} of that file (row {r['bad_row']} of the dataset), column "
                    f"{r['column']!r} (value {r['value']}). Remove or impute those values "
                    "first."
                )
        if plan.id_column:
            _check_ids(plan, job.input, [r["ids"] for r in results])
        result = {"rows": int(sum(r["rows"] for r in results)),
                  "min": float(min(r["min"] for r in results))}
        _check_minimum(job, result)
        # The input is valid: from here on the run writes checkpoints.
        check_checkpoint_root(job.checkpoints, create=True)
        remember_fingerprints(plan, job.checkpoints)
        manifest = commit_manifest(store, Manifest(
            stage=stage, key=key, format_version=_format(), parts=[], result=result,
            seconds=time.perf_counter() - start, flow_run_id=job.flow_run_id))
    _check_minimum(job, manifest.result)  # the manifest may be another affinity's
    return manifest.result


def _check_minimum(job: Job, result: dict[str, Any]) -> None:
    try:
        check_nonnegative(result["min"], job.estimator["affinity"], subject="The input")
    except ValueError as exc:
        raise InputError(str(exc)) from None


#: Ids per bucket of the cross-block uniqueness check (about 8 bytes each, a few copies).
IDS_PER_BUCKET = 5_000_000


def _check_ids(plan: DatasetPlan, source: Store, blocks_ids: list[dict[str, Any]]) -> None:
    """Ids must be unique and present: the labels are joined back to the data on them.

    Without gathering them: each block reported its own repeats and its smallest and largest
    id. When no block repeats an id and the blocks' [smallest, largest] ranges do not overlap
    (ids that grow with the rows: the common case) that settles it; otherwise the ids are
    hashed into buckets of about :data:`IDS_PER_BUCKET` and each bucket is checked on a
    worker, reading only the id column. The flow process never holds the ids.
    """
    if any(b["null"] for b in blocks_ids):
        raise InputError(f"The id column {plan.id_column!r} has missing values; ids must be "
                         "present on every row.")
    ranges = sorted((b["lo"], b["hi"]) for b in blocks_ids if b["lo"] is not None)
    overlap = any(prev[1] >= cur[0] for prev, cur in itertools.pairwise(ranges))
    repeated = None
    if overlap or any(b["dup"] is not None for b in blocks_ids):
        # Also when a block repeats an id: the error then counts it over the whole dataset.
        buckets = max(1, -(-plan.n_rows // IDS_PER_BUCKET))
        found = fan_out(duplicate_ids_in_bucket, range(buckets), buckets, plan, source)
        repeated = next((d for d in found if d is not None), None)
    if repeated is not None:
        value, count = repeated
        raise InputError(
            f"The id column {plan.id_column!r} has duplicated values (e.g. {value!r} appears "
            f"{count} times); ids must be unique so that the labels can be joined back to the "
            "data. Choose another id column or none (rows are then numbered)."
        )


# --------------------------------------------------------------------------------------------
# Stage 1
# --------------------------------------------------------------------------------------------


@_stage_task("sample_landmarks")
def sample_landmarks(job: Job):
    """Reads the sampled rows; writes sample_landmarks/landmarks.parquet.

    The library's :func:`spectral_core.sample_landmarks` on the rows it draws.
    """
    stage, start = "sample_landmarks", time.perf_counter()
    reused = _reuse(job, stage)
    if reused:
        return reused
    p = job.estimator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm = sc.sample_landmarks(
            ParquetRows(job.plan, _dtype(job), job.input), p["n_components"],
            method=p["landmarks"], precomputed=p["affinity"] == "precomputed",
            random_state=job.seeds.sample_landmarks,
        )
    _log_warnings(caught)
    indices = lm.indices if lm.indices is not None else np.full(lm.n_landmarks, -1)
    part = write_part(job.stage_store(stage), "landmarks.parquet",
                      {"points": lm.points, "index": indices.astype(np.int64)},
                      stage=stage, key=job.stage_keys[stage])
    faults.after_part(stage)
    return _commit(job, stage, [part], {"n_landmarks": lm.n_landmarks}, start, 1)


def load_landmarks(job: Job) -> sc.Landmarks:
    stage = "sample_landmarks"
    arrays, _ = read_part(job.stage_store(stage), "landmarks.parquet", stage=stage,
                          expect={"stage": stage, "key": job.stage_keys[stage]})
    idx = arrays["index"]
    return sc.Landmarks(points=np.ascontiguousarray(arrays["points"], dtype=_dtype(job)),
                        indices=None if (idx < 0).any() else idx)


# --------------------------------------------------------------------------------------------
# Stage 2
# --------------------------------------------------------------------------------------------


def _column_sums_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
                      kernel: sc.Kernel, out: Store, key: str) -> tuple[Part, np.ndarray]:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    s = blocks.block_column_sums(read_block(plan, block, store=source), landmarks, kernel)
    part = write_part(out, f"pass1/{_part_name(block)}", {"s": s}, stage="kernel_blocks",
                      key=key, block=block.index)
    faults.after_part("kernel_blocks")
    return part, s


def _gram_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
               kernel: sc.Kernel, weights: blocks.DegreeWeights
               ) -> tuple[np.ndarray, np.ndarray]:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    return blocks.block_gram(read_block(plan, block, store=source), landmarks, kernel,
                             weights.degree_weights, weights.degree_floor, weights.normalizer,
                             weights.diagonal)


def _gram_group(group: int, *partials: tuple[np.ndarray, np.ndarray], out: Store | None = None,
                key: str = "") -> tuple[Part, np.ndarray, np.ndarray]:
    """The Gram and degree statistics of a group of blocks, summed on the worker, written."""
    gram = blocks.sum_in_order([g for g, _ in partials])
    stats = np.asarray([st for _, st in partials]).reshape(-1, 4)
    merged = np.array([stats[:, 0].sum(), stats[:, 1].min(), stats[:, 2].max(),
                       stats[:, 3].sum()])
    part = write_part(out, f"pass2/group-{group:04d}.parquet", {"gram": gram},
                      stage="kernel_blocks", key=key, group=group, stats=merged.tolist())
    faults.after_part("kernel_blocks")
    return part, gram, merged


def gram_groups(plan: DatasetPlan) -> list[list[Block]]:
    return [plan.blocks[i:i + GRAM_GROUP] for i in range(0, len(plan.blocks), GRAM_GROUP)]


@_stage_task("kernel_blocks")
def kernel_blocks(job: Job, landmarks_ref: dict[str, Any]):
    """Two passes over the blocks; writes pass-1 parts, weights, pass-2 groups, the Gram.

    Each block is one Dask task calling :mod:`spectral_core.blocks`; a stage that died part
    way resumes from the parts it wrote.
    """
    stage, start = "kernel_blocks", time.perf_counter()
    reused = _reuse(job, stage)
    if reused:
        return reused
    p, plan, key, out = job.estimator, job.plan, job.stage_keys[stage], job.stage_store(stage)
    landmarks, kernel = load_landmarks(job), job.kernel()
    computed = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = blocks.prepare_landmark_kernel(landmarks, kernel, dtype=_dtype(job),
                                                  min_rank=p["n_clusters"])
        # Pass 1: s = Σ_b Cᵀ1 over the blocks (parts found valid are read, not recomputed).
        names = [f"pass1/{_part_name(b)}" for b in plan.blocks]
        found = _valid_parts(out, names, {"stage": stage, "key": key})
        sums: dict[int, np.ndarray] = {}
        parts: dict[str, Part] = {}
        for b, name in zip(plan.blocks, names, strict=True):
            if name in found:
                try:
                    sums[b.index] = read_part(out, found[name], stage=stage)[0]["s"]
                    parts[name] = found[name]
                except CorruptCheckpoint as exc:
                    get_run_logger().warning("%s", exc)
        todo = [b for b in plan.blocks if b.index not in sums]
        new = fan_out(_column_sums_part, todo, plan, job.input, landmarks, kernel, out, key,
                      on_progress=_Progress(stage, "pass 1 (column sums)",
                                             reused=len(plan.blocks) - len(todo),
                                             total=len(plan.blocks)))
        computed += len(todo)
        for b, (part, s) in zip(todo, new, strict=True):
            sums[b.index], parts[part.name] = s, part
        s = blocks.sum_in_order([sums[b.index] for b in plan.blocks])
        weights = blocks.degree_weights(s, prepared, kernel, n_samples=plan.n_rows,
                                        dtype=_dtype(job), min_rank=p["n_clusters"])
        parts["weights.parquet"] = write_part(
            out, "weights.parquet", {"S": weights.normalizer, "t": weights.degree_weights,
                                     "s": s, "lam": weights.landmark_eigenvalues},
            stage=stage, key=key, diagonal=weights.diagonal, floor=weights.degree_floor)
        # Pass 2: G = Σ F̃ᵀF̃, summed per group of blocks on the workers.
        groups = gram_groups(plan)
        gnames = [f"pass2/group-{g:04d}.parquet" for g in range(len(groups))]
        found = _valid_parts(out, gnames, {"stage": stage, "key": key})
        totals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for g, name in enumerate(gnames):
            if name in found:
                try:
                    arrays, meta = read_part(out, found[name], stage=stage)
                    totals[g], parts[name] = (arrays["gram"], np.asarray(meta["stats"])), \
                        found[name]
                except CorruptCheckpoint as exc:
                    get_run_logger().warning("%s", exc)
        missing = [g for g in range(len(groups)) if g not in totals]
        new = fan_in(_gram_part, [groups[g] for g in missing],
                     _GroupWriter(out, key, missing), plan, job.input, landmarks, kernel,
                     weights, on_progress=_Progress(stage, "pass 2 (Gram)",
                                                 reused=len(groups) - len(missing),
                                                 total=len(groups)))
        computed += sum(len(groups[g]) for g in missing)
        for g, (part, gram, stats) in zip(missing, new, strict=True):
            totals[g], parts[part.name] = (gram, stats), part
        summary = blocks.summarize_kernel_blocks(
            weights, [totals[g][0] for g in range(len(groups))],
            [totals[g][1] for g in range(len(groups))], kernel, n_samples=plan.n_rows)
    _log_warnings(caught)
    parts["gram.parquet"] = write_part(
        out, "gram.parquet", {"G": summary.gram}, stage=stage, key=key,
        n_clipped=summary.n_clipped, degree_min=summary.degree_min,
        degree_max=summary.degree_max, degree_mean=summary.degree_mean)
    return _commit(job, stage, list(parts.values()), {
        "rank": summary.rank, "n_clipped": summary.n_clipped,
        "degree_min": summary.degree_min, "degree_mean": summary.degree_mean,
    }, start, computed, work=2 * len(plan.blocks))


class _GroupWriter:
    """``combine`` for :func:`fan_in`: writes group ``ids[g]``'s summed Gram on the worker."""

    __name__ = "_gram_group"

    def __init__(self, out: Store, key: str, ids: list[int]):
        self.out, self.key, self.ids = out, key, ids

    def __call__(self, g: int, *partials):
        return _gram_group(self.ids[g], *partials, out=self.out, key=self.key)


def load_kernel_summary(job: Job) -> sc.KernelSummary:
    stage, key = "kernel_blocks", job.stage_keys["kernel_blocks"]
    out = job.stage_store(stage)
    wa, wm = read_part(out, "weights.parquet", stage=stage, expect={"key": key})
    ga, gm = read_part(out, "gram.parquet", stage=stage, expect={"key": key})
    return sc.KernelSummary(
        column_sums=wa["s"], normalizer=wa["S"], diagonal=wm["diagonal"],
        degree_weights=wa["t"], degree_floor=wm["floor"], gram=ga["G"],
        landmark_eigenvalues=wa["lam"], n_samples=job.plan.n_rows,
        n_clipped=gm["n_clipped"], degree_min=gm["degree_min"], degree_max=gm["degree_max"],
        degree_mean=gm["degree_mean"],
    )


# --------------------------------------------------------------------------------------------
# Stage 3
# --------------------------------------------------------------------------------------------


@_stage_task("eigendecompose")
def eigendecompose(job: Job, kernel_ref: dict[str, Any]):
    """Reads gram.parquet and weights.parquet; writes eigendecompose/eigen.parquet.

    The library's :func:`spectral_core.eigendecompose`, in the flow's process (m × m).
    """
    stage, start = "eigendecompose", time.perf_counter()
    reused = _reuse(job, stage)
    if reused:
        return reused
    p = job.estimator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = load_kernel_summary(job)
        width = sc.embedding_width(p["affinity"], p["n_clusters"], summary.gram.shape[0])
        eigen = sc.eigendecompose(summary, width, eigen_solver=p["eigen_solver"],
                                  eigen_tol=p["eigen_tol"],
                                  random_state=job.seeds.eigendecompose)
    _log_warnings(caught)
    part = write_part(job.stage_store(stage), "eigen.parquet", {"P": eigen.projection},
                      stage=stage, key=job.stage_keys[stage],
                      eigenvalues=eigen.eigenvalues.tolist(), spectrum=eigen.spectrum.tolist())
    faults.after_part(stage)
    # The leading eigenvalues past the embedding's width go in the reference (a few dozen
    # floats) for the summary's eigengap suggestion and the report's eigenvalue plot.
    return _commit(job, stage, [part], {"eigenvalues": eigen.eigenvalues.tolist(),
                                        "spectrum": eigen.spectrum.tolist()}, start, 1)


def load_eigen(job: Job) -> sc.EigenResult:
    stage = "eigendecompose"
    arrays, meta = read_part(job.stage_store(stage), "eigen.parquet", stage=stage,
                             expect={"key": job.stage_keys[stage]})
    # A checkpoint written before the spectrum was recorded has only the kept eigenvalues.
    return sc.EigenResult(eigenvalues=np.asarray(meta["eigenvalues"]), projection=arrays["P"],
                          spectrum=np.asarray(meta.get("spectrum", meta["eigenvalues"])))


# --------------------------------------------------------------------------------------------
# Stage 4
# --------------------------------------------------------------------------------------------


def _embed_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
                kernel: sc.Kernel, summary: sc.KernelSummary, eigen: sc.EigenResult,
                out: Store, key: str) -> Part:
    faults.before_part("embed")
    one_blas_thread()
    U = blocks.block_embedding(read_block(plan, block, store=source), landmarks, kernel,
                               summary.degree_weights, summary.degree_floor, eigen.projection)
    part = write_part(out, _part_name(block), {"u": U}, stage="embed", key=key,
                      block=block.index)
    faults.after_part("embed")
    return part


@_stage_task("embed")
def embed(job: Job, eigen_ref: dict[str, Any]):
    """Third pass over the blocks; writes the embedding, one part per block.

    The parts are ``embed/part-<block>.parquet`` (row-normalized, n × k), then the stage's
    manifest.
    """
    stage, start = "embed", time.perf_counter()
    reused = _reuse(job, stage)
    if reused:
        return reused
    plan, key, out = job.plan, job.stage_keys[stage], job.stage_store(stage)
    names = [_part_name(b) for b in plan.blocks]
    found = _valid_parts(out, names, {"stage": stage, "key": key})
    todo = [b for b, name in zip(plan.blocks, names, strict=True) if name not in found]
    new = fan_out(_embed_part, todo, plan, job.input, load_landmarks(job), job.kernel(),
                  load_kernel_summary(job), load_eigen(job), out, key,
                  on_progress=_Progress(stage, "embedding", reused=len(found),
                                         total=len(names)))
    parts = {**found, **{part.name: part for part in new}}
    return _commit(job, stage, [parts[name] for name in names], {}, start, len(todo))


def embed_parts(job: Job) -> tuple[Store, list[Part]]:
    manifest = committed(job, "embed")
    if manifest is None:
        raise CorruptCheckpoint(job.stage_store("embed"), "_SUCCESS.json", "embed",
                                "the manifest is missing")
    return job.stage_store("embed"), manifest.parts


# --------------------------------------------------------------------------------------------
# Stage 5
# --------------------------------------------------------------------------------------------


def _sample_rows(item: tuple[Block, Part, np.ndarray], store: Store, key: str) -> np.ndarray:
    """The sampled rows of one embedding part (read on the worker that holds the work)."""
    _, part, local = item
    U = read_part(store, part, stage="embed", expect={"key": key})[0]["u"]
    return U[local]


def _label_part(item: tuple[Block, Part], store: Store, key: str, model: Any, out: Store,
                out_key: str) -> tuple[Part, dict[int, int], np.ndarray]:
    """The clusterer's raw labels of one part, written, with each label's first row."""
    block, part = item
    faults.before_part("assign_labels")
    one_blas_thread()
    U = read_part(store, part, stage="embed", expect={"key": key})[0]["u"]
    raw = np.asarray(model.predict(U), dtype=np.int64)
    written = write_part(out, _part_name(block), {"raw": raw}, stage="assign_labels",
                         key=out_key, block=block.index)
    faults.after_part("assign_labels")
    values, counts = np.unique(raw, return_counts=True)
    return written, blocks.first_rows(raw, offset=block.start), np.stack([values, counts])


@_stage_task("assign_labels")
def assign_labels(job: Job, embed_ref: dict[str, Any]):
    """Fits the clusterer on a sample of the embedding parts, then labels every part.

    The parts are labelled on the workers and written as ``assign_labels/part-<block>.parquet``
    (raw labels); the first-appearance numbering is kept in the stage's manifest.
    """
    stage, start = "assign_labels", time.perf_counter()
    reused = _reuse(job, stage)
    if reused:
        return reused
    p, plan, key, out = job.estimator, job.plan, job.stage_keys[stage], job.stage_store(stage)
    source, parts = embed_parts(job)
    seed = blocks.assignment_seed(job.seeds.assign_labels)
    rows = blocks.fit_rows(plan.n_rows, seed)
    items = []
    for b, part in zip(plan.blocks, parts, strict=True):
        local = np.arange(b.rows) if rows is None else \
            rows[(rows >= b.start) & (rows < b.start + b.rows)] - b.start
        if local.size:
            items.append((b, part, local))
    sample = np.concatenate(fan_out(_sample_rows, items, source, job.stage_keys["embed"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = blocks.make_assigner(p["assign_labels"], p["n_clusters"], n_init=p["n_init"],
                                     kmeans_params=p["kmeans_params"], random_state=seed,
                                     width=sample.shape[1])
        model.fit(sample)
    _log_warnings(caught)
    del sample
    results = fan_out(_label_part, list(zip(plan.blocks, parts, strict=True)), source,
                      job.stage_keys["embed"], model, out, key,
                      on_progress=_Progress(stage, "labelling"))
    first: dict[int, int] = {}
    counts: dict[int, int] = {}
    for _, firsts, value_counts in results:
        for label, row in firsts.items():
            first[label] = min(row, first.get(label, row))
        for label, count in value_counts.T:
            counts[int(label)] = counts.get(int(label), 0) + int(count)
    mapping = blocks.order_by_first_row(first)
    order = sorted((label for label in first if label >= 0), key=first.__getitem__)
    sizes = [counts[label] for label in order]
    return _commit(job, stage, [part for part, _, _ in results], {
        "cluster_sizes": sizes, "n_rows": plan.n_rows,
        "numbering": {"table": mapping.table.tolist(), "offset": mapping.offset},
    }, start, len(plan.blocks))


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.get_id()
