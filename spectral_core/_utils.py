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
    """scikit-learn's ``check_random_state`` (``sklearn.utils.validation``), written out: the
    pipeline derives its stage seeds before it runs, and importing scikit-learn for this would
    cost its pre-flight checks ~2 s (a test keeps the two in agreement)."""
    import numbers

    import numpy as np

    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


#: The stages, in order (the estimator's, the pipeline's task names and checkpoint folders).
STAGES = ("sample_landmarks", "kernel_blocks", "eigendecompose", "embed", "assign_labels")


def stage_seeds(random_state) -> dict[str, int]:
    """One seed per random stage, drawn from ``random_state`` in a fixed order.

    The estimator and the pipeline both derive their stage seeds here, so the same
    ``random_state`` gives the same landmarks, solver start and assignment in both.
    """
    import numpy as np

    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=3)
    return {"sample_landmarks": int(seeds[0]), "eigendecompose": int(seeds[1]),
            "assign_labels": int(seeds[2])}
