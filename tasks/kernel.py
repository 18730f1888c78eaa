"""The ``kernel_blocks`` stage: two passes over the blocks (degrees, then the Gram)."""

from __future__ import annotations

import numpy as np

import spectral_core as sc
from spectral_core import blocks

from . import faults
from .checkpoints import CorruptCheckpoint, Part, read_part, write_part
from .dataset import read_block
from .job import Block, DatasetPlan, Job
from .landmarks import load_landmarks, sample_landmarks
from .parallel import fan_in, fan_out, one_blas_thread
from .stage import Done, StageRun, stage
from .storage import Store

#: Blocks whose Gram partials are summed on a worker into one checkpoint. r × r float64 per
#: block would be 2 MB each at r = 500 (2 GB for 1,000 blocks); summed 16 at a time it is 1/16
#: of that, and a crash in pass 2 loses at most one group's work per worker.
GRAM_GROUP = 16


def part_name(block: Block) -> str:
    """The name of a block's part in a stage's folder (``part-000012.parquet``)."""
    return f"part-{block.index:06d}.parquet"


def _column_sums_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
                      kernel: sc.Kernel, out: Store, key: str) -> tuple[Part, np.ndarray]:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    s = blocks.block_column_sums(read_block(plan, block, source), landmarks, kernel)
    part = write_part(out, f"pass1/{part_name(block)}", {"s": s}, stage="kernel_blocks",
                      key=key, block=block.index)
    faults.after_part("kernel_blocks")
    return part, s


def _gram_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
               kernel: sc.Kernel, weights: blocks.DegreeWeights
               ) -> tuple[np.ndarray, np.ndarray]:
    faults.before_part("kernel_blocks")
    one_blas_thread()
    return blocks.block_gram(read_block(plan, block, source), landmarks, kernel,
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


class _GroupWriter:
    """``combine`` for :func:`fan_in`: writes group ``ids[g]``'s summed Gram on the worker."""

    __name__ = "_gram_group"

    def __init__(self, out: Store, key: str, ids: list[int]):
        self.out, self.key, self.ids = out, key, ids

    def __call__(self, g: int, *partials):
        return _gram_group(self.ids[g], *partials, out=self.out, key=self.key)


def gram_groups(plan: DatasetPlan) -> list[list[Block]]:
    """The blocks in groups of :data:`GRAM_GROUP`, one pass-2 checkpoint each."""
    return [plan.blocks[i:i + GRAM_GROUP] for i in range(0, len(plan.blocks), GRAM_GROUP)]


def _readable(run: StageRun, found: dict[str, Part], name: str):
    """A valid-looking part's arrays and metadata, or None if its pages are corrupt (it is
    then recomputed)."""
    try:
        return read_part(run.store, found[name], stage=run.name)
    except CorruptCheckpoint as exc:
        run.log.warning("%s", exc)
        return None


@stage(after=sample_landmarks,
       key=lambda k: ({name: getattr(k.params, name) for name in (
           "affinity", "gamma", "degree", "coef0", "kernel_params", "n_neighbors")},))
def kernel_blocks(run: StageRun) -> Done:
    """Two passes over the blocks; writes pass-1 parts, weights, pass-2 groups, the Gram.

    Each block is one Dask task calling :mod:`spectral_core.blocks`; a stage that died part
    way resumes from the parts it wrote.
    """
    job, out, key = run.job, run.store, run.key
    p, plan, dtype = job.estimator, job.plan, np.dtype(job.dtype)
    landmarks, kernel = load_landmarks(job), job.kernel()
    prepared = blocks.prepare_landmark_kernel(landmarks, kernel, dtype=dtype,
                                              min_rank=p.n_clusters)
    # Pass 1: s = Σ_b Cᵀ1 over the blocks (parts found valid are read, not recomputed).
    names = [f"pass1/{part_name(b)}" for b in plan.blocks]
    found = run.valid_parts(names)
    sums: dict[int, np.ndarray] = {}
    parts: dict[str, Part] = {}
    for b, name in zip(plan.blocks, names, strict=True):
        if name in found and (read := _readable(run, found, name)) is not None:
            sums[b.index], parts[name] = read[0]["s"], found[name]
    todo = [b for b in plan.blocks if b.index not in sums]
    new = fan_out(_column_sums_part, todo, plan, job.input, landmarks, kernel, out, key,
                  on_progress=run.progress("pass 1 (column sums)",
                                           reused=len(plan.blocks) - len(todo),
                                           total=len(plan.blocks)))
    computed = len(todo)
    for b, (part, s) in zip(todo, new, strict=True):
        sums[b.index], parts[part.name] = s, part
    s = blocks.sum_in_order([sums[b.index] for b in plan.blocks])
    weights = blocks.degree_weights(s, prepared, kernel, n_samples=plan.n_rows, dtype=dtype,
                                    min_rank=p.n_clusters)
    parts["weights.parquet"] = run.write(
        "weights.parquet", {"S": weights.normalizer, "t": weights.degree_weights, "s": s,
                            "lam": weights.landmark_eigenvalues},
        diagonal=weights.diagonal, floor=weights.degree_floor)
    # Pass 2: G = Σ F̃ᵀF̃, summed per group of blocks on the workers.
    groups = gram_groups(plan)
    gnames = [f"pass2/group-{g:04d}.parquet" for g in range(len(groups))]
    found = run.valid_parts(gnames)
    totals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for g, name in enumerate(gnames):
        if name in found and (read := _readable(run, found, name)) is not None:
            totals[g], parts[name] = (read[0]["gram"], np.asarray(read[1]["stats"])), \
                found[name]
    missing = [g for g in range(len(groups)) if g not in totals]
    new = fan_in(_gram_part, [groups[g] for g in missing], _GroupWriter(out, key, missing),
                 plan, job.input, landmarks, kernel, weights,
                 on_progress=run.progress("pass 2 (Gram)", reused=len(groups) - len(missing),
                                          total=len(groups)))
    computed += sum(len(groups[g]) for g in missing)
    for g, (part, gram, stats) in zip(missing, new, strict=True):
        totals[g], parts[part.name] = (gram, stats), part
    summary = blocks.summarize_kernel_blocks(
        weights, [totals[g][0] for g in range(len(groups))],
        [totals[g][1] for g in range(len(groups))], kernel, n_samples=plan.n_rows)
    parts["gram.parquet"] = run.write(
        "gram.parquet", {"G": summary.gram}, n_clipped=summary.n_clipped,
        degree_min=summary.degree_min, degree_max=summary.degree_max,
        degree_mean=summary.degree_mean)
    return Done(list(parts.values()), {
        "rank": summary.rank, "n_clipped": summary.n_clipped,
        "degree_min": summary.degree_min, "degree_mean": summary.degree_mean,
        # Each pass's parts as its progress lines count them (pass 2 counts groups of blocks).
        "passes": {"pass 1 (column sums)": [len(todo), len(plan.blocks)],
                   "pass 2 (Gram)": [len(missing), len(groups)]},
    }, computed=computed, work=2 * len(plan.blocks))


def load_kernel_summary(job: Job) -> sc.KernelSummary:
    """The committed kernel_blocks stage's summary (weights, Gram, degrees), read back."""
    out, name = kernel_blocks.store(job), kernel_blocks.name
    expect = {"key": job.stage_keys[name]}
    wa, wm = read_part(out, "weights.parquet", stage=name, expect=expect)
    ga, gm = read_part(out, "gram.parquet", stage=name, expect=expect)
    return sc.KernelSummary(
        column_sums=wa["s"], normalizer=wa["S"], diagonal=wm["diagonal"],
        degree_weights=wa["t"], degree_floor=wm["floor"], gram=ga["G"],
        landmark_eigenvalues=wa["lam"], n_samples=job.plan.n_rows,
        n_clipped=gm["n_clipped"], degree_min=gm["degree_min"], degree_max=gm["degree_max"],
        degree_mean=gm["degree_mean"],
    )
