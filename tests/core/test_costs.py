"""Whether the estimator keeps C (the kernel between its passes) and the lazy package import."""

import json
import subprocess
import sys

import dask
import numpy as np
import pytest

from spectral_core import _kernel_blocks, make_kernel, sample_landmarks
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


@pytest.mark.parametrize(("affinity", "rows", "kept"), [
    ("rbf", 1000, True),  # C of 0.8 MB: kept
    ("rbf", 84_000, False),  # 67 MB of rbf values: evaluated again in each pass
    ("laplacian", 84_000, True), ("nearest_neighbors", 84_000, True)])
def test_c_is_kept_for_graphs_and_costly_kernels_and_small_rbf(affinity, rows, kept):
    X = np.zeros((rows, 3))
    landmarks = sample_landmarks(np.random.default_rng(0).normal(size=(300, 3)), 100,
                                 random_state=0)
    kernel = make_kernel(affinity, **({"n_neighbors": 5} if affinity == "nearest_neighbors"
                                      else {"gamma": 0.5}))
    with dask.config.set({"spectral_core.kernel-cache": None}):
        budget = _kernel_blocks.choose_cache_budget(X, landmarks, kernel)
    assert (budget > 0) is kept
    assert not kept or budget == _kernel_blocks.default_cache_budget()


def test_configured_budget_overrides_the_rule():
    X = np.random.default_rng(0).normal(size=(300, 3))
    landmarks = sample_landmarks(X, 20, random_state=0)
    kernel = make_kernel("rbf", gamma=0.5)
    with dask.config.set({"spectral_core.kernel-cache": 0}):
        assert _kernel_blocks.choose_cache_budget(X, landmarks, kernel) == 0
    with dask.config.set({"spectral_core.kernel-cache": "1MiB"}):
        assert _kernel_blocks.choose_cache_budget(X, landmarks, kernel) == 2**20


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

