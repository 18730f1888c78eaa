"""What a run is, as one typed value the tasks share: the plan, the stores, the keys, the seeds.

:class:`Job` is made once, by the ``plan`` task, from the run's parameters and the input's
footers; every stage task receives it and reads only the fields it needs. It is frozen and
JSON-able (Prefect shows it as the tasks' input), and it carries no secret: stores are named by
URL, and credentials come from each process's environment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

import spectral_core as sc

from .storage import Store

STAGES = sc.STAGES


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Block(_Frozen):
    """One unit of block work: consecutive row groups of one file, at a global row offset."""

    index: int
    file: int  #: index into :attr:`DatasetPlan.files`
    row_groups: list[int]
    start: int
    rows: int


class InputFile(_Frozen):
    """One input file as the plan saw it (its version tags the fingerprint)."""

    path: str  #: as the input's filesystem names it
    size: int
    version: str | None  #: ETag or version (object stores), "mtime_ns:inode" (local disk)
    rows: int
    content: str  #: what identifies the bytes: a hash (local disk) or size and ETag


class DatasetPlan(_Frozen):
    """Where the rows are: files, columns, blocks, and a fingerprint of the exact bytes."""

    input_url: str
    files: list[InputFile]
    features: list[str]
    id_column: str | None
    blocks: list[Block]
    n_rows: int
    fingerprint: str

    @property
    def n_features(self) -> int:
        return len(self.features)

    def path(self, block: Block) -> str:
        return self.files[block.file].path


class StageKeys(_Frozen):
    """Each stage's checkpoint key: a hash of what its result depends on."""

    sample_landmarks: str
    kernel_blocks: str
    eigendecompose: str
    embed: str
    assign_labels: str

    def __getitem__(self, stage: str) -> str:
        return getattr(self, stage)


class StageSeeds(_Frozen):
    sample_landmarks: int
    eigendecompose: int
    assign_labels: int


class Job(_Frozen):
    """One run of the pipeline, planned."""

    estimator: dict[str, Any]  #: SpectralClustering's parameters, validated
    plan: DatasetPlan
    checkpoint_url: str
    output_url: str
    storage_options: dict[str, Any]
    dtype: Literal["float32", "float64"]
    random_state: int | None  #: as given
    seed: int  #: the one used (derived from the fingerprint when random_state is None)
    seeds: StageSeeds
    stage_keys: StageKeys
    format_version: int
    flow_run_id: str | None = None

    # ---- where things are -------------------------------------------------------------------
    def _store(self, url: str) -> Store:
        return Store(url, tuple(sorted(self.storage_options.items())))

    @property
    def input(self) -> Store:
        return self._store(self.plan.input_url)

    @property
    def checkpoints(self) -> Store:
        return self._store(self.checkpoint_url)

    @property
    def output(self) -> Store:
        return self._store(self.output_url)

    def stage_store(self, stage: str) -> Store:
        """``<checkpoint_dir>/<key>/<stage>/``."""
        return self.checkpoints.child(self.stage_keys[stage], stage)

    # ---- what to compute --------------------------------------------------------------------
    def kernel(self) -> sc.Kernel:
        p = self.estimator
        return sc.make_kernel(p["affinity"], gamma=p["gamma"], degree=p["degree"],
                              coef0=p["coef0"], kernel_params=p["kernel_params"],
                              n_neighbors=p["n_neighbors"])
