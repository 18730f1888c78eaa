"""A write that fails (a full filesystem) gives a clear error and leaves nothing half-written."""

import subprocess
import warnings

import pytest

from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import run_spectral
from spectral_pipeline.tasks.checkpoints import check_part, read_part
from spectral_pipeline.tasks.storage import open_store


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 96 KiB tmpfs (needs root, as CI runs): writes fail with ENOSPC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"cannot mount a tmpfs for this test (run as root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_full_checkpoint_disk_fails_clearly_and_leaves_only_complete_files(
        blobs_data, tmp_path, tiny_filesystem):
    data, _, _ = blobs_data
    out = tmp_path / "out"
    params = SpectralParams(input=str(data), output_dir=str(out),
                            checkpoint_dir=str(tiny_filesystem / "ckpt"),
                            feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                            block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                            random_state=0, persist_embedding=True)
    with pytest.raises(OSError, match="No space left on device"):
        run_spectral(params)
    assert not (out / "labels" / "_SUCCESS.json").exists()
    files = list((tiny_filesystem / "ckpt").rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]  # no temporary file left
    parquet = [f for f in files if f.suffix == ".parquet"]
    assert parquet  # it got some way before the disk filled up
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a torn file would warn (and be recomputed)
        for f in parquet:
            store = open_store(str(f.parent))
            part = check_part(store, f.name, {})
            assert part is not None, f
            read_part(store, part, stage="any")  # every page checksum holds
