"""The id uniqueness check never gathers the ids: block summaries, then hashed buckets."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks import stages
from spectral_pipeline.tasks.io import InputError, check_block, plan_dataset
from spectral_pipeline.tasks.storage import Store


def _dataset(folder, ids, files=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, chunk in enumerate(np.array_split(np.asarray(ids), files)):
        pq.write_table(pa.table({"id": chunk, "x": rng.normal(size=chunk.size)}),
                       folder / f"part-{i}.parquet", row_group_size=100)
    plan = plan_dataset(str(folder), ["x"], "id", block_size=100)
    store = Store(str(folder))
    return plan, store, [check_block(b, plan, store)["ids"] for b in plan.blocks]


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr(stages, "IDS_PER_BUCKET", 250)  # 900 ids: 4 buckets


def test_block_summaries_hold_no_ids(tmp_path):
    summaries = _dataset(tmp_path / "d", np.arange(900))[2]
    assert summaries[0] == {"null": False, "dup": None, "lo": 0, "hi": 99}
    assert len(summaries) == 9 and all(len(s) == 4 for s in summaries)


@pytest.mark.parametrize("order", ["increasing", "shuffled"])
def test_unique_ids_pass_in_any_order(tmp_path, small_buckets, order):
    ids = np.arange(10_000, 10_900)
    if order == "shuffled":  # every block's range overlaps the others: the buckets decide
        ids = np.random.default_rng(1).permutation(ids)
    stages._check_ids(*_dataset(tmp_path / "d", ids))


@pytest.mark.parametrize(("first", "second"), [(5, 700), (99, 100), (0, 899)])
def test_a_repeat_across_blocks_is_found_and_counted(tmp_path, small_buckets, first, second):
    ids = np.random.default_rng(2).permutation(900).astype(np.int64)
    ids[second] = ids[first]
    with pytest.raises(InputError, match=rf"duplicated values \(e.g. {ids[first]} appears 2 "):
        stages._check_ids(*_dataset(tmp_path / "d", ids))


def test_increasing_ids_with_a_repeat_at_a_block_boundary(tmp_path):
    ids = np.arange(900)
    ids[100] = 99  # the last id of block 0 starts block 1: the ranges touch
    with pytest.raises(InputError, match=r"e.g. 99 appears 2 times"):
        stages._check_ids(*_dataset(tmp_path / "d", ids))


def test_string_ids(tmp_path, small_buckets):
    ids = np.array([f"user-{i:04d}" for i in np.random.default_rng(3).permutation(900)],
                   dtype=object)
    stages._check_ids(*_dataset(tmp_path / "d", ids))
    ids[450] = ids[7]
    with pytest.raises(InputError, match=rf"e.g. '{ids[7]}' appears 2 times"):
        stages._check_ids(*_dataset(tmp_path / "e", ids))
