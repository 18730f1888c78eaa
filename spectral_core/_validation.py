"""Parameter and data checks, in one place and one message template.

Messages follow: ``The 'gamma' parameter of SpectralClustering must be a float > 0. Got -1.0
instead.`` -- TypeError for a wrong type, ValueError for a wrong value.
"""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans

from ._kernels import AFFINITIES
from ._messages import import_pyamg

OWNER = "SpectralClustering"
EIGEN_SOLVERS = (None, "arpack", "lobpcg", "amg")
ASSIGN_STRINGS = ("kmeans", "sklearn-kmeans", "discretize", "cluster_qr")
LANDMARK_METHODS = ("random", "kmeans")
# KMeans arguments that SpectralClustering sets from its own parameters.
_KMEANS_OWNED = ("n_clusters", "n_init", "random_state")


def _param(name: str, constraint: str, value: Any, *, owner: str = OWNER, fix: str = "") -> str:
    return f"The {name!r} parameter of {owner} must be {constraint}. Got {value!r} instead.{fix}"


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None,
              high_name: str | None = None) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(_param(name, "an int", value))
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else (f"{high_name}={high}" if high_name else str(high))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(_param(name, f"an int in the range [{lo}, {hi}]", value))
    return int(value)


def check_real(name: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(_param(name, "a float", value))
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(_param(name, "a finite float", value))
    if positive and value <= 0:
        raise ValueError(_param(name, "a float > 0", value))
    if nonneg and value < 0:
        raise ValueError(_param(name, "a float >= 0", value))
    return value


def check_params(est) -> dict[str, Any]:
    """Validate every constructor argument of ``est``; return the clean values."""
    p: dict[str, Any] = {}
    p["n_components"] = check_int("n_components", est.n_components, low=1)
    p["n_clusters"] = check_int(
        "n_clusters", est.n_clusters, low=1, high=p["n_components"], high_name="n_components"
    )
    if est.eigen_solver not in EIGEN_SOLVERS:
        if est.eigen_solver is not None and not isinstance(est.eigen_solver, str):
            raise TypeError(_param("eigen_solver", "a str among {'arpack', 'lobpcg', 'amg'} "
                                   "or None", est.eigen_solver))
        raise ValueError(_param("eigen_solver", "one of {'arpack', 'lobpcg', 'amg'} or None",
                                est.eigen_solver))
    p["eigen_solver"] = est.eigen_solver
    if est.eigen_solver == "amg":
        import_pyamg()
    if isinstance(est.n_init, str):
        if est.n_init != "auto":
            raise ValueError(_param("n_init", "'auto' or an int >= 1", est.n_init))
        p["n_init"] = "auto"
    else:
        p["n_init"] = check_int("n_init", est.n_init, low=1)
    p["gamma"] = check_real("gamma", est.gamma, positive=True)
    aff = est.affinity
    if not (isinstance(aff, str) or callable(aff)):
        raise TypeError(_param("affinity", f"a str among {sorted(AFFINITIES)} or a callable",
                               aff))
    if isinstance(aff, str) and aff not in AFFINITIES:
        raise ValueError(_param("affinity", f"one of {sorted(AFFINITIES)} or a callable", aff))
    p["affinity"] = aff
    p["n_neighbors"] = check_int("n_neighbors", est.n_neighbors, low=1)
    if aff == "nearest_neighbors" and p["n_neighbors"] > p["n_components"]:
        raise ValueError(_param("n_neighbors", f"an int in the range [1, n_components="
                                f"{p['n_components']}] (each sample links to its nearest "
                                "landmarks)", est.n_neighbors))
    p["eigen_tol"] = check_real("eigen_tol", est.eigen_tol, nonneg=True)
    p["degree"] = check_real("degree", est.degree, nonneg=True)
    p["coef0"] = check_real("coef0", est.coef0)
    if est.kernel_params is not None and not isinstance(est.kernel_params, dict):
        raise TypeError(_param("kernel_params", "a dict or None", est.kernel_params))
    p["kernel_params"] = dict(est.kernel_params or {})
    if est.n_jobs is not None:
        check_int("n_jobs", est.n_jobs)
        if est.n_jobs == 0:
            raise ValueError(_param("n_jobs", "an int != 0 (-1 for all cores) or None",
                                    est.n_jobs))
    p["n_jobs"] = est.n_jobs
    if not isinstance(est.persist_embedding, (bool, np.bool_)):
        raise TypeError(_param("persist_embedding", "a bool", est.persist_embedding))
    p["persist_embedding"] = bool(est.persist_embedding)
    if isinstance(est.landmarks, str):
        if est.landmarks not in LANDMARK_METHODS:
            raise ValueError(_param("landmarks", "one of {'random', 'kmeans'}", est.landmarks))
    else:
        raise TypeError(_param("landmarks", "a str among {'random', 'kmeans'}", est.landmarks))
    if est.landmarks == "kmeans" and aff == "precomputed":
        raise ValueError(_param("landmarks", "'random' when affinity='precomputed' (landmarks "
                                "must be rows of the affinity matrix)", est.landmarks))
    p["landmarks"] = est.landmarks
    p["assign_labels"] = _check_assign_labels(est.assign_labels)
    p["kmeans_params"] = _check_kmeans_params(est.kmeans_params, est.assign_labels)
    return p


def _check_assign_labels(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ASSIGN_STRINGS:
            raise ValueError(_param("assign_labels", f"one of {list(ASSIGN_STRINGS)} or a "
                                    "clusterer instance", value))
        return value
    if isinstance(value, type) or not hasattr(value, "fit") or not hasattr(value, "get_params"):
        raise TypeError(_param("assign_labels", f"one of {list(ASSIGN_STRINGS)} or a "
                               "scikit-learn clusterer instance (with fit and get_params)",
                               value))
    return value


def _check_kmeans_params(value: Any, assign_labels: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(_param("kmeans_params", "a dict or None", value))
    params = dict(value)
    if isinstance(assign_labels, str):
        if assign_labels in ("discretize", "cluster_qr"):
            if params:
                raise ValueError(_param(
                    "kmeans_params", f"None or empty with assign_labels={assign_labels!r} "
                    "(it is applied to the KMeans or clusterer that assigns labels)", value))
            return params
        valid = set(KMeans().get_params()) - set(_KMEANS_OWNED)
        owned = sorted(set(params) & set(_KMEANS_OWNED))
        if owned:
            raise ValueError(_param("kmeans_params", "a dict of KMeans parameters other than "
                                    f"{list(_KMEANS_OWNED)} (set those on SpectralClustering "
                                    f"itself); {owned} are not allowed", value))
    else:
        valid = set(assign_labels.get_params())
    bad = sorted(set(params) - valid)
    if bad:
        raise ValueError(_param("kmeans_params", f"a dict whose keys are parameters of the "
                                f"label assigner; {bad} are not (valid: {sorted(valid)})",
                                value))
    return params


def check_array_input(X: Any, *, owner: str = OWNER) -> Any:
    """Return X as a 2-D float32/float64 numpy or row-chunked dask array, or raise.

    Checks type, dimensionality, emptiness and dtype here; finiteness is checked by
    :func:`check_finite` (for dask input it costs a pass over the data).
    """
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # pandas DataFrame
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        non_numeric = [c for c, t in X.dtypes.items()
                       if not (is_numeric_dtype(t) or is_bool_dtype(t))]
        if non_numeric:
            raise TypeError(
                f"X passed to {owner} must be numeric; columns {non_numeric[:5]!r} are not. "
                "Drop or encode them first."
            )
        X = X.to_numpy()
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(_shape_message(X.ndim, owner))
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"X passed to {owner} must be numeric. Got dtype {X.dtype} instead.")
        if any(np.isnan(c) for c in X.chunks[0]):
            raise ValueError(
                f"X passed to {owner} has unknown chunk sizes. Call X.compute_chunk_sizes() "
                "first."
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(_empty_message(X.shape, owner))
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})  # chunked by rows only; columns merged into one chunk
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        return X
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            f"X passed to {owner} must be dense; got a sparse matrix. Use X.toarray() when it "
            "fits in memory."
        )
    try:
        arr = np.asarray(X)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"X passed to {owner} must contain only numbers; converting it failed: {exc}"
        ) from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"X passed to {owner} must be numeric. Got dtype {arr.dtype} instead.")
    if np.iscomplexobj(arr):
        # ValueError, as scikit-learn raises for complex input.
        raise ValueError(f"X passed to {owner} must be real: Complex data not supported. Got "
                         f"dtype {arr.dtype} instead.")
    if arr.ndim != 2:
        raise ValueError(_shape_message(arr.ndim, owner))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(_empty_message(arr.shape, owner))
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def _shape_message(ndim: int, owner: str) -> str:
    return (
        f"X passed to {owner} must be a 2-D array of shape (n_samples, n_features). Got a "
        f"{ndim}-D array instead. Reshape your data: X.reshape(-1, 1) for a single feature."
    )


def _empty_message(shape: tuple, owner: str) -> str:
    return (
        f"X passed to {owner} must have at least 1 sample and 1 feature. Got "
        f"{shape[0]} sample(s) and {shape[1]} feature(s) (shape={tuple(shape)}) while a minimum "
        "of 1 is required."
    )


def data_stats(X: Any) -> tuple[bool, float]:
    """(all finite?, minimum) of X, in one pass for dask input."""
    if isinstance(X, da.Array):
        import dask

        finite, low = dask.compute(da.isfinite(X).all(), X.min())
        return bool(finite), float(low)
    return bool(np.isfinite(X).all()), float(X.min())


def finite_error(X: Any, owner: str = OWNER) -> ValueError:
    """A message locating the first non-finite value (row, column)."""
    rows_ok = np.asarray(da.isfinite(X).all(axis=1)) if isinstance(X, da.Array) else \
        np.isfinite(X).all(axis=1)
    where = ""
    if not rows_ok.all():
        row = int(np.argmin(rows_ok))
        col = int(np.argmin(np.isfinite(np.asarray(X[row]))))
        where = f" First at row {row}, column {col}."
    return ValueError(
        f"X passed to {owner} contains NaN or inf.{where} Remove or impute those values first."
    )
