"""The scripts in benchmarks/, whose tables the docs and benchmarks/accuracy.md report, still
run against the library on a small input, and the two accuracy scripts measure the library's
own fit. Nothing else runs them, and one had rotted unseen: levers.py patched
``embedding_width`` with its old signature and failed every run."""

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

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
LEVERS_LINE = re.compile(r"NMI (\d+\.\d)±[\d.]+ CA (\d+\.\d)±[\d.]+ ARI (\d\.\d{3})±")


def _run(script: str, *args: str, timeout: int = 300, returncode: int = 0) -> str:
    """The script's output (its error output when it is expected to fail)."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == returncode, out.stderr[-2000:]
    return out.stdout if returncode == 0 else out.stderr


def _digits_ari(m: int, assign: str) -> float:
    """The library's fit of the digits as both scripts make it: the k-NN configuration,
    float32, seed 0."""
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = SpectralClustering(n_clusters=10, affinity="nearest_neighbors", n_neighbors=5,
                                    n_components=m, landmarks="kmeans", assign_labels=assign,
                                    random_state=0).fit(X.astype(np.float32)).labels_
    return adjusted_rand_score(y, labels)


def _levers(*flags: str) -> re.Match:
    out = _run("levers.py", "--data", "digits", "--m", "100", "--seeds", "0-0", *flags)
    found = LEVERS_LINE.search(out)
    assert found, out
    return found


@pytest.mark.parametrize("assign", ["kmeans", "consensus"])
def test_levers_with_no_lever_measures_the_library(assign):
    ari = float(_levers("--assign", assign).group(3))
    assert ari == pytest.approx(_digits_ari(100, assign), abs=5e-4)


def test_the_levers_run():
    ari = float(_levers("--sigma", "global", "--factor", "2", "--norm", "none",
                        "--landmarks", "reseat5", "--extra", "3").group(3))
    assert 0.5 < ari <= 1.0  # digits at 100 landmarks: 0.76 measured


def test_levers_refuses_extra_columns_with_the_consensus():
    error = _run("levers.py", "--assign", "consensus", "--extra", "3", returncode=2)
    assert "--extra is a lever of the k-means" in error


def test_accuracy_measures_the_library():
    out = _run("accuracy.py", "--seeds", "1", "--datasets", "digits", "--systems",
               "spectral_core", "--m", "100", "--configs", "knn,consensus")
    rows = {}
    for line in out.splitlines():
        found = re.match(r"digits\s+1797 spectral_core (knn|consensus),.*?"
                         r"(\d\.\d{3}) ± 0\.000", line)
        if found:
            rows[found.group(1)] = float(found.group(2))
    assert rows.keys() == {"knn", "consensus"}, out
    assert rows["knn"] == pytest.approx(_digits_ari(100, "kmeans"), abs=5e-4)
    assert rows["consensus"] == pytest.approx(_digits_ari(100, "consensus"), abs=5e-4)


def test_speed_fits_its_blobs():
    out = _run("speed.py", "--repeats", "1", "--sizes", "3000", "--m", "100", "--systems",
               "spectral_core", "--no-small")
    aris = [float(a) for a in re.findall(r"^\s+3000\s+100 float(?:32|64) spectral_core.*?"
                                         r"\s(\d\.\d{3})\s", out, re.M)]
    assert len(aris) == 2 and min(aris) > 0.99, out


def test_profile_and_scatter_print_their_tables():
    out = _run("profile.py", "--n", "5000", "--m", "100")
    assert re.search(r"^\s*100 fit total\s+\d", out, re.M), out
    out = _run("scatter.py", "--parts", "4", "--passes", "1", "--sizes", "1")
    assert re.search(r"^threads .* B\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"^processes .* B\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out


@pytest.mark.slow
def test_scale_runs_the_flow(tmp_path):
    out = _run("scale.py", "--rows", "20000", "--rows-per-file", "10000", "--n-components",
               "100", "--repeats", "1", "--workdir", str(tmp_path), timeout=600)
    assert "1 of 1 runs completed" in out, out
    assert re.search(r"^ARI \(lowest\)\s+1\.00", out, re.M), out
