"""Whether keeping C between the passes pays, from costs probed on this machine.

Keeping the n × m kernel C evaluates the kernel once instead of three times, but C must be
paged in: a fresh process touches n·m·w bytes it has never used. Which is cheaper depends on
the machine (a SIMD ``exp``; how fast the OS, or a VM's host, hands out fresh pages), so it is
decided from two probes measured once per process (a few milliseconds each), never from
constants measured elsewhere:

* ``c_k``: seconds per kernel value, one thread, on a synthetic block of the fit's shape;
* ``f``: seconds per byte of fresh memory, writing into a newly allocated buffer.

Keeping pays when ``FIRST_TOUCH_WORST·f·n·m·w < 2·n·m·c_k / P`` (two kernel passes saved,
on P threads). The page-in of a large buffer costs at least the probe's rate, and up to ten
times more when a VM's host backs the guest's pages for the first time, which a small probe
cannot see (0.4-1.2 ns/B probed, 6 ns/B paging in 800 MB: benchmarks/profile.md). Since the
compiled rbf kernel (about 2.5 ns a value at d = 10), two passes cost less than that worst
case for low-dimensional data, so the rule takes the worst case: it keeps C where the kernel
is expensive (many features: 2·d flops a value) and recomputes it where it is cheap, whatever
the host does. The budget set in ``spectral_core.kernel-cache`` overrides it.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np

logger = logging.getLogger(__name__)

#: Below this many bytes of C the choice is not worth a probe: keep it.
PROBE_ABOVE_BYTES = 64 * 2**20
#: How much more than the probe's rate a large page-in can cost (a VM's host backing the
#: guest's pages for the first time; measured here: benchmarks/profile.md).
FIRST_TOUCH_WORST = 10.0
#: Bytes written by the fresh-memory probe (several transparent huge pages).
_PROBE_BYTES = 16 * 2**20


@functools.lru_cache(maxsize=32)
def kernel_seconds_per_value(dtype: str, n_features: int, n_landmarks: int) -> float:
    """One thread's seconds per rbf value for blocks of this shape (best of 3, cached)."""
    from threadpoolctl import threadpool_limits

    from ._kernels import rbf_cross

    rng = np.random.default_rng(0)
    rows = max(256, (2 * 2**20) // (n_landmarks * np.dtype(dtype).itemsize))
    X = rng.normal(size=(rows, n_features)).astype(dtype)
    L = rng.normal(size=(n_landmarks, n_features)).astype(dtype)
    out = np.empty((rows, n_landmarks), dtype=dtype)
    best = np.inf
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(3):
            start = time.perf_counter()
            rbf_cross(X, L, 1.0 / n_features, out=out)
            best = min(best, time.perf_counter() - start)
    return best / out.size


@functools.lru_cache(maxsize=1)
def fresh_memory_seconds_per_byte() -> float:
    """Seconds per byte to write memory the process has not touched (mean of 2, cached)."""
    total = 0.0
    for _ in range(2):
        start = time.perf_counter()
        np.empty(_PROBE_BYTES, dtype=np.uint8).fill(1)
        total += time.perf_counter() - start
    return total / (2 * _PROBE_BYTES)


def keeping_pays(n_values: int, itemsize: int, n_features: int, n_landmarks: int,
                 threads: int) -> bool:
    """Whether keeping C (``n_values`` of ``itemsize`` bytes) beats two more kernel passes."""
    nbytes = n_values * itemsize
    if nbytes <= PROBE_ABOVE_BYTES:
        return True
    dtype = "float32" if itemsize == 4 else "float64"
    c_k = kernel_seconds_per_value(dtype, n_features, n_landmarks)
    f = fresh_memory_seconds_per_byte()
    page_in, recompute = FIRST_TOUCH_WORST * f * nbytes, 2 * n_values * c_k / max(threads, 1)
    logger.info("kernel cache: paging in %.0f MB ≤ %.2f s (f = %.2f ns/B) vs two kernel passes "
                "≈ %.2f s (c_k = %.2f ns/value, %d threads): %s", nbytes / 2**20, page_in,
                f * 1e9, recompute, c_k * 1e9, threads, "keep" if page_in < recompute
                else "recompute")
    return page_in < recompute
