"""The ``write_outputs`` stage: ``<output>/labels/`` (and ``embedding/``) as Parquet datasets.

Written part by part on the workers. Its folder is the output directory and its manifest is
``labels/_SUCCESS.json``, the labels dataset's own (Parquet readers skip it), listing the
parts of ``labels/`` and ``embedding/``; it is keyed by the labels' key, the output location
and whether the embedding is kept, so a rerun into the same output is ``Cached``.
"""

from __future__ import annotations

from typing import Any

from . import faults
from .assign import Numbering, assign_labels
from .checkpoints import MANIFEST, Part, read_part, write_part
from .dataset import block_ids
from .embed import embed
from .job import Block, DatasetPlan
from .kernel import part_name
from .parallel import fan_out, one_blas_thread
from .stage import Done, StageRun, stage
from .storage import Store


def _output_part(item: tuple[Block, Part, Part | None], plan: DatasetPlan, source: Store,
                 raw_store: Store, raw_key: str, numbering: Numbering, id_name: str,
                 labels: Store, embed_store: Store | None, embed_key: str,
                 embedding: Store | None, key: str) -> tuple[Part, Part | None]:
    """One block's (id, label) rows, and its (id, u_0 ... u_k-1) rows if asked."""
    block, raw_part, embed_part = item
    one_blas_thread()
    raw = read_part(raw_store, raw_part, stage="assign_labels", expect={"key": raw_key})[0]
    ids = block_ids(plan, block, source)
    name = part_name(block)
    written = write_part(labels, name, {id_name: ids, "label": numbering[raw["raw"]]},
                         stage="write_outputs", key=key, block=block.index)
    extra = None
    if embedding is not None and embed_part is not None:
        U = read_part(embed_store, embed_part, stage="embed", expect={"key": embed_key})[0]["u"]
        extra = write_part(embedding, name, {id_name: ids, **{f"u_{j}": U[:, j]
                                                               for j in range(U.shape[1])}},
                           stage="write_outputs", key=key, block=block.index)
    faults.after_part("write_outputs")
    return written, extra


def _replace_dataset(store: Store, keep: set[str]) -> None:
    """Before writing a dataset again: no part the new one will not list, so that parts of an
    earlier run on another input cannot join ``pd.read_parquet(<output>/labels)`` (and no
    manifest of an earlier layout)."""
    for name in store.names():
        if (name.startswith("part-") and name not in keep) or name == MANIFEST:
            store.remove(name)


def _within(folder: str, part: Part) -> Part:
    return Part(name=f"{folder}/{part.name}", size=part.size, rows=part.rows)


@stage(after=assign_labels, key=lambda k: (k.output_url, k.params.persist_embedding),
       where=lambda job: job.output, manifest_name=f"labels/{MANIFEST}")
def write_outputs(run: StageRun) -> Done:
    """Writes <output>/labels/ (and embedding/) part by part on the workers."""
    job, plan = run.job, run.job.plan
    labels = run.store.child("labels")
    embedding = run.store.child("embedding") if job.estimator.persist_embedding else None
    labels.remove(MANIFEST)  # another key's: these outputs are being replaced
    names = {part_name(b) for b in plan.blocks}
    _replace_dataset(labels, names)
    if embedding is not None:
        _replace_dataset(embedding, names)
    raw = assign_labels.manifest(job)
    embed_list = embed.manifest(job).parts if embedding is not None else [None] * len(names)
    written = fan_out(_output_part, list(zip(plan.blocks, raw.parts, embed_list, strict=True)),
                      plan, job.input, assign_labels.store(job), raw.key,
                      Numbering(**raw.result["numbering"]), plan.id_column or "row", labels,
                      embed.store(job), job.stage_keys["embed"], embedding, run.key)
    parts = [_within("labels", w) for w, _ in written]
    files: dict[str, Any] = {"labels": labels.display()}
    if embedding is not None:
        parts += [_within("embedding", e) for _, e in written]
        files["embedding"] = embedding.display()
    return Done(parts, {"rows": plan.n_rows, "files": files}, computed=len(plan.blocks),
                work=len(plan.blocks))
