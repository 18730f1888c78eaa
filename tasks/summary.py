"""The run's summary: ``summary.json``, ``report.html`` and the summary artifact.

Written once every stage is done, by a task of its own (run every time: it records this run's
states and timings, so it has no manifest). The pictures are drawn by :mod:`.report`.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

import spectral_core as sc

from . import report
from .assign import Numbering
from .job import Job
from .stage import task_options
from .stages import STAGES


def build_summary(job: Job, refs: dict[str, dict[str, Any]], states: dict[str, str],
                  planned: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json``: the parameters, the input, the eigenvalues, the clusters, every
    stage's time and state (and the plan's, ``planned``), where the outputs are."""
    plan = job.plan
    every = {
        s: {"seconds": round(refs[s]["seconds"], 3), "state": states.get(s),
            "reused": bool(refs[s].get("reused")), "key": refs[s]["key"],
            "parts": refs[s].get("parts"), "parts_computed": refs[s].get("parts_computed"),
            **({"passes": refs[s]["passes"]} if "passes" in refs[s] else {})}
        for s in STAGES
    }
    eigen_ref = refs["eigendecompose"]
    # A checkpoint from before the spectrum was recorded: the kept eigenvalues are all there is.
    spectrum = eigen_ref.get("spectrum", eigen_ref["eigenvalues"])
    suggestion = report.suggestion_record(spectrum)
    return {
        "parameters": {"input": plan.input_url, "output_dir": job.output_url,
                       "checkpoint_dir": job.checkpoint_url,
                       "feature_columns": plan.features, "id_column": plan.id_column,
                       "storage_options": job.storage_options, **job.estimator.model_dump()},
        "input": {"files": len(plan.files), "rows": plan.n_rows, "features": plan.features,
                  "fingerprint": plan.fingerprint},
        "seed": job.seed,
        "eigenvalues": eigen_ref["eigenvalues"],
        "spectrum": spectrum,
        # The suggestion (None unless one number is clearly best) and its criterion's curve.
        "suggested_n_clusters": suggestion["n_clusters"],
        "n_clusters_suggestion": suggestion,
        "cluster_sizes": refs["assign_labels"]["cluster_sizes"],
        # The library's stages (what is computed), then the two that read the input and
        # write the outputs around them: every stage's time, state and reused parts.
        "stages": {s: every[s] for s in sc.STAGES},
        "input_and_output_stages": {s: info for s, info in every.items()
                                    if s not in sc.STAGES},
        # The task before the stages (no checkpoint: it runs every time).
        "plan": {"seconds": round(planned["seconds"], 3), "state": planned["state"]}
        if planned else None,
        "checkpoint": {"root": job.checkpoint_url, "keys": job.stage_keys,
                       "format_version": job.format_version},
        "outputs": dict(refs["write_outputs"]["files"]),
        "flow_run_id": job.flow_run_id,
    }


#: Every stage of a summary, in the order of the run.
all_stages = report.all_stages


@task(**task_options("write_report"))
def write_report(job: Job, refs: dict[str, dict[str, Any]], states: dict[str, str],
                 planned: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes <output>/summary.json and report.html, and the run's summary artifact."""
    out = job.output
    summary = build_summary(job, refs, states, planned)
    files = summary["outputs"]
    # The pictures: a bounded sample of the embedding (report.SAMPLE_PARTS parts at most),
    # drawn here on the worker with matplotlib's Agg, inlined as PNG data URIs.
    _, U, raw = report.sample_embedding(job)
    labels = Numbering(**refs["assign_labels"]["numbering"])[raw]
    figures = report.render_figures(summary, report.cluster_plane(U, labels, seed=job.seed),
                                    labels)
    files["report"] = out.display("report.html")
    out.write_bytes("report.html", report.report_html(summary, figures).encode())
    files["summary"] = out.display("summary.json")
    out.write_bytes("summary.json", json.dumps(summary, indent=2, default=str).encode())
    create_markdown_artifact(markdown=markdown(summary, figures),
                             key="spectral-clustering-summary",
                             description="The n_clusters suggestion, the report's figures, "
                             "cluster sizes, eigenvalues and stage timings")
    return {"files": files, "cluster_sizes": summary["cluster_sizes"],
            "eigenvalues": summary["eigenvalues"], "spectrum": summary["spectrum"],
            "suggested_n_clusters": summary["suggested_n_clusters"],
            "n_clusters_suggestion": summary["n_clusters_suggestion"],
            "stages": summary["stages"],
            "input_and_output_stages": summary["input_and_output_stages"],
            "rows": job.plan.n_rows}


def markdown(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The artifact: the report's figures inline (Prefect's UI renders markdown images as
    plain ``<img>`` elements, data URIs included), then the summary's tables."""
    lines = ["# Spectral clustering", "",
             f"{summary['input']['rows']:,} rows from {summary['input']['files']} file(s); "
             f"labels in `{summary['outputs']['labels']}`, the same report as one page in "
             f"`{summary['outputs']['report']}`.", "",
             "**" + report.suggestion_sentence(summary) + "**", ""]
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
    lines += [f"| {' | '.join(row)} |" for row in report.stage_rows(summary)]
    return "\n".join(lines)
