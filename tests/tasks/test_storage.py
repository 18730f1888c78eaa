"""tasks/storage.py: paths and URLs as stores, secrets refused, confinement, memory://."""

import os
import pickle
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks.dataset import plan_dataset, read_block
from spectral_pipeline.tasks.errors import InputError
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
    X = np.vstack([read_block(there, b, memory) for b in there.blocks])
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


@pytest.fixture
def s3_endpoint(monkeypatch):
    """An S3 endpoint on 127.0.0.1 (a port of this test's choosing) in the standard AWS
    environment, as a deployment sets it."""
    import s3fs

    from spectral_pipeline.flows.server import free_port

    port = free_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "AKTEST", "AWS_SECRET_ACCESS_KEY": "not-a-secret",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield port
    s3fs.S3FileSystem.clear_instance_cache()


def _unavailable(port):
    return rf"^The store s3://bucket \(at http://127\.0\.0\.1:{port}\) is not answering \("


def test_a_store_that_refuses_connections_is_unavailable_at_once(s3_endpoint):
    """Nothing listens on the endpoint (the server is down): one error that names the store
    and says what to do, in seconds, and neither the user's input nor worth a task's retry."""
    import time

    from spectral_pipeline.tasks.errors import StoreUnavailable, is_refusal
    from spectral_pipeline.tasks.retries import is_transient

    store = open_store("s3://bucket/prefix")
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=_unavailable(s3_endpoint)) as gone:
        store.read_bytes("part-000000.parquet")
    assert time.monotonic() - start < 15
    assert "run the same command again" in str(gone.value)
    assert not is_refusal(gone.value) and not is_transient(gone.value)
    assert pickle.loads(pickle.dumps(gone.value)).url == gone.value.url  # from a worker


def test_a_store_that_accepts_but_never_answers_is_unavailable_after_the_timeouts(
        s3_endpoint, monkeypatch):
    """A server that takes connections and says nothing (hung): each attempt gives up after
    READ_TIMEOUT, ATTEMPTS times, then the same error (timeouts shortened here)."""
    import socket
    import time

    from spectral_pipeline.tasks import storage
    from spectral_pipeline.tasks.errors import StoreUnavailable

    monkeypatch.setattr(storage, "READ_TIMEOUT", 1)
    hung = socket.create_server(("127.0.0.1", s3_endpoint), backlog=16)  # never accepts
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match=_unavailable(s3_endpoint)):
            open_store("s3://bucket/prefix").read_bytes("part-000000.parquet")
        waited = time.monotonic() - start
    finally:
        hung.close()
    assert storage.ATTEMPTS * 1 <= waited < storage.ATTEMPTS * 1 + 10, waited
