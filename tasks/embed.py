"""The ``embed`` stage: the third pass over the blocks, the row-normalized embedding."""

from __future__ import annotations

import numpy as np

import spectral_core as sc
from spectral_core import blocks

from . import faults
from .checkpoints import Manifest, Part, read_part, write_part
from .dataset import read_block
from .eigen import eigendecompose, load_eigen
from .job import Block, DatasetPlan, Job
from .kernel import load_kernel_summary, part_name
from .landmarks import load_landmarks
from .parallel import fan_out, one_blas_thread
from .stage import Done, StageRun, stage
from .storage import Store

#: The embedding rows the clusterer is fitted on, written by ``embed`` beside its parts.
FIT_SAMPLE = "fit-sample.parquet"


def fit_sample_rows(job: Job) -> list[np.ndarray]:
    """Per block of the plan, the block's own rows (0-based) that belong to the clusterer's
    fit sample (:func:`spectral_core.blocks.fit_rows`: every row up to 100,000 rows)."""
    plan = job.plan
    rows = blocks.fit_rows(plan.n_rows, blocks.assignment_seed(job.seeds.assign_labels))
    if rows is None:
        return [np.arange(b.rows) for b in plan.blocks]
    bounds = np.searchsorted(rows, [b.start for b in plan.blocks] + [plan.n_rows])
    return [rows[lo:hi] - b.start for b, lo, hi in zip(plan.blocks, bounds[:-1], bounds[1:],
                                                     strict=True)]


def _embed_part(item: tuple[Block, np.ndarray], plan: DatasetPlan, source: Store,
                landmarks: sc.Landmarks, kernel: sc.Kernel, summary: sc.KernelSummary,
                eigen: sc.EigenResult, out: Store, key: str) -> tuple[Part, np.ndarray]:
    """One block's embedding, written; and its rows of the fit sample."""
    block, sampled = item
    faults.before_part("embed")
    one_blas_thread()
    U = blocks.block_embedding(read_block(plan, block, source), landmarks, kernel,
                               summary.degree_weights, summary.degree_floor, eigen.projection)
    part = write_part(out, part_name(block), {"u": U}, stage="embed", key=key,
                      block=block.index)
    faults.after_part("embed")
    return part, U[sampled]


def _sampled_rows(item: tuple[Part, np.ndarray], store: Store, key: str) -> np.ndarray:
    """The fit sample's rows of a part a killed run had written (read on a worker)."""
    part, sampled = item
    return read_part(store, part, stage="embed", expect={"key": key})[0]["u"][sampled]


@stage(after=eigendecompose, key=lambda k: (k.seeds.assign_labels,))
def embed(run: StageRun) -> Done:
    """Third pass over the blocks; writes the embedding, one part per block, and the rows the
    clusterer will be fitted on.

    The parts are ``embed/part-<block>.parquet`` (row-normalized, n × k). The fit sample
    (:func:`fit_sample_rows`), taken from each block as it is embedded, is
    ``embed/fit-sample.parquet``, named in the manifest's result, so that ``assign_labels``
    reads at most 100,000 rows before it fits instead of every part twice. Then the manifest.
    """
    job, plan = run.job, run.job.plan
    names = [part_name(b) for b in plan.blocks]
    sampled = fit_sample_rows(job)
    found = run.valid_parts(names)
    todo = [(b, rows) for b, name, rows in zip(plan.blocks, names, sampled, strict=True)
            if name not in found]
    new = fan_out(_embed_part, todo, plan, job.input, load_landmarks(job), job.kernel(),
                  load_kernel_summary(job), load_eigen(job), run.store, run.key,
                  on_progress=run.progress("embedding", reused=len(found), total=len(names)))
    kept = [(found[name], rows) for name, rows in zip(names, sampled, strict=True)
            if name in found and rows.size]
    rows_of = {part.name: rows for part, rows in new}
    rows_of.update(zip((part.name for part, _ in kept),
                       fan_out(_sampled_rows, kept, run.store, run.key), strict=True))
    parts = {**found, **{part.name: part for part, _ in new}}
    sample = np.concatenate([rows_of[name] for name in names if name in rows_of])
    fit_sample = write_part(run.store, FIT_SAMPLE, {"u": sample}, stage="embed", key=run.key)
    return Done([parts[name] for name in names], {"fit_sample": fit_sample.model_dump()},
                computed=len(todo))


def load_fit_sample(job: Job, manifest: Manifest) -> np.ndarray:
    """The embedding rows the clusterer is fitted on, as ``embed`` wrote them (``manifest``:
    its committed manifest, which the caller has read for the parts too)."""
    return read_part(embed.store(job), Part(**manifest.result["fit_sample"]), stage="embed",
                     expect={"key": job.stage_keys["embed"]})[0]["u"]
