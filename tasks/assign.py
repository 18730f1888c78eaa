"""The ``assign_labels`` stage: the clusterer, fitted on a sample of the embedding, labels every
part; the labels are numbered by first appearance in row order."""

from __future__ import annotations

from typing import Any

import numpy as np

from spectral_core import blocks

from . import faults
from .checkpoints import Part, read_part, write_part
from .embed import embed, load_fit_sample
from .job import Block
from .kernel import part_name
from .parallel import fan_out, one_blas_thread
from .stage import Done, StageRun, stage
from .storage import Store


class Numbering:
    """``numbering[raw]``: the first-appearance label of each raw label (picklable), from the
    stage's result (``numbering``)."""

    def __init__(self, table: list[int], offset: int):
        self.table, self.offset = np.asarray(table, dtype=np.int64), offset

    def __getitem__(self, raw: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(raw) - self.offset]


def _label_part(item: tuple[Block, Part], store: Store, key: str, model: Any, out: Store,
                out_key: str) -> tuple[Part, dict[int, int], np.ndarray]:
    """The clusterer's raw labels of one part, written, with each label's first row."""
    block, part = item
    faults.before_part("assign_labels")
    one_blas_thread()
    U = read_part(store, part, stage="embed", expect={"key": key})[0]["u"]
    raw = np.asarray(model.predict(U), dtype=np.int64)
    written = write_part(out, part_name(block), {"raw": raw}, stage="assign_labels",
                         key=out_key, block=block.index)
    faults.after_part("assign_labels")
    values, counts = np.unique(raw, return_counts=True)
    return written, blocks.first_rows(raw, offset=block.start), np.stack([values, counts])


@stage(after=embed,
       key=lambda k: (k.params.assign_labels, k.params.n_init, k.params.kmeans_params,
                      k.seeds.assign_labels))
def assign_labels(run: StageRun) -> Done:
    """Fits the clusterer on the embedding's fit sample (written by ``embed``), then labels
    every part.

    The parts are labelled on the workers and written as ``assign_labels/part-<block>.parquet``
    (raw labels); the first-appearance numbering is kept in the stage's manifest.
    """
    job, p, plan = run.job, run.job.estimator, run.job.plan
    source, embedded, embed_key = embed.store(job), embed.manifest(job), job.stage_keys["embed"]
    parts = embedded.parts
    seed = blocks.assignment_seed(job.seeds.assign_labels)
    sample = load_fit_sample(job, embedded)  # the rows blocks.fit_rows draws, kept by embed
    model = blocks.make_assigner(p.assign_labels, p.n_clusters, n_init=p.n_init,
                                 kmeans_params=p.kmeans_params, random_state=seed,
                                 width=sample.shape[1])
    model.fit(sample)
    del sample
    results = fan_out(_label_part, list(zip(plan.blocks, parts, strict=True)), source,
                      embed_key, model, run.store, run.key,
                      on_progress=run.progress("labelling"))
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
    return Done([part for part, _, _ in results], {
        "cluster_sizes": sizes, "n_rows": plan.n_rows,
        "numbering": {"table": mapping.table.tolist(), "offset": mapping.offset},
    }, computed=len(plan.blocks))
