"""The ``sample_landmarks`` stage: the m landmark rows, drawn from the planned dataset."""

from __future__ import annotations

import numpy as np

import spectral_core as sc

from . import faults
from .checkpoints import read_part
from .dataset import read_block
from .job import DatasetPlan, Job
from .stage import Done, StageRun, stage
from .storage import Store
from .validate import validate_input


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
            out[sel] = read_block(self.plan, block, self.store)[indices[sel] - block.start]
        return out


@stage(after=validate_input,
       key=lambda k: (k.plan.features, k.plan.dtype, k.params.n_components, k.params.landmarks,
                      k.params.affinity == "precomputed", k.seeds.sample_landmarks))
def sample_landmarks(run: StageRun) -> Done:
    """Reads the sampled rows; writes sample_landmarks/landmarks.parquet.

    The library's :func:`spectral_core.sample_landmarks` on the rows it draws.
    """
    job, p = run.job, run.job.estimator
    lm = sc.sample_landmarks(
        ParquetRows(job.plan, np.dtype(job.dtype), job.input), p.n_components,
        method=p.landmarks, precomputed=p.affinity == "precomputed",
        random_state=job.seeds.sample_landmarks,
    )
    indices = lm.indices if lm.indices is not None else np.full(lm.n_landmarks, -1)
    part = run.write("landmarks.parquet", {"points": lm.points, "index": indices.astype(np.int64)})
    faults.after_part(run.name)
    return Done([part], {"n_landmarks": lm.n_landmarks}, computed=1)


def load_landmarks(job: Job) -> sc.Landmarks:
    """The committed sample_landmarks stage's landmarks, read back."""
    arrays, _ = read_part(sample_landmarks.store(job), "landmarks.parquet",
                          stage=sample_landmarks.name,
                          expect={"stage": sample_landmarks.name,
                                  "key": job.stage_keys[sample_landmarks.name]})
    idx = arrays["index"]
    return sc.Landmarks(points=np.ascontiguousarray(arrays["points"], dtype=np.dtype(job.dtype)),
                        indices=None if (idx < 0).any() else idx)
