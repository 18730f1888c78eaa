"""The id uniqueness check never gathers the ids: block summaries, then hashed buckets.

``check_ids`` says how it settled the question: ``"ranges"`` (no block repeats an id and the
blocks' ranges do not overlap) or ``"buckets"`` (the ids hashed into buckets, each checked by
reading the id column only), so each test shows which path ran.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks import validate
from spectral_pipeline.tasks.dataset import check_block, plan_dataset, summarize_ids
from spectral_pipeline.tasks.errors import InputError
from spectral_pipeline.tasks.storage import open_store


def _dataset(folder, ids, files=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, chunk in enumerate(np.array_split(np.asarray(ids), files)):
        pq.write_table(pa.table({"id": chunk, "x": rng.normal(size=chunk.size)}),
                       folder / f"part-{i}.parquet", row_group_size=100)
    plan = plan_dataset(str(folder), ["x"], "id", block_size=100)
    store = open_store(str(folder))
    return plan, store, [check_block(b, plan, store)["ids"] for b in plan.blocks]


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr(validate, "IDS_PER_BUCKET", 250)  # 900 ids: 4 buckets


def test_block_summaries_hold_no_ids(tmp_path):
    summaries = _dataset(tmp_path / "d", np.arange(900))[2]
    assert summaries[0] == {"null": False, "dup": None, "lo": 0, "hi": 99}
    assert len(summaries) == 9 and all(len(s) == 4 for s in summaries)


@pytest.mark.parametrize("ids", [np.arange(5, 105), np.arange(5, 105)[::-1],
                                 np.r_[np.arange(5, 55), 54, np.arange(55, 104)],
                                 np.arange(5, 105, dtype=np.uint32), np.array([7]),
                                 np.array([3, 9, 9, 10]), np.array([], dtype=np.int64),
                                 np.arange(5.0, 105.0), np.array(["a", "b", "b"], dtype=object)])
def test_a_block_summary_is_that_of_its_sorted_unique_ids(ids):
    """Increasing integer ids take a shortcut (no sort); the summary is the same."""
    def py(value):
        return value.item() if hasattr(value, "item") else value

    values, counts = np.unique(ids, return_counts=True)
    repeated = values[counts > 1]
    expected = {"null": False, "lo": py(values[0]) if values.size else None,
                "hi": py(values[-1]) if values.size else None,
                "dup": (py(repeated[0]), int(counts[counts > 1][0])) if repeated.size else None}
    got = summarize_ids(ids)
    assert got == expected and all(type(got[k]) is type(expected[k]) for k in expected)


@pytest.mark.parametrize(("order", "path"), [("increasing", "ranges"), ("shuffled", "buckets")])
def test_unique_ids_pass_in_any_order(tmp_path, small_buckets, order, path):
    ids = np.arange(10_000, 10_900)
    if order == "shuffled":  # every block's range overlaps the others: the buckets decide
        ids = np.random.default_rng(1).permutation(ids)
    assert validate.check_ids(*_dataset(tmp_path / "d", ids)) == path


def test_the_buckets_read_only_their_share_of_the_ids(tmp_path, small_buckets, monkeypatch):
    """The bucket path really runs, once per bucket (4 for 900 ids at 250 a bucket)."""
    seen = []
    real = validate.duplicate_ids_in_bucket

    def spy(bucket, buckets, plan, store):
        seen.append((bucket, buckets))
        return real(bucket, buckets, plan, store)

    monkeypatch.setattr(validate, "duplicate_ids_in_bucket", spy)
    ids = np.random.default_rng(4).permutation(900)
    assert validate.check_ids(*_dataset(tmp_path / "d", ids)) == "buckets"
    assert sorted(seen) == [(b, 4) for b in range(4)]


@pytest.mark.parametrize(("first", "second"), [(5, 700), (99, 100), (0, 899)])
def test_a_repeat_across_blocks_is_found_and_counted(tmp_path, small_buckets, first, second):
    ids = np.random.default_rng(2).permutation(900).astype(np.int64)
    ids[second] = ids[first]
    with pytest.raises(InputError, match=rf"duplicated values \(e.g. {ids[first]} appears 2 ") \
            as refused:
        validate.check_ids(*_dataset(tmp_path / "d", ids))
    assert refused.value.parameter == "id_column"


def test_increasing_ids_with_a_repeat_at_a_block_boundary(tmp_path):
    ids = np.arange(900)
    ids[100] = 99  # the last id of block 0 starts block 1: the ranges touch
    with pytest.raises(InputError, match=r"e.g. 99 appears 2 times"):
        validate.check_ids(*_dataset(tmp_path / "d", ids))


def test_string_ids(tmp_path, small_buckets):
    ids = np.array([f"user-{i:04d}" for i in np.random.default_rng(3).permutation(900)],
                   dtype=object)
    assert validate.check_ids(*_dataset(tmp_path / "d", ids)) == "buckets"
    ids[450] = ids[7]
    with pytest.raises(InputError, match=rf"e.g. '{ids[7]}' appears 2 times"):
        validate.check_ids(*_dataset(tmp_path / "e", ids))
