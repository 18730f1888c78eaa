"""Nyström spectral clustering: a scikit-learn estimator and the stage functions behind it.

The stages, in order (the same names are used by the Prefect tasks, log lines and checkpoint
folders of the pipeline)::

    sample_landmarks -> kernel_blocks -> eigendecompose -> embed -> assign_labels

Each stage is a function of arrays returning a small frozen result; the estimator chains them.
Their block-level pieces, for running the stages one block at a time elsewhere (as the
pipeline does), are in :mod:`spectral_core.blocks`. ``spectral_core`` depends on numpy, scipy,
scikit-learn and dask only, never on Prefect.
"""

from ._assign import ClusterQR, Discretize, assign_labels
from ._eigen import (
    EigenResult,
    eigendecompose,
    eigengap_n_clusters,
    embedding_width,
    spectrum_size,
)
from ._embed import embed
from ._estimator import STAGES, SpectralClustering, stage_seeds
from ._kernel_blocks import KeptKernel, KernelSummary, kernel_blocks
from ._kernels import AFFINITIES, Kernel, make_kernel
from ._landmarks import Landmarks, sample_landmarks
from ._messages import (
    DegenerateKernelWarning,
    DegreeClippingWarning,
    SolverFallbackWarning,
    ZeroEmbeddingWarning,
)

__all__ = [
    "AFFINITIES",
    "STAGES",
    "ClusterQR",
    "DegenerateKernelWarning",
    "DegreeClippingWarning",
    "Discretize",
    "EigenResult",
    "KeptKernel",
    "Kernel",
    "KernelSummary",
    "Landmarks",
    "SolverFallbackWarning",
    "SpectralClustering",
    "ZeroEmbeddingWarning",
    "assign_labels",
    "eigendecompose",
    "eigengap_n_clusters",
    "embed",
    "embedding_width",
    "kernel_blocks",
    "make_kernel",
    "sample_landmarks",
    "spectrum_size",
    "stage_seeds",
]

__version__ = "0.1.0"
