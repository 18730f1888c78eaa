"""benchmarks/levers.py, whose rows benchmarks/accuracy.md reports, still runs against the
library, and with no lever it measures the library's own fit (it had rotted once: a patch of
``embedding_width`` with the old signature failed every run)."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from spectral_core import SpectralClustering

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "levers.py"
LINE = re.compile(r"NMI (\d+\.\d)±[\d.]+ CA (\d+\.\d)±[\d.]+ ARI (\d\.\d{3})±")


def _levers(*flags: str) -> re.Match:
    out = subprocess.run([sys.executable, str(SCRIPT), "--data", "digits", "--m", "100",
                          "--seeds", "0-0", *flags], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found = LINE.search(out.stdout)
    assert found, out.stdout
    return found


@pytest.mark.parametrize("assign", ["kmeans", "consensus"])
def test_with_no_lever_it_measures_the_library(assign):
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = SpectralClustering(n_clusters=10, affinity="nearest_neighbors", n_neighbors=5,
                                    n_components=100, landmarks="kmeans", assign_labels=assign,
                                    random_state=0).fit(X.astype(np.float32)).labels_
    ari = float(_levers("--assign", assign).group(3))
    assert ari == pytest.approx(adjusted_rand_score(y, labels), abs=5e-4)


def test_its_levers_run():
    ari = float(_levers("--sigma", "global", "--factor", "2", "--norm", "none",
                        "--landmarks", "reseat5", "--extra", "3").group(3))
    assert 0.5 < ari <= 1.0  # digits at 100 landmarks: 0.76 measured


def test_extra_columns_are_refused_with_the_consensus():
    out = subprocess.run([sys.executable, str(SCRIPT), "--assign", "consensus", "--extra", "3"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--extra is a lever of the k-means" in out.stderr
