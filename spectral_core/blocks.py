"""The stages one row block at a time, for pipelines that schedule and checkpoint the blocks.

:func:`~spectral_core.kernel_blocks` and :func:`~spectral_core.embed` are, per block::

    pass 1   s_b = block_column_sums(X_b, L, κ)                       (m,)
             prepared = prepare_landmark_kernel(L, κ, ...)            before pass 1
             w = degree_weights(Σ_b s_b, prepared, κ, ...)            between the passes
    pass 2   G_b, stats_b = block_gram(X_b, L, κ, w.degree_weights, w.degree_floor,
                                       w.normalizer, w.diagonal)       (r, r), (4,)
             summary = summarize_kernel_blocks(w, [G_b], [stats_b], κ, ...)
    pass 3   U_b = block_embedding(X_b, L, κ, summary.degree_weights,
                                   summary.degree_floor, eigen.projection)  (rows, k)

Partials are combined with :func:`sum_in_order` (float64, in block order), so any execution of
the blocks gives the estimator's result bit for bit. The Prefect pipeline (``tasks/stages.py``)
is written this way.
"""

from ._blocks import sum_in_order
from ._embed import block_embedding, embed_rows
from ._kernel_blocks import (
    DegreeWeights,
    block_column_sums,
    block_gram,
    degree_weights,
    prepare_landmark_kernel,
    summarize_kernel_blocks,
)
from ._kernels import compute_dtype

__all__ = [
    "DegreeWeights",
    "block_column_sums",
    "block_embedding",
    "block_gram",
    "compute_dtype",
    "degree_weights",
    "embed_rows",
    "prepare_landmark_kernel",
    "sum_in_order",
    "summarize_kernel_blocks",
]
