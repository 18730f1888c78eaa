"""Nyström spectral clustering: a scikit-learn estimator and the stage functions behind it.

The stages, in order (the same names are used by the Prefect tasks, log lines and checkpoint
folders of the pipeline)::

    sample_landmarks -> kernel_blocks -> eigendecompose -> embed -> assign_labels

Each stage is a function of arrays returning a small frozen result; the estimator chains them.
Their block-level pieces, for running the stages one block at a time elsewhere (as the
pipeline does), are in :mod:`spectral_core.blocks`. ``spectral_core`` depends on numpy, scipy,
scikit-learn and dask only, never on Prefect.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Where each public name lives. Names are imported on first use (PEP 562), so that
#: ``import spectral_core`` costs numpy's import and little else: scikit-learn, SciPy's solvers
#: and dask load only with the stage that needs them (benchmarks/profile.md, "Import time").
_LAZY = {
    "ClusterQR": "_assign", "Discretize": "_assign", "assign_labels": "_assign",
    "EigenResult": "_eigen", "eigendecompose": "_eigen", "eigengap_n_clusters": "_eigen",
    "embedding_width": "_eigen", "spectrum_size": "_eigen",
    "embed": "_embed",
    "ConsensusKMeans": "_ensemble", "SpectralEnsemble": "_ensemble",
    "cluster_cooccurrence": "_ensemble",
    "consensus_embedding": "_ensemble",
    "NClustersSuggestion": "_suggest", "suggest_n_clusters": "_suggest",
    "STAGES": "_utils", "SpectralClustering": "_estimator", "stage_seeds": "_utils",
    "KeptKernel": "_kernel_blocks", "KernelSummary": "_kernel_blocks",
    "kernel_blocks": "_kernel_blocks",
    "AFFINITIES": "_kernels", "Kernel": "_kernels", "make_kernel": "_kernels",
    "Landmarks": "_landmarks", "sample_landmarks": "_landmarks",
    "DegenerateKernelWarning": "_messages", "DegreeClippingWarning": "_messages",
    "SolverFallbackWarning": "_messages", "ZeroEmbeddingWarning": "_messages",
}

if TYPE_CHECKING:  # for type checkers and linters; at run time see __getattr__
    from ._assign import ClusterQR, Discretize, assign_labels
    from ._eigen import (
        EigenResult,
        eigendecompose,
        eigengap_n_clusters,
        embedding_width,
        spectrum_size,
    )
    from ._embed import embed
    from ._ensemble import (
        ConsensusKMeans,
        SpectralEnsemble,
        cluster_cooccurrence,
        consensus_embedding,
    )
    from ._estimator import SpectralClustering
    from ._kernel_blocks import KeptKernel, KernelSummary, kernel_blocks
    from ._kernels import AFFINITIES, Kernel, make_kernel
    from ._landmarks import Landmarks, sample_landmarks
    from ._messages import (
        DegenerateKernelWarning,
        DegreeClippingWarning,
        SolverFallbackWarning,
        ZeroEmbeddingWarning,
    )
    from ._suggest import NClustersSuggestion, suggest_n_clusters
    from ._utils import STAGES, stage_seeds


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spectral_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AFFINITIES",
    "STAGES",
    "ClusterQR",
    "ConsensusKMeans",
    "DegenerateKernelWarning",
    "DegreeClippingWarning",
    "Discretize",
    "EigenResult",
    "KeptKernel",
    "Kernel",
    "KernelSummary",
    "Landmarks",
    "NClustersSuggestion",
    "SolverFallbackWarning",
    "SpectralClustering",
    "SpectralEnsemble",
    "ZeroEmbeddingWarning",
    "assign_labels",
    "cluster_cooccurrence",
    "consensus_embedding",
    "eigendecompose",
    "eigengap_n_clusters",
    "embed",
    "embedding_width",
    "kernel_blocks",
    "make_kernel",
    "sample_landmarks",
    "spectrum_size",
    "stage_seeds",
    "suggest_n_clusters",
]

__version__ = "0.1.0"
