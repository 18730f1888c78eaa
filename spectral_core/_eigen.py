"""Stage ``eigendecompose``: the small r × r eigenproblem of G and the projection P."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from ._kernel_blocks import KernelSummary
from ._messages import SolverFallbackWarning, import_pyamg
from ._utils import check_random_state

#: Eigenvectors the embedding keeps beyond ``n_clusters`` for the landmark k-NN graph
#: (see :func:`embedding_width`).
GRAPH_EXTRA_EIGENVECTORS = 2


def embedding_width(affinity: str, n_clusters: int, rank: int) -> int:
    """Columns of the embedding: the top eigenvectors of Â = D^{-1/2} K̂ D^{-1/2} it keeps.

    For the landmark k-NN graph (``'nearest_neighbors'``) the top ``n_clusters + 2``: the top
    eigenvector (eigenvalue 1, ∝ D^{1/2}1, the same for every row after the degree scaling)
    carries no cluster information, and the next ``n_clusters + 1`` carry more than the next
    ``n_clusters - 1`` (MNIST-70k ARI 0.60 → 0.67 with 10 KMeans starts; benchmarks/
    accuracy.md). The top one is kept rather than dropped: on a graph with disconnected
    parts the eigenvalue 1 is repeated, and dropping one vector of that eigenspace loses a
    cluster (two moons: ARI 1.0 → 0.3). For the kernel affinities the wider embedding
    measured no gain, so they keep the top ``n_clusters``, as dask-ml and scikit-learn do.
    Capped by the rank r of the approximation.

    >>> embedding_width("nearest_neighbors", 10, 500), embedding_width("rbf", 10, 500)
    (12, 10)
    """
    if affinity == "nearest_neighbors":
        return min(n_clusters + GRAPH_EXTRA_EIGENVECTORS, rank)
    return n_clusters


@dataclass(frozen=True)
class EigenResult:
    """The eigenpairs of the approximate normalized affinity behind the embedding.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Descending; the top one is ≈ 1 for a connected non-negative affinity.
    projection : ndarray (m, k)
        P = S R_k Σ_k^{-1/2}: the embedding of a row c of C with degree δ is (c/√δ) P.
    """

    eigenvalues: np.ndarray
    projection: np.ndarray


def eigendecompose(
    summary: KernelSummary,
    n_vectors: int,
    *,
    eigen_solver: str | None = None,
    eigen_tol: float = 0.0,
    random_state: int | np.random.RandomState | None = None,
) -> EigenResult:
    """Stage 3: the top ``n_vectors`` eigenpairs of G, and the projection P.

    Parameters
    ----------
    summary : KernelSummary
    n_vectors : int
        Columns of the embedding: :func:`embedding_width`.
    eigen_solver : {None, 'arpack', 'lobpcg', 'amg'}
        None: dense LAPACK (``scipy.linalg.eigh``); 'arpack': ``scipy.sparse.linalg.eigsh``;
        'lobpcg': ``scipy.sparse.linalg.lobpcg``; 'amg': LOBPCG preconditioned by pyamg's
        smoothed aggregation on the shifted Laplacian. An iterative solver that cannot handle
        the problem (lobpcg and amg: r < 5·k + 1; arpack: r ≤ k) is replaced by dense LAPACK
        with a :class:`SolverFallbackWarning`.
    eigen_tol : float
        Stopping tolerance of the iterative solvers; 0 means each solver's default.
    random_state : int, RandomState or None
        Seeds the iterative solvers' starting vectors.

    Returns
    -------
    EigenResult

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import kernel_blocks, make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L = sample_landmarks(X, 30, random_state=0)
    >>> summary, _ = kernel_blocks(X, L, make_kernel("rbf", gamma=0.5))
    >>> eigen = eigendecompose(summary, 3)
    >>> eigen.projection.shape, bool(abs(eigen.eigenvalues[0] - 1) < 1e-6)
    ((30, 3), True)
    """
    G = summary.gram
    r, k = G.shape[0], n_vectors
    if k > r:
        raise ValueError(f"{k} eigenvectors exceed the rank {r} of the approximated affinity.")
    rng = check_random_state(random_state)
    solver = eigen_solver
    if (solver in ("lobpcg", "amg") and r < 5 * k + 1) or (solver == "arpack" and k >= r):
        # As scikit-learn's spectral_embedding does for a small graph, but said out loud.
        warnings.warn(
            f"eigen_solver={solver!r} cannot compute {k} eigenpairs of a {r} × {r} problem "
            f"(it needs {'r > k' if solver == 'arpack' else 'r ≥ 5·k + 1'}); using dense "
            "LAPACK (eigen_solver=None) instead.",
            SolverFallbackWarning,
            stacklevel=2,
        )
        solver = None
    if solver is None:
        sigma, R = linalg.eigh(G, subset_by_index=[r - k, r - 1])
    elif solver == "arpack":
        from scipy.sparse.linalg import eigsh

        v0 = rng.uniform(-1, 1, r)
        sigma, R = eigsh(G, k=k, which="LA", tol=eigen_tol, v0=v0)
    elif solver == "lobpcg":
        from scipy.sparse.linalg import lobpcg

        X0 = rng.standard_normal((r, k))
        sigma, R = lobpcg(G, X0, largest=True, tol=eigen_tol or None, maxiter=2000)
    elif solver == "amg":
        sigma, R = _amg_eigs(G, k, eigen_tol, rng)
    else:  # validated by the estimator; kept for direct callers
        raise ValueError(f"Unknown eigen_solver {eigen_solver!r}.")
    order = np.argsort(sigma)[::-1]
    sigma, R = np.asarray(sigma)[order], np.asarray(R)[:, order]
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive.
    signs = np.sign(R[np.argmax(np.abs(R), axis=0), np.arange(k)])
    R = R * np.where(signs == 0, 1.0, signs)
    # G is PSD, so Σ ≥ 0 up to round-off; floor it so Σ^{-1/2} stays finite.
    safe = np.maximum(sigma, np.finfo(np.float64).eps * max(sigma.max(initial=0.0), 1.0))
    P = summary.normalizer @ (R / np.sqrt(safe))  # (m, k)
    return EigenResult(eigenvalues=sigma.copy(), projection=P)


def _amg_eigs(G: np.ndarray, k: int, tol: float, rng: np.random.RandomState):
    from scipy.sparse.linalg import lobpcg

    smoothed_aggregation_solver = import_pyamg().smoothed_aggregation_solver
    # Largest eigenpairs of G are the smallest of the PSD "Laplacian" c·I − G, c ≥ λ_max(G)
    # by Gershgorin, which is what an AMG preconditioner is built for.
    c = float(np.abs(G).sum(axis=1).max())
    L = sparse.csr_matrix(c * np.eye(G.shape[0]) - G)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        ml = smoothed_aggregation_solver(L)
    X0 = rng.standard_normal((G.shape[0], k))
    mu, R = lobpcg(L, X0, M=ml.aspreconditioner(), largest=False, tol=tol or None, maxiter=2000)
    return c - mu, R
