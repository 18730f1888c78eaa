"""The small tasks around the stages: plan the run (checks first), write the outputs."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

import spectral_core as sc
from spectral_core.blocks import compute_dtype
from spectral_core.params import (
    PARAMETERS,
    check_n_samples,
    check_precomputed_shape,
    validate_params,
)

from .io import (
    FORMAT_VERSION,
    DatasetPlan,
    InputError,
    check_checkpoint_root,
    plan_dataset,
    stage_key,
    write_table_atomic,
    write_text_atomic,
)
from .stages import (
    STAGES,
    current_flow_run_id,
    load_embedding,
    load_labels,
    read_marker,
)


def _check_writable(directory: str, what: str) -> None:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"The {what} {directory!r} cannot be written: {exc}.") from exc


#: os.pathsep-separated directories that input, output and checkpoint paths must resolve into
#: (unset: no confinement, for a person running the CLI on their own files).
ALLOWED_ROOTS_ENV = "SPECTRAL_ALLOWED_ROOTS"


def confine(path: str, what: str) -> str:
    """``path`` resolved (symlinks too); refused unless inside the configured roots."""
    real = os.path.realpath(path)
    roots = [os.path.realpath(r) for r in os.environ.get(ALLOWED_ROOTS_ENV, "").split(
        os.pathsep) if r]
    if roots and not any(os.path.commonpath([real, r]) == r for r in roots):
        raise InputError(
            f"The {what} {path!r} resolves to {real!r}, outside the allowed roots {roots} "
            f"({ALLOWED_ROOTS_ENV}). Use a path inside them."
        )
    return real


def _glob_base(source: str) -> str:
    """The directory part of a glob before its first wildcard (what the glob can reach)."""
    head = source
    for i, ch in enumerate(source):
        if ch in "*?[":
            head = source[:i]
            break
    return os.path.dirname(head) if head != source else source


def build_job(params: dict[str, Any]) -> dict[str, Any]:
    """Every check that needs no pass over the data, then the stage keys. Raises early."""
    params = dict(params)
    confine(_glob_base(params["input"]) or ".", "input")
    params["output_dir"] = confine(params["output_dir"], "output directory")
    if params.get("checkpoint_dir"):
        params["checkpoint_dir"] = confine(params["checkpoint_dir"], "checkpoint directory")
    p = validate_params(_estimator_params(params))  # the estimator's checks and messages
    sc.make_kernel(p["affinity"], gamma=p["gamma"], degree=p["degree"], coef0=p["coef0"],
                   kernel_params=p["kernel_params"], n_neighbors=p["n_neighbors"])
    if callable(p["affinity"]) or not isinstance(p["assign_labels"], str):
        raise InputError("The flow takes string affinities and assign_labels only.")
    plan = plan_dataset(params["input"], params.get("feature_columns"),
                        params.get("id_column"), params["block_size"])
    for f in plan.files:  # a symlink inside the roots may still point outside them
        confine(f, "input file")
    check_n_samples(plan.n_rows, p["n_components"])
    check_precomputed_shape((plan.n_rows, plan.n_features), p["affinity"],
                            subject="The input (rows × feature columns)")
    root = params.get("checkpoint_dir") or os.path.join(params["output_dir"], "checkpoints")
    _check_writable(params["output_dir"], "output directory")
    check_checkpoint_root(root)
    schema = pq.ParquetFile(plan.files[0]).schema_arrow
    dtype = compute_dtype(schema.field(c).type.to_pandas_dtype() for c in plan.features).name
    seed = p_seed = params.get("random_state")
    if seed is None:  # deterministic per dataset, so a rerun resumes and agrees
        p_seed = int(hashlib.sha256(plan.fingerprint.encode()).hexdigest()[:8], 16) % 2**31
    seeds = sc.stage_seeds(p_seed)
    kernel_id = {k: p[k] for k in ("affinity", "gamma", "degree", "coef0", "kernel_params",
                                   "n_neighbors")}
    keys: dict[str, str] = {}
    keys["sample_landmarks"] = stage_key(plan.fingerprint, plan.features, dtype,
                                         p["n_components"], p["landmarks"],
                                         p["affinity"] == "precomputed",
                                         seeds["sample_landmarks"])
    keys["kernel_blocks"] = stage_key(keys["sample_landmarks"], kernel_id)
    keys["eigendecompose"] = stage_key(keys["kernel_blocks"], p["n_clusters"],
                                       p["eigen_solver"], p["eigen_tol"],
                                       seeds["eigendecompose"])
    keys["embed"] = stage_key(keys["eigendecompose"])
    keys["assign_labels"] = stage_key(keys["embed"], p["assign_labels"], p["n_init"],
                                      p["kmeans_params"], seeds["assign_labels"])
    job = {
        "params": {**params, **{k: v for k, v in p.items() if k != "n_jobs"}},
        "plan": plan.to_dict(),
        "checkpoint_root": os.path.abspath(root),
        "output_dir": os.path.abspath(params["output_dir"]),
        "dtype": dtype,
        "random_state": seed,
        "seed": p_seed,
        "seeds": seeds,
        "keys": keys,
        "format_version": FORMAT_VERSION,
        "flow_run_id": current_flow_run_id(),
    }
    job["complete"] = {s: read_marker(job, s) is not None for s in STAGES}
    return job


def _estimator_params(params: dict[str, Any]) -> dict[str, Any]:
    return {n: params[n] for n in PARAMETERS if n in params}


@task(name="plan", retries=0)
def plan(params: dict[str, Any]) -> dict[str, Any]:
    """Reads Parquet footers (and hashes file bytes); checks parameters, paths, directories."""
    job = build_job(params)
    get_run_logger().info(
        "plan: %d rows × %d features in %d files, %d blocks; checkpoint keys %s",
        job["plan"]["n_rows"], len(job["plan"]["features"]), len(job["plan"]["files"]),
        len(job["plan"]["blocks"]), job["keys"],
    )
    return job


def _ids(plan: DatasetPlan) -> tuple[str, pa.Array]:
    if not plan.id_column:
        return "row", pa.array(np.arange(plan.n_rows, dtype=np.int64))
    chunks = [pq.ParquetFile(b.path).read_row_groups(b.row_groups, columns=[plan.id_column])
              .column(0) for b in plan.blocks]
    ids = pa.chunked_array([c for ch in chunks for c in ch.chunks]).combine_chunks()
    return plan.id_column, ids


@task(name="write_outputs", retries=2, retry_delay_seconds=1)
def write_outputs(job: dict[str, Any], refs: dict[str, dict[str, Any]],
                  states: dict[str, str] | None = None) -> dict[str, Any]:
    """Reads the labels (and embedding) checkpoints; writes labels.parquet, summary.json."""
    plan = DatasetPlan.from_dict(job["plan"])
    out = Path(job["output_dir"])
    labels = load_labels(job)
    id_name, ids = _ids(plan)
    write_table_atomic(out / "labels.parquet",
                       pa.table({id_name: ids, "label": pa.array(labels)}))
    files = {"labels": str(out / "labels.parquet")}
    if job["params"]["persist_embedding"]:
        U = load_embedding(job)
        cols = {id_name: ids, **{f"u_{j}": pa.array(U[:, j]) for j in range(U.shape[1])}}
        write_table_atomic(out / "embedding.parquet", pa.table(cols))
        files["embedding"] = str(out / "embedding.parquet")
    this_run = job.get("flow_run_id")
    stages = {
        s: {"seconds": round(refs[s]["seconds"], 3),
            "reused": (states or {}).get(s) == "Cached" or bool(refs[s].get("from_checkpoint")),
            "state": (states or {}).get(s), "key": refs[s]["key"],
            **{k: refs[s][k] for k in ("parts", "parts_computed") if k in refs[s]}}
        for s in STAGES
    }
    summary = {
        "parameters": job["params"],
        "input": {"files": len(plan.files), "rows": plan.n_rows, "features": plan.features,
                  "fingerprint": plan.fingerprint},
        "seed": job["seed"],
        "eigenvalues": refs["eigendecompose"]["eigenvalues"],
        "cluster_sizes": refs["assign_labels"]["cluster_sizes"],
        "stages": stages,
        "checkpoint": {"root": job["checkpoint_root"], "key": job["keys"]["assign_labels"],
                       "keys": job["keys"], "format_version": job["format_version"]},
        "outputs": files,
        "flow_run_id": this_run,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    files["summary"] = str(out / "summary.json")
    create_markdown_artifact(markdown=_markdown(summary), key="spectral-clustering-summary",
                             description="Cluster sizes, eigenvalues and stage timings")
    return {"files": files, "cluster_sizes": summary["cluster_sizes"],
            "eigenvalues": summary["eigenvalues"], "stages": stages, "rows": plan.n_rows}


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# Spectral clustering", "",
             f"{summary['input']['rows']:,} rows from {summary['input']['files']} file(s); "
             f"outputs in `{Path(summary['outputs']['labels']).parent}`.", "",
             "| cluster | rows | share |", "|---:|---:|---:|"]
    total = max(sum(summary["cluster_sizes"]), 1)
    for i, n in enumerate(summary["cluster_sizes"]):
        lines.append(f"| {i} | {n:,} | {100 * n / total:.1f}% |")
    lines += ["", "| eigenvalue | value |", "|---:|---:|"]
    lines += [f"| {i + 1} | {v:.6f} |" for i, v in enumerate(summary["eigenvalues"])]
    lines += ["", "| stage | seconds | reused |", "|---|---:|:---:|"]
    for s, info in summary["stages"].items():
        lines.append(f"| {s} | {info['seconds']:.2f} | {'yes' if info['reused'] else ''} |")
    return "\n".join(lines)
