"""The ``embed`` stage: the third pass over the blocks, the row-normalized embedding."""

from __future__ import annotations

import spectral_core as sc
from spectral_core import blocks

from . import faults
from .checkpoints import Part, write_part
from .dataset import read_block
from .eigen import eigendecompose, load_eigen
from .job import Block, DatasetPlan
from .kernel import load_kernel_summary, part_name
from .landmarks import load_landmarks
from .parallel import fan_out, one_blas_thread
from .stage import Done, StageRun, stage
from .storage import Store


def _embed_part(block: Block, plan: DatasetPlan, source: Store, landmarks: sc.Landmarks,
                kernel: sc.Kernel, summary: sc.KernelSummary, eigen: sc.EigenResult,
                out: Store, key: str) -> Part:
    faults.before_part("embed")
    one_blas_thread()
    U = blocks.block_embedding(read_block(plan, block, source), landmarks, kernel,
                               summary.degree_weights, summary.degree_floor, eigen.projection)
    part = write_part(out, part_name(block), {"u": U}, stage="embed", key=key,
                      block=block.index)
    faults.after_part("embed")
    return part


@stage(after=eigendecompose, key=lambda k: ())
def embed(run: StageRun) -> Done:
    """Third pass over the blocks; writes the embedding, one part per block.

    The parts are ``embed/part-<block>.parquet`` (row-normalized, n × k), then the stage's
    manifest.
    """
    job, plan = run.job, run.job.plan
    names = [part_name(b) for b in plan.blocks]
    found = run.valid_parts(names)
    todo = [b for b, name in zip(plan.blocks, names, strict=True) if name not in found]
    new = fan_out(_embed_part, todo, plan, job.input, load_landmarks(job), job.kernel(),
                  load_kernel_summary(job), load_eigen(job), run.store, run.key,
                  on_progress=run.progress("embedding", reused=len(found), total=len(names)))
    parts = {**found, **{part.name: part for part in new}}
    return Done([parts[name] for name in names], {}, computed=len(todo))
