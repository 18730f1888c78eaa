"""The cached-kernel choice (spectral_core._costs) and the lazy package import."""

import json
import subprocess
import sys

import dask
import numpy as np
import pytest

from spectral_core import _costs, _kernel_blocks, make_kernel, sample_landmarks
from spectral_core._kernels import KERNEL_AFFINITIES, KERNEL_PARAMS


def test_kernel_affinities_match_scikit_learn():
    from sklearn.metrics import pairwise

    assert KERNEL_AFFINITIES == tuple(sorted(pairwise.PAIRWISE_KERNEL_FUNCTIONS))
    assert KERNEL_PARAMS == {k: frozenset(v) for k, v in pairwise.KERNEL_PARAMS.items()}


def test_import_loads_neither_scikit_learn_nor_dask():
    code = ("import json, sys, spectral_core; print(json.dumps(sorted({m.split('.')[0] for m in "
            "sys.modules} & {'sklearn', 'dask', 'scipy', 'pandas'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_numpy_fit_never_imports_dask():
    code = ("import sys, numpy as np; from spectral_core import SpectralClustering; "
            "X = np.random.default_rng(0).normal(size=(500, 3)); "
            "SpectralClustering(2, n_components=20, random_state=0).fit(X); "
            "print('dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _Clock:
    """A ``time`` stand-in whose ``perf_counter`` advances by ``step`` seconds a call."""

    def __init__(self, step):
        self.step, self.now, self.calls = step, 0.0, 0

    def perf_counter(self):
        self.calls += 1
        self.now += self.step
        return self.now


@pytest.fixture
def fresh_probes():
    """The probes' caches emptied before and after the test (other tests probe for real)."""
    for probe in (_costs.kernel_seconds_per_value, _costs.fresh_memory_seconds_per_byte):
        probe.cache_clear()
    yield
    for probe in (_costs.kernel_seconds_per_value, _costs.fresh_memory_seconds_per_byte):
        probe.cache_clear()


def test_probes_measure_seconds_per_value_and_per_byte_once(monkeypatch, fresh_probes):
    """The probes' arithmetic on a clock that says each timed step took 0.5 s: seconds per
    kernel value of the probe block (best of 3) and per byte written (mean of 2), measured
    once per shape and then cached. The kernel and the memory writes are real."""
    clock = _Clock(0.5)
    monkeypatch.setattr(_costs, "time", clock)
    rows = (2 * 2**20) // (100 * 8)  # the probe block: 2 MiB of float64 values, 100 columns
    assert _costs.kernel_seconds_per_value("float64", 10, 100) == 0.5 / (rows * 100)
    assert clock.calls == 6  # three timed kernel evaluations
    assert _costs.kernel_seconds_per_value("float64", 10, 100) == 0.5 / (rows * 100)
    assert clock.calls == 6  # cached
    assert _costs.kernel_seconds_per_value("float32", 10, 1000) == 0.5 / (
        ((2 * 2**20) // (1000 * 4)) * 1000)  # another shape, probed on its own
    assert _costs.fresh_memory_seconds_per_byte() == 0.5 / _costs._PROBE_BYTES
    calls = clock.calls
    assert _costs.fresh_memory_seconds_per_byte() == 0.5 / _costs._PROBE_BYTES
    assert clock.calls == calls


def test_probes_on_the_real_clock_are_positive_and_finite(fresh_probes):
    """No bounds on the speeds themselves: they depend on the machine and its load."""
    c_k = _costs.kernel_seconds_per_value("float64", 10, 100)
    f = _costs.fresh_memory_seconds_per_byte()
    assert 0 < c_k < np.inf and 0 < f < np.inf


@pytest.mark.parametrize(("f", "c_k", "keep"), [(0.1e-9, 10e-9, True), (0.2e-9, 10e-9, False),
                                               (1e-9, 2.5e-9, False), (1e-9, 100e-9, True)])
def test_keeping_pays_compares_page_in_with_two_passes(monkeypatch, f, c_k, keep):
    monkeypatch.setattr(_costs, "fresh_memory_seconds_per_byte", lambda: f)
    monkeypatch.setattr(_costs, "kernel_seconds_per_value", lambda *a: c_k)
    # 10⁸ float64 values: the worst page-in, 10·f·8e8 s, against 2·10⁸·c_k / 2 threads.
    assert _costs.keeping_pays(10**8, 8, 10, 100, threads=2) is keep
    assert _costs.keeping_pays(1000, 8, 10, 100, threads=2)  # small C: always kept


def test_configured_budget_overrides_the_model(monkeypatch):
    X = np.random.default_rng(0).normal(size=(300, 3))
    landmarks = sample_landmarks(X, 20, random_state=0)
    kernel = make_kernel("rbf", gamma=0.5)
    monkeypatch.setattr(_costs, "keeping_pays", lambda *a, **k: False)
    with dask.config.set({"spectral_core.kernel-cache": None}):
        assert _kernel_blocks.choose_cache_budget(X, landmarks, kernel, 2) == 0
    monkeypatch.setattr(_costs, "keeping_pays", lambda *a, **k: True)
    with dask.config.set({"spectral_core.kernel-cache": None}):
        assert _kernel_blocks.choose_cache_budget(X, landmarks, kernel, 2) > 0
    with dask.config.set({"spectral_core.kernel-cache": "1MiB"}):
        assert _kernel_blocks.choose_cache_budget(X, landmarks, kernel, 2) == 2**20


@pytest.mark.parametrize("seed", [None, 0, 7, np.int64(3), np.random.RandomState(5)])
def test_check_random_state_matches_scikit_learn(seed):
    from sklearn.utils import check_random_state

    from spectral_core._utils import check_random_state as ours

    a, b = ours(seed), check_random_state(seed)
    if seed is None or isinstance(seed, np.random.RandomState):
        assert a is b
    else:
        assert a.randint(1000, size=5).tolist() == b.randint(1000, size=5).tolist()
    with pytest.raises(ValueError, match="cannot be used to seed") as mine:
        ours("a")
    with pytest.raises(ValueError) as theirs:
        check_random_state("a")
    assert str(mine.value) == str(theirs.value)

