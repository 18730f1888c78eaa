"""The flow's parameters: one pydantic model, rendered by the Prefect UI as a validated form.

Estimator parameters keep the names and defaults of ``spectral_core.SpectralClustering``
(itself dask-ml's signature); bounds and enumerations let the server reject a bad parameter
before a run starts.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Affinity = Literal[
    "rbf", "nearest_neighbors", "laplacian", "cosine", "linear", "poly", "polynomial",
    "sigmoid", "chi2", "additive_chi2", "precomputed",
]


class DaskOptions(BaseModel):
    """Where the tasks run: a local Dask cluster (default) or an existing scheduler."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786. "
        "Empty: start a local cluster for the run.")
    n_workers: int = Field(1, ge=1, le=256, description="Local cluster: worker count.")
    threads_per_worker: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=256,
        description="Local cluster: threads per worker.")
    processes: bool = Field(
        False, description="Local cluster: workers as separate processes (needs a Prefect "
        "server; the CLI starts a temporary one when none is configured).")


class SpectralParams(BaseModel):
    """Parameters of one spectral-clustering run."""

    model_config = ConfigDict(extra="forbid")

    # ---- data -------------------------------------------------------------------------------
    input: str = Field(..., description="A Parquet file, a directory of Parquet files, or a "
                       "glob such as data/*.parquet.")
    output_dir: str = Field("spectral-output", description="Where labels.parquet, "
                            "embedding.parquet and summary.json are written.")
    checkpoint_dir: str | None = Field(
        None, description="Checkpoint root (default: <output_dir>/checkpoints). Reruns with "
        "the same input and parameters resume from it.")
    feature_columns: list[str] | None = Field(
        None, description="Feature columns; default: every numeric column except the id.")
    id_column: str | None = Field(None, description="Column copied to labels.parquet as the "
                                  "row id; default: the row number, as 'row'.")
    block_size: int = Field(65_536, ge=1, description="Rows per block of work (consecutive "
                            "Parquet row groups are grouped up to this many rows).")
    # ---- estimator (names and defaults of SpectralClustering) -------------------------------
    n_clusters: int = Field(8, ge=1, description="Number of clusters (≤ n_components).")
    eigen_solver: Literal["arpack", "lobpcg", "amg"] | None = Field(
        None, description="Solver for the small eigenproblem; empty for dense LAPACK.")
    random_state: int | None = Field(
        None, ge=0, description="Seed. Empty: a seed derived from the input's fingerprint, "
        "so reruns on the same data resume and agree.")
    n_init: int | Literal["auto"] = Field("auto", description="KMeans initialisations.")
    gamma: float = Field(1.0, gt=0, description="Kernel coefficient (not used by "
                         "nearest_neighbors).")
    affinity: Affinity = Field("rbf", description="Kernel, or 'nearest_neighbors' for the "
                               "landmark graph (recommended).")
    n_neighbors: int = Field(10, ge=1, description="Landmarks per sample for "
                             "nearest_neighbors.")
    eigen_tol: float = Field(0.0, ge=0, description="Tolerance of iterative eigensolvers; 0: "
                             "the solver's default.")
    assign_labels: Literal["kmeans", "sklearn-kmeans", "discretize", "cluster_qr"] = Field(
        "kmeans", description="How the embedding becomes labels.")
    degree: float = Field(3, ge=0, description="Degree of the poly kernel.")
    coef0: float = Field(1, description="Zero coefficient of the poly and sigmoid kernels.")
    kernel_params: dict[str, Any] | None = Field(None, description="Extra kernel keywords.")
    n_jobs: int | None = Field(1, description="Kept for parity with the estimator; in the "
                               "flow, parallelism is the Dask cluster's.")
    n_components: int = Field(100, ge=1, description="Number of landmarks.")
    persist_embedding: bool = Field(False, description="Also write embedding.parquet.")
    kmeans_params: dict[str, Any] | None = Field(None, description="Extra KMeans parameters.")
    landmarks: Literal["random", "kmeans"] = Field("random", description="Landmark choice.")
    # ---- execution --------------------------------------------------------------------------
    dask: DaskOptions = Field(default_factory=DaskOptions, description="Dask cluster options.")

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs_nonzero(cls, v: int | None) -> int | None:
        if v == 0:
            raise ValueError("n_jobs must be != 0 (-1 for all cores) or None")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SpectralParams:
        if self.n_clusters > self.n_components:
            raise ValueError(f"n_clusters={self.n_clusters} must be ≤ n_components="
                             f"{self.n_components}")
        if self.affinity == "nearest_neighbors" and self.n_neighbors > self.n_components:
            raise ValueError(f"n_neighbors={self.n_neighbors} must be ≤ n_components="
                             f"{self.n_components}")
        if self.landmarks == "kmeans" and self.affinity == "precomputed":
            raise ValueError("landmarks='kmeans' cannot be used with affinity='precomputed'")
        return self

    def estimator_params(self) -> dict[str, Any]:
        """The keyword arguments of the equivalent ``SpectralClustering``."""
        from spectral_core import SpectralClustering

        return {n: getattr(self, n) for n in SpectralClustering._get_param_names()}
