"""The tasks around the stages: plan the run (every check first), write the outputs."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

import spectral_core as sc

from . import faults, report
from .io import (
    FORMAT_VERSION,
    CorruptCheckpoint,
    Manifest,
    Part,
    block_ids,
    commit_manifest,
    read_manifest,
    read_part,
    write_part,
)
from .job import Block, DatasetPlan, Job
from .parallel import fan_out, one_blas_thread
from .preflight import build_job
from .stages import STAGES, committed, current_flow_run_id, embed_parts
from .storage import Store


@task(name="plan", retries=0, cache_policy=NONE, persist_result=False)
def plan(params: dict[str, Any]) -> Job:
    """Reads Parquet footers (and hashes changed local files); checks parameters and paths.

    Every check that needs no pass over the data; it writes nothing.
    """
    job = build_job(params, current_flow_run_id())
    get_run_logger().info(
        "plan: %d rows × %d features in %d files, %d blocks; checkpoint keys %s",
        job.plan.n_rows, job.plan.n_features, len(job.plan.files), len(job.plan.blocks),
        job.stage_keys.model_dump(),
    )
    return job


# --------------------------------------------------------------------------------------------
# Outputs: labels/ (and embedding/) as Parquet datasets, written part by part on the workers
# --------------------------------------------------------------------------------------------


def _output_part(item: tuple[Block, Part, Part | None], plan: DatasetPlan, source: Store,
                 raw_store: Store, raw_key: str, numbering: Any, id_name: str,
                 labels: Store, embed_store: Store | None, embed_key: str,
                 embedding: Store | None) -> tuple[Part, Part | None]:
    """One block's (id, label) rows, and its (id, u_0 ... u_k-1) rows if asked."""
    block, raw_part, embed_part = item
    one_blas_thread()
    raw = read_part(raw_store, raw_part, stage="assign_labels", expect={"key": raw_key})[0]
    ids = block_ids(plan, block, store=source)
    name = f"part-{block.index:06d}.parquet"
    written = write_part(labels, name, {id_name: ids, "label": numbering[raw["raw"]]},
                         stage="labels", key=raw_key, block=block.index)
    extra = None
    if embedding is not None and embed_part is not None:
        U = read_part(embed_store, embed_part, stage="embed", expect={"key": embed_key})[0]["u"]
        extra = write_part(embedding, name, {id_name: ids, **{f"u_{j}": U[:, j]
                                                               for j in range(U.shape[1])}},
                           stage="embedding", key=embed_key, block=block.index)
    faults.after_part("write_outputs")
    return written, extra


class _Numbering:
    """``numbering[raw]``: the first-appearance label of each raw label (picklable)."""

    def __init__(self, table: list[int], offset: int):
        self.table, self.offset = np.asarray(table, dtype=np.int64), offset

    def __getitem__(self, raw: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(raw) - self.offset]


def _replace_dataset(store: Store, keep: set[str]) -> None:
    """Before writing a dataset again: no manifest, and no part the new one will not list.

    This writer lists the directory (readers never do), so that parts of an earlier run on
    another input cannot join ``pd.read_parquet(<output>/labels)``.
    """
    store.remove("_SUCCESS.json")
    try:
        names = [os.path.basename(p) for p in store.fs.ls(store.root, detail=False)]
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith("part-") and name not in keep:
            store.remove(name)


@task(name="write_outputs", retries=2, retry_delay_seconds=1, cache_policy=NONE,
      persist_result=False)
def write_outputs(job: Job, refs: dict[str, dict[str, Any]], states: dict[str, str]
                  ) -> dict[str, Any]:
    """Writes <output>/labels/ (and embedding/) part by part on the workers, then
    summary.json and the run's summary artifact."""
    plan, out = job.plan, job.output
    labels, raw_key = out.child("labels"), job.stage_keys["assign_labels"]
    persist = job.estimator["persist_embedding"]
    embedding = out.child("embedding") if persist else None
    raw_manifest = committed(job, "assign_labels")
    if raw_manifest is None:
        raise CorruptCheckpoint(job.stage_store("assign_labels"), "_SUCCESS.json",
                                "assign_labels", "the manifest is missing")
    names = {f"part-{b.index:06d}.parquet" for b in plan.blocks}
    current = read_manifest(labels, "labels", raw_key)
    current_embedding = read_manifest(embedding, "embedding", job.stage_keys["embed"]) \
        if embedding is not None else None
    if current is None or (embedding is not None and current_embedding is None):
        _replace_dataset(labels, names)
        if embedding is not None:
            _replace_dataset(embedding, names)
        embed_store, embed_list = embed_parts(job) if persist else (None, [None] * len(names))
        numbering = _Numbering(**raw_manifest.result["numbering"])
        id_name = plan.id_column or "row"
        start = time.perf_counter()
        written = fan_out(_output_part, list(zip(plan.blocks, raw_manifest.parts, embed_list,
                                                 strict=True)),
                          plan, job.input, job.stage_store("assign_labels"), raw_key,
                          numbering, id_name, labels, embed_store, job.stage_keys["embed"],
                          embedding)
        seconds = time.perf_counter() - start
        commit_manifest(labels, Manifest(
            stage="labels", key=raw_key, format_version=FORMAT_VERSION,
            parts=[w for w, _ in written], result={"rows": plan.n_rows}, seconds=seconds,
            flow_run_id=job.flow_run_id))
        if embedding is not None:
            commit_manifest(embedding, Manifest(
                stage="embedding", key=job.stage_keys["embed"], format_version=FORMAT_VERSION,
                parts=[e for _, e in written], result={"rows": plan.n_rows}, seconds=seconds,
                flow_run_id=job.flow_run_id))
    files = {"labels": labels.display()}
    if embedding is not None:
        files["embedding"] = embedding.display()
    stages = {
        s: {"seconds": round(refs[s]["seconds"], 3), "state": states.get(s),
            "reused": bool(refs[s].get("reused")), "key": refs[s]["key"],
            "parts": refs[s].get("parts"), "parts_computed": refs[s].get("parts_computed")}
        for s in STAGES
    }
    eigen_ref = refs["eigendecompose"]
    # A checkpoint from before the spectrum was recorded: the kept eigenvalues are all there is.
    spectrum = eigen_ref.get("spectrum", eigen_ref["eigenvalues"])
    summary = {
        "parameters": {"input": job.plan.input_url, "output_dir": job.output_url,
                       "checkpoint_dir": job.checkpoint_url,
                       "feature_columns": plan.features, "id_column": plan.id_column,
                       "storage_options": job.storage_options, **job.estimator},
        "input": {"files": len(plan.files), "rows": plan.n_rows, "features": plan.features,
                  "fingerprint": plan.fingerprint},
        "seed": job.seed,
        "eigenvalues": eigen_ref["eigenvalues"],
        "spectrum": spectrum,
        "suggested_n_clusters": sc.eigengap_n_clusters(spectrum) if len(spectrum) >= 2
        else None,
        "cluster_sizes": refs["assign_labels"]["cluster_sizes"],
        "stages": stages,
        "checkpoint": {"root": job.checkpoint_url, "keys": job.stage_keys.model_dump(),
                       "format_version": job.format_version},
        "outputs": files,
        "flow_run_id": job.flow_run_id,
    }
    # The pictures: a bounded sample of the embedding (report.SAMPLE_PARTS parts at most),
    # drawn here on the worker with matplotlib's Agg, inlined as PNG data URIs.
    _, U, raw = report.sample_embedding(job)
    numbering = _Numbering(**raw_manifest.result["numbering"])
    labels = numbering[raw]
    figures = report.render_figures(summary, report.cluster_plane(U, labels, seed=job.seed),
                                    labels)
    files["report"] = out.display("report.html")
    out.write_bytes("report.html", report.report_html(summary, figures).encode())
    out.write_bytes("summary.json", json.dumps(summary, indent=2, default=str).encode())
    files["summary"] = out.display("summary.json")
    create_markdown_artifact(markdown=_markdown(summary, figures),
                             key="spectral-clustering-summary",
                             description="The eigengap suggestion, the report's figures, "
                             "cluster sizes, eigenvalues and stage timings")
    return {"files": files, "cluster_sizes": summary["cluster_sizes"],
            "eigenvalues": summary["eigenvalues"], "spectrum": summary["spectrum"],
            "suggested_n_clusters": summary["suggested_n_clusters"], "stages": stages,
            "rows": plan.n_rows}


def _markdown(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The artifact: the report's figures inline (Prefect's UI renders markdown images as
    plain ``<img>`` elements, data URIs included), then the summary's tables."""
    lines = ["# Spectral clustering", "",
             f"{summary['input']['rows']:,} rows from {summary['input']['files']} file(s); "
             f"labels in `{summary['outputs']['labels']}`, the same report as one page in "
             f"`{summary['outputs']['report']}`.", "",
             "**" + report.suggestion_sentence(summary["suggested_n_clusters"],
                                               summary["parameters"]["n_clusters"]) + "**", ""]
    lines += [f"![{report.CAPTIONS[name]}]({report.data_uri(png)})\n"
              for name, png in figures.items()]
    lines += ["| cluster | rows | share |", "|---:|---:|---:|"]
    total = max(sum(summary["cluster_sizes"]), 1)
    for i, n in enumerate(summary["cluster_sizes"]):
        lines.append(f"| {i} | {n:,} | {100 * n / total:.1f}% |")
    lines += ["", "| eigenvalue | value | kept in the embedding |", "|---:|---:|:---:|"]
    kept = len(summary["eigenvalues"])
    lines += [f"| {i + 1} | {v:.6f} | {'yes' if i < kept else ''} |"
              for i, v in enumerate(summary["spectrum"])]
    lines += ["", "| stage | seconds | state | parts computed |", "|---|---:|---|---:|"]
    for s, info in summary["stages"].items():
        computed = "" if info["parts"] is None else f"{info['parts_computed']}/{info['parts']}"
        lines.append(f"| {s} | {info['seconds']:.2f} | {info['state']} | {computed} |")
    return "\n".join(lines)
