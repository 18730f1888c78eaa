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

    assign   seed = assignment_seed(random_state); rows = fit_rows(n, seed)
             model = make_assigner(...).fit(U[rows])                   a sample, not all rows
             raw_b = model.predict(U_b); first = merge of first_rows(raw_b, offset=start_b)
             labels_b = order_by_first_row(first)[raw_b]              numbered by first row

Partials are combined with :func:`sum_in_order` (float64, in block order). The Prefect pipeline
(``tasks/stages.py``) is written this way, and its labels equal the estimator's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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

#: The label assignment's pieces load scikit-learn: imported on first use (PEP 562), so that
#: the pipeline's pre-flight checks, which need only ``compute_dtype``, do not pay for it.
_LAZY = ("assignment_seed", "first_rows", "fit_rows", "kmeans_n_init", "make_assigner",
         "order_by_first_row")

if TYPE_CHECKING:
    from ._assign import (
        assignment_seed,
        first_rows,
        fit_rows,
        kmeans_n_init,
        make_assigner,
        order_by_first_row,
    )


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'spectral_core.blocks' has no attribute {name!r}")
    value = getattr(importlib.import_module("._assign", __package__), name)
    globals()[name] = value
    return value


__all__ = [
    "DegreeWeights",
    "assignment_seed",
    "block_column_sums",
    "block_embedding",
    "block_gram",
    "compute_dtype",
    "degree_weights",
    "embed_rows",
    "first_rows",
    "fit_rows",
    "kmeans_n_init",
    "make_assigner",
    "order_by_first_row",
    "prepare_landmark_kernel",
    "sum_in_order",
    "summarize_kernel_blocks",
]
