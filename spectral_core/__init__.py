"""Nyström spectral clustering: a scikit-learn estimator and the stage functions behind it.

The stages, in order (the same names are used by the Prefect tasks, log lines and checkpoint
folders of the pipeline)::

    sample_landmarks -> kernel_blocks -> eigendecompose -> embed -> assign_labels

``spectral_core`` depends on numpy, scipy, scikit-learn and dask only, never on Prefect.
"""

from ._assign import ClusterQR, Discretize, assign_labels, make_assigner
from ._estimator import STAGES, SpectralClustering, compute_context, stage_seeds
from ._kernels import AFFINITIES, KERNEL_AFFINITIES, Kernel, make_kernel
from ._stages import (
    DegreeWeights,
    EigenResult,
    KernelSummary,
    Landmarks,
    block_column_sums,
    block_embedding,
    block_gram,
    degree_weights,
    eigendecompose,
    embed,
    embed_rows,
    kernel_blocks,
    landmark_normalizer,
    prepare_landmark_kernel,
    sample_landmarks,
    summarize_kernel_blocks,
)
from ._utils import (
    DegenerateKernelWarning,
    DegreeClippingWarning,
    ZeroEmbeddingWarning,
    stage_timer,
)

__all__ = [
    "AFFINITIES",
    "KERNEL_AFFINITIES",
    "STAGES",
    "ClusterQR",
    "DegenerateKernelWarning",
    "DegreeClippingWarning",
    "DegreeWeights",
    "Discretize",
    "EigenResult",
    "Kernel",
    "KernelSummary",
    "Landmarks",
    "SpectralClustering",
    "ZeroEmbeddingWarning",
    "assign_labels",
    "block_column_sums",
    "block_embedding",
    "block_gram",
    "compute_context",
    "degree_weights",
    "eigendecompose",
    "embed",
    "embed_rows",
    "kernel_blocks",
    "landmark_normalizer",
    "make_assigner",
    "make_kernel",
    "prepare_landmark_kernel",
    "sample_landmarks",
    "stage_seeds",
    "stage_timer",
    "summarize_kernel_blocks",
]

__version__ = "0.1.0"
