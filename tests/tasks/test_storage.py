"""tasks/storage.py: paths and URLs as stores, secrets refused, confinement, memory://."""

import os
import pickle
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks.io import InputError, plan_dataset, read_block
from spectral_pipeline.tasks.preflight import ALLOWED_ROOTS_ENV, allowed_roots, confine
from spectral_pipeline.tasks.storage import (
    MissingExtraError,
    StorageError,
    Store,
    open_store,
    within,
)


def test_plain_paths_and_file_urls_name_the_same_local_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    stores = [open_store("real"), open_store(str(tmp_path / "link")),
              open_store(f"file://{tmp_path}/real")]
    assert {s.url for s in stores} == {str(tmp_path / "real")}
    assert all(s.is_local and s.protocol == "file" for s in stores)


@pytest.mark.parametrize(("url", "canonical"), [
    ("s3://bucket/a/b/", "s3://bucket/a/b"),
    ("s3://bucket", "s3://bucket"),
    ("gs://bucket/x//y", "gs://bucket/x/y"),
    ("memory://scratch/p", "memory://scratch/p"),
    ("abfs://container/dir", "abfs://container/dir"),
])
def test_urls_are_canonical(url, canonical):
    assert open_store(url).url == canonical


@pytest.mark.parametrize(("url", "match"), [
    ("ftp://host/data", r"scheme 'ftp', which is not supported"),
    ("s3://AKIAEXAMPLE:topsecret@bucket/data", r"must not carry credentials"),
    ("s3://bucket/a/../b", r"must not contain '\.\.'"),
    ("", r"non-empty path or URL"),
])
def test_bad_locations_are_refused_with_a_reason(url, match):
    with pytest.raises(StorageError, match=match):
        open_store(url, what="input")


@pytest.mark.parametrize("options", [
    {"secret": "x"}, {"key": "AKIA"}, {"client_kwargs": {"aws_secret_access_key": "x"}},
    {"account_key": "x"}, {"token": "t"},
])
def test_secrets_in_storage_options_are_refused(options):
    with pytest.raises(StorageError, match=r"must not contain secrets .* Put credentials in "
                       r"the environment"):
        open_store("s3://bucket/data", options)


def test_non_secret_storage_options_are_kept():
    store = open_store("s3://bucket/data", {"anon": True, "client_kwargs": {"region_name": "x"}})
    assert dict(store.options) == {"anon": True, "client_kwargs": {"region_name": "x"}}


def test_a_url_whose_extra_is_missing_names_the_extra_to_install():
    # gcsfs is not a dependency of the tests: the error is the real one.
    with pytest.raises(MissingExtraError, match=r"gs:// URLs need the 'gcs' extra, which is "
                       r"not installed: pip install 'spectral-pipeline\[gcs\]'"):
        _ = open_store("gs://bucket/data").fs


def test_a_store_pickles_without_its_filesystem():
    store = open_store(f"memory://pickle-{uuid.uuid4().hex}")
    store.makedirs()
    _ = store.fs
    again = pickle.loads(pickle.dumps(store))
    assert again == store and again._cache == {}


def test_within_respects_schemes_and_path_boundaries():
    roots = [open_store("s3://bucket/prefix"), open_store("/data")]
    assert within(open_store("s3://bucket/prefix/run"), roots)
    assert within(open_store("s3://bucket/prefix"), roots)
    assert not within(open_store("s3://bucket/prefix-other"), roots)
    assert not within(open_store("gs://bucket/prefix/run"), roots)
    assert within(open_store("/data/x"), roots) and not within(open_store("/datax"), roots)


def test_allowed_roots_take_urls_between_path_separators(monkeypatch, tmp_path):
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join(
        ["s3://bucket/prefix", str(tmp_path), "memory://scratch"]))
    assert [r.url for r in allowed_roots()] == ["s3://bucket/prefix", str(tmp_path),
                                                "memory://scratch"]
    assert confine("s3://bucket/prefix/out", "output directory").url == \
        "s3://bucket/prefix/out"
    with pytest.raises(InputError, match=r"The output directory 's3://bucket/elsewhere' "
                       r"resolves to 's3://bucket/elsewhere', outside the allowed roots"):
        confine("s3://bucket/elsewhere", "output directory")
    with pytest.raises(InputError, match=r"must not contain '\.\.'"):
        confine("s3://bucket/prefix/*/../../x", "input")


def test_a_dataset_in_memory_is_planned_and_read_like_a_local_one(tmp_path):
    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(40), "a": rng.random(40), "b": rng.random(40)})
    local = tmp_path / "data"
    local.mkdir()
    memory = open_store(f"memory://plan-{uuid.uuid4().hex}/data")
    memory.makedirs()
    for i in range(2):
        part = table.slice(20 * i, 20)
        pq.write_table(part, local / f"p{i}.parquet", row_group_size=7)
        memory.write_bytes(f"p{i}.parquet", (local / f"p{i}.parquet").read_bytes())
    there = plan_dataset(memory, id_column="id", block_size=10)
    here = plan_dataset(str(local), id_column="id", block_size=10)
    assert [b.model_dump(exclude={"file"}) for b in there.blocks] == \
        [b.model_dump(exclude={"file"}) for b in here.blocks]
    assert there.fingerprint != here.fingerprint  # other paths: another input
    X = np.vstack([read_block(there, b, store=memory) for b in there.blocks])
    np.testing.assert_array_equal(X, np.column_stack([table["a"], table["b"]]))


def test_a_memory_store_writes_create_only_and_replaces():
    store = Store(f"memory://cw-{uuid.uuid4().hex}/x")
    store.makedirs()
    assert store.create("m.json", b"first") and not store.create("m.json", b"second")
    store.write_bytes("m.json", b"third")
    assert store.read_bytes("m.json") == b"third"
    store.remove("m.json")
    store.remove("m.json")  # removing what is gone is not an error
    assert not store.exists("m.json")
