"""How far an eigensolver's eigenvalues may lie from the exact ones, from its own stopping rule.

A tolerance on an iterative solver's output is derived here from the tolerance that solver
was run with, never fixed: the same test then holds on any CPU (an AVX-512 BLAS rounds
differently from an AVX2 one, and an iterative solver stops at a different iterate).
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)


def eigenvalue_bound(solver: str | None, eigen_tol: float, *, n: int, k: int,
                     scale: float = 1.0) -> float:
    """An upper bound on |θ_i − λ_i| for the k leading values θ that ``solver`` returns for a
    symmetric n × n matrix with eigenvalues λ at most ``scale`` in magnitude.

    For an orthonormal block X with Ritz values θ and residual block R = GX − XΘ, k
    eigenvalues of G lie within ‖R‖₂ ≤ √k · max_i ‖r_i‖ of the θ_i, matched in order
    (Kahan's theorem: Parlett, *The Symmetric Eigenvalue Problem*, §11.5). Each solver stops
    on its residuals:

    - ``'lobpcg'`` and ``'amg'`` (LOBPCG on c·I − G, which moves every eigenvalue by the same
      c): ‖r_i‖ ≤ tol, and ``eigen_tol=0`` means SciPy's default tol = n·√eps;
    - ``'arpack'``: ‖r_i‖ ≤ tol·|θ_i|, and ``eigen_tol=0`` means machine precision;
    - ``None`` (dense LAPACK): backward stable, so the error is round-off only.

    Every route adds the round-off of a backward-stable solve, n·eps·scale.
    """
    roundoff = n * EPS * scale
    if solver is None:
        return roundoff
    if solver in ("lobpcg", "amg"):
        residual = eigen_tol if eigen_tol > 0 else n * np.sqrt(EPS)
    elif solver == "arpack":
        residual = max(eigen_tol, EPS) * scale
    else:
        raise ValueError(f"no stopping rule known for eigen_solver={solver!r}")
    return float(np.sqrt(k) * residual + roundoff)
