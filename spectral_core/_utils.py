"""Stage timing and the ``n_jobs`` convention."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("spectral_core")


def is_dask_array(x: object) -> bool:
    """Whether ``x`` is a dask array, without importing dask.

    A dask array can only exist once ``dask.array`` has been imported, so when it is not in
    ``sys.modules`` the answer is no: numpy users never pay dask's import (~0.3-0.5 s).
    """
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


@contextmanager
def stage_timer(stage: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long a stage took (also when it fails) and record it in ``timings``."""
    start = time.perf_counter()
    logger.info("%s: started", stage)
    ok = False
    try:
        yield
        ok = True
    finally:
        elapsed = time.perf_counter() - start
        if timings is not None:
            timings[stage] = elapsed
        logger.info("%s: %s in %.3f s", stage, "done" if ok else "failed", elapsed)


def resolve_n_jobs(n_jobs: int | None) -> int:
    """joblib's convention: None → 1, -1 → all cores, -2 → all but one, ..."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


def check_random_state(seed):
    """scikit-learn's ``check_random_state``, imported when first needed (not at import)."""
    from sklearn.utils import check_random_state as check

    return check(seed)
