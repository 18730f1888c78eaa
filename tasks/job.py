"""What a run is, as one typed value the tasks share: the plan, the stores, the keys, the seeds.

:class:`Job` is made once, by the ``plan`` task, from the run's parameters and the input's
footers; every stage task receives it and reads only the fields it needs. It is frozen and
JSON-able (Prefect shows it as the tasks' input), and it carries no secret: stores are named by
URL, and credentials come from each process's environment.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, create_model

import spectral_core as sc
from spectral_core.params import PARAMETERS, Param

from .storage import Store, open_store


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
    dtype: Literal["float32", "float64"]  #: of every block read: float32 if every feature is
    blocks: list[Block]
    n_rows: int
    fingerprint: str

    @property
    def n_features(self) -> int:
        return len(self.features)

    def path(self, block: Block) -> str:
        return self.files[block.file].path


class StageSeeds(_Frozen):
    sample_landmarks: int
    eigendecompose: int
    assign_labels: int


def _clean_type(spec: Param) -> Any:
    """The type of a parameter's validated, JSON-able value (the flow takes no callable
    affinity, clusterer instance or RandomState)."""
    kinds = {"int": int, "real": float, "bool": bool, "dict": dict[str, Any], "none": None}
    options = [Literal[spec.choices]] if "str" in spec.kinds else []
    options += [kinds[k] for k in ("int", "real", "bool", "dict", "none") if k in spec.kinds]
    return options[0] if len(options) == 1 else Union[tuple(options)]  # noqa: UP007


#: ``SpectralClustering``'s parameters as validated for a run (``validate_params``'s clean
#: values, ``n_jobs`` aside: parallelism is the cluster's), one typed field per parameter of
#: ``spectral_core.params.PARAMETERS``.
EstimatorParams = create_model(
    "EstimatorParams", __base__=_Frozen, __module__=__name__,
    __doc__="The estimator's parameters of one run, validated (typed fields, from the "
            "library's parameter table).",
    **{name: (_clean_type(spec), ...) for name, spec in PARAMETERS.items() if name != "n_jobs"},
)


class RunRequest(_Frozen):
    """What a run is asked to do, its parameters already validated (by the flow's parameter
    model): where it reads and writes, how it cuts the work, and the estimator's clean
    parameters. :func:`~spectral_pipeline.tasks.preflight.build_job` checks it against the
    data and plans it."""

    input: str
    output_dir: str
    checkpoint_dir: str | None
    feature_columns: list[str] | None
    id_column: str | None
    block_size: int
    storage_options: dict[str, Any] | None
    estimator: EstimatorParams


class Job(_Frozen):
    """One run of the pipeline, planned."""

    estimator: EstimatorParams  #: SpectralClustering's parameters, validated
    plan: DatasetPlan
    checkpoint_url: str
    output_url: str
    storage_options: dict[str, Any]
    random_state: int | None  #: as given
    seed: int  #: the one used (derived from the fingerprint when random_state is None)
    seeds: StageSeeds
    stage_keys: dict[str, str]  #: every stage's checkpoint key, in the order of the run
    format_version: int
    flow_run_id: str | None = None

    # ---- where things are -------------------------------------------------------------------
    @property
    def input(self) -> Store:
        return open_store(self.plan.input_url, self.storage_options)

    @property
    def checkpoints(self) -> Store:
        return open_store(self.checkpoint_url, self.storage_options)

    @property
    def output(self) -> Store:
        return open_store(self.output_url, self.storage_options)

    @property
    def dtype(self) -> str:
        return self.plan.dtype

    # ---- what to compute --------------------------------------------------------------------
    def kernel(self) -> sc.Kernel:
        p = self.estimator
        return sc.make_kernel(p.affinity, gamma=p.gamma, degree=p.degree, coef0=p.coef0,
                              kernel_params=p.kernel_params, n_neighbors=p.n_neighbors)
