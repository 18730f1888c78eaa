"""Warnings and the messages that explain a degenerate kernel, with what to change."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._kernels import Kernel
    from ._landmarks import Landmarks


class DegreeClippingWarning(UserWarning):
    """Some approximate degrees were ≤ 0 (or tiny) and were clipped to a positive floor."""


class DegenerateKernelWarning(UserWarning):
    """The landmark kernel is (nearly) the identity or (nearly) all ones."""


class ZeroEmbeddingWarning(UserWarning):
    """Some rows have an all-zero spectral embedding (no affinity to any landmark)."""


class SolverFallbackWarning(UserWarning):
    """The requested eigensolver cannot handle the problem; dense LAPACK is used instead."""


def import_pyamg():
    """pyamg, or an ImportError that says how to install it."""
    try:
        import pyamg
    except ImportError as exc:
        raise ImportError(
            "eigen_solver='amg' needs pyamg, which is not installed. Install the 'amg' extra: "
            "pip install 'spectral-pipeline[amg]'."
        ) from exc
    return pyamg


def overflow_message(kernel: Kernel, where: str) -> str:
    return (
        f"The affinity {kernel.name!r} with parameters {dict(kernel.params)!r} gives non-finite "
        f"values on {where} (overflow?). Use a smaller 'gamma' or 'degree', or scale X."
    )


def check_rank(r: int, min_rank: int, kernel: Kernel, lam: np.ndarray) -> None:
    if r < min_rank:
        raise ValueError(
            f"The landmark affinity ({kernel.name!r}) has only {r} numerically positive "
            f"eigenvalues (largest: {np.round(lam[:3], 6).tolist()}), fewer than "
            f"n_clusters={min_rank}. Use more distinct landmarks (n_components), another "
            "'gamma', or another affinity."
        )


def clipping_advice(kernel: Kernel) -> str:
    if kernel.name in ("rbf", "laplacian", "chi2"):
        return "The kernel is too narrow for these rows (outliers?): try a smaller 'gamma'."
    if kernel.name in ("linear", "sigmoid", "poly", "polynomial", "cosine"):
        return (
            f"The {kernel.name!r} affinity can be negative, so degrees can be too: prefer a "
            "non-negative affinity such as 'rbf' or 'nearest_neighbors'."
        )
    return "Check that the affinity is non-negative."


def warn_if_degenerate(W: np.ndarray, kernel: Kernel, landmarks: Landmarks) -> None:
    """Warn when W ≈ I (kernel too narrow) or W ≈ all ones (too wide), suggesting a gamma."""
    if kernel.name not in ("rbf", "laplacian") or W.shape[0] < 2:
        return
    off = W[~np.eye(W.shape[0], dtype=bool)]
    if off.max() < 1e-3:
        problem = "nearly the identity: every landmark is unrelated to every other"
    elif off.min() > 0.999:
        problem = "nearly all ones: every landmark looks like every other"
    else:
        return
    warnings.warn(
        f"The {kernel.name!r} kernel with gamma={kernel.params.get('gamma')!r} is {problem}, so "
        f"the clustering carries no information. {gamma_hint(kernel, landmarks)}",
        DegenerateKernelWarning,
        stacklevel=3,
    )


def gamma_hint(kernel: Kernel, landmarks: Landmarks) -> str:
    """'Try gamma ≈ 1 / median landmark distance' (squared for rbf, L1 for laplacian)."""
    if kernel.name not in ("rbf", "laplacian") or landmarks.points.shape[0] < 2:
        return "Use a smaller 'gamma' or scale X."
    P = landmarks.points.astype(np.float64)
    if kernel.name == "rbf":
        dist = ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)
    else:
        dist = np.abs(P[:, None, :] - P[None, :, :]).sum(-1)
    med = np.median(dist[~np.eye(P.shape[0], dtype=bool)])
    if med <= 0:
        return "The landmarks are identical: the data has too few distinct rows."
    return f"Try gamma ≈ {1.0 / med:.3g} (1 / median landmark distance)."
