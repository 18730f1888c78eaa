"""The dataset plan (tasks/dataset.py), block reads and checkpoints (tasks/checkpoints.py),
on real Parquet files in tmp_path."""

import json
import math
import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks import columns as columns_module
from spectral_pipeline.tasks.checkpoints import (
    FORMAT_VERSION,
    MANIFEST,
    CheckpointWarning,
    CorruptCheckpoint,
    Manifest,
    Part,
    arrays_to_table,
    check_checkpoint_root,
    check_part,
    commit_manifest,
    read_manifest,
    read_part,
    retract_manifest,
    write_part,
)
from spectral_pipeline.tasks.dataset import (
    block_ids,
    check_block,
    plan_dataset,
    read_block,
    resolve_input,
)
from spectral_pipeline.tasks.errors import InputError
from spectral_pipeline.tasks.job import Block, DatasetPlan
from spectral_pipeline.tasks.storage import Store, open_store


def _write(path: Path, columns: dict, row_group_size: int | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return str(path.resolve())


def _xy(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.random(n), "y": rng.random(n)}


# --------------------------------------------------------------------------------------------
# resolve_input
# --------------------------------------------------------------------------------------------


def test_resolve_input_single_file(tmp_path):
    f = _write(tmp_path / "data.parquet", _xy(3))
    # A file is taken as given, whatever its extension says.
    g = _write(tmp_path / "data.pq", _xy(3))

    assert resolve_input(str(tmp_path / "data.parquet")) == [f]
    assert resolve_input(str(tmp_path / "data.pq")) == [g]


def test_resolve_input_directory_is_recursive_and_skips_hidden_and_underscore_files(tmp_path):
    d = tmp_path / "ds"
    b = _write(d / "b.parquet", _xy(3))
    a = _write(d / "sub" / "deeper" / "a.parquet", _xy(3))
    c = _write(d / "sub" / "c.parquet", _xy(3))
    _write(d / ".b.parquet.1234.tmp.parquet", _xy(3))
    _write(d / "_metadata.parquet", _xy(3))
    _write(d / "sub" / "_common.parquet", _xy(3))
    (d / "notes.txt").write_text("not parquet")
    (d / "_SUCCESS").write_text("")

    assert resolve_input(str(d)) == sorted([a, b, c])


def test_resolve_input_glob_matches_files_only_sorted_and_absolute(tmp_path, monkeypatch):
    b = _write(tmp_path / "part-1.parquet", _xy(3))
    a = _write(tmp_path / "part-0.parquet", _xy(3))
    _write(tmp_path / "other.parquet", _xy(3))
    (tmp_path / "part-dir.parquet").mkdir()  # a directory the glob also matches
    deep = _write(tmp_path / "nested" / "part-2.parquet", _xy(3))
    monkeypatch.chdir(tmp_path)

    assert resolve_input("part-*.parquet") == [a, b]
    assert resolve_input(str(tmp_path / "**" / "part-*.parquet")) == [deep, a, b]


def test_resolve_input_missing_path_raises(tmp_path):
    missing = str(tmp_path / "nope.parquet")

    with pytest.raises(InputError, match=rf"The input {re.escape(repr(missing))} does not exist"):
        resolve_input(missing)


def test_resolve_input_directory_without_parquet_files_raises(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "data.csv").write_text("x\n1\n")
    _write(d / "_hidden.parquet", _xy(3))

    with pytest.raises(InputError, match=rf"directory {re.escape(repr(str(d)))} contains no "
                       r"\.parquet files"):
        resolve_input(str(d))


def test_resolve_input_glob_matching_nothing_raises(tmp_path):
    _write(tmp_path / "a.parquet", _xy(3))
    pattern = str(tmp_path / "*.csv")

    with pytest.raises(InputError, match=rf"glob {re.escape(repr(pattern))} matches no files"):
        resolve_input(pattern)


def test_plan_dataset_missing_input_raises(tmp_path):
    missing = str(tmp_path / "nothing")

    with pytest.raises(InputError, match=rf"{re.escape(repr(missing))} does not exist"):
        plan_dataset(missing)


def test_plan_dataset_unreadable_file_raises_naming_it(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all")

    with pytest.raises(InputError, match=rf"{re.escape(repr(str(bad.resolve())))} is not a "
                       r"readable Parquet file"):
        plan_dataset(str(bad))


# --------------------------------------------------------------------------------------------
# plan_dataset: columns and schemas
# --------------------------------------------------------------------------------------------


def test_plan_without_numeric_columns_raises(tmp_path):
    f = _write(tmp_path / "s.parquet", {"name": ["a", "b"], "city": ["x", "y"]})

    with pytest.raises(InputError, match=r"no numeric feature columns \(columns: \['name', "
                       r"'city'\]\)"):
        plan_dataset(f)


def test_plan_only_numeric_column_is_the_id_raises(tmp_path):
    f = _write(tmp_path / "s.parquet", {"id": [1, 2], "name": ["a", "b"]})

    with pytest.raises(InputError, match=r"no numeric feature columns"):
        plan_dataset(f, id_column="id")


def test_plan_missing_feature_column_raises(tmp_path):
    f = _write(tmp_path / "a.parquet", _xy(3))

    with pytest.raises(InputError, match=r"feature columns \['z'\] are not in the input "
                       r"\(columns: \['x', 'y'\]\)"):
        plan_dataset(f, features=["x", "z"])


def test_plan_non_numeric_feature_column_raises(tmp_path):
    f = _write(tmp_path / "a.parquet", {"x": [1.0, 2.0], "label": ["a", "b"]})

    with pytest.raises(InputError, match=r"feature columns \['label'\] are not numeric \(types: "
                       r"\['string'\]\)"):
        plan_dataset(f, features=["x", "label"])


def test_plan_missing_id_column_raises(tmp_path):
    f = _write(tmp_path / "a.parquet", _xy(3))

    with pytest.raises(InputError, match=r"id column 'key' is not in the input \(columns: "
                       r"\['x', 'y'\]\)"):
        plan_dataset(f, id_column="key")


@pytest.mark.parametrize(
    ("second", "difference"),
    [
        ({"x": [1.0, 2.0], "z": [1.0, 2.0]}, r"columns \['x', 'y'\] vs \['x', 'z'\]"),
        ({"x": [1.0, 2.0], "y": [1, 2]}, r"column 'y' is double vs int64"),
    ],
    ids=["different-names", "int64-vs-float64"],
)
def test_plan_schema_disagreement_names_both_files(tmp_path, second, difference):
    a = _write(tmp_path / "a.parquet", {"x": [1.0, 2.0], "y": [3.0, 4.0]})
    b = _write(tmp_path / "b.parquet", second)

    with pytest.raises(InputError, match=rf"disagree on their schema: {re.escape(repr(a))} and "
                       rf"{re.escape(repr(b))} differ \({difference}\)\. Write all files with "
                       r"the same columns and types"):
        plan_dataset(str(tmp_path))


def test_plan_default_features_are_numeric_columns_except_id(tmp_path):
    f = _write(tmp_path / "a.parquet", {
        "id": np.array([10, 11, 12], dtype=np.int64),
        "a": np.array([1.0, 2.0, 3.0]),
        "name": ["p", "q", "r"],
        "b": np.array([1, 2, 3], dtype=np.int32),
        "flag": [True, False, True],
        "c": np.array([0.5, 0.5, 0.5], dtype=np.float32),
    })

    with_id = plan_dataset(f, id_column="id")
    without_id = plan_dataset(f)

    assert with_id.features == ["a", "b", "flag", "c"]
    assert with_id.id_column == "id"
    assert with_id.n_features == 4
    assert without_id.features == ["id", "a", "b", "flag", "c"]


def test_plan_named_features_keep_the_given_order(tmp_path):
    f = _write(tmp_path / "a.parquet", {"a": [1.0], "b": [2.0], "c": [3.0]})

    assert plan_dataset(f, features=["c", "a"]).features == ["c", "a"]


# --------------------------------------------------------------------------------------------
# plan_dataset: blocks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block_size", "expected"),
    [
        # Row groups: a = 4, 4, 2 rows; b = 4, 1 rows.
        (8, [("a", [0, 1], 0, 8), ("a", [2], 8, 2), ("b", [0, 1], 10, 5)]),
        (9, [("a", [0, 1], 0, 8), ("a", [2], 8, 2), ("b", [0, 1], 10, 5)]),
        (10, [("a", [0, 1, 2], 0, 10), ("b", [0, 1], 10, 5)]),
        (6, [("a", [0], 0, 4), ("a", [1, 2], 4, 6), ("b", [0, 1], 10, 5)]),
        # A row group larger than block_size is a block of its own.
        (3, [("a", [0], 0, 4), ("a", [1], 4, 4), ("a", [2], 8, 2), ("b", [0], 10, 4),
             ("b", [1], 14, 1)]),
        (1000, [("a", [0, 1, 2], 0, 10), ("b", [0, 1], 10, 5)]),
    ],
)
def test_plan_blocks_group_row_groups_within_one_file(tmp_path, block_size, expected):
    files = {"a": _write(tmp_path / "a.parquet", _xy(10, 1), row_group_size=4),
             "b": _write(tmp_path / "b.parquet", _xy(5, 2), row_group_size=4)}

    plan = plan_dataset(str(tmp_path), block_size=block_size)

    assert [f.path for f in plan.files] == [files["a"], files["b"]]
    index = {"a": 0, "b": 1}
    assert plan.blocks == [Block(index=i, file=index[name], row_groups=groups, start=start,
                                 rows=rows)
                           for i, (name, groups, start, rows) in enumerate(expected)]
    assert plan.n_rows == 15
    # Contiguous global offsets that add up to n_rows.
    starts = [b.start for b in plan.blocks]
    assert starts == list(np.cumsum([0] + [b.rows for b in plan.blocks])[:-1])
    assert sum(b.rows for b in plan.blocks) == plan.n_rows
    assert all(b.rows <= block_size or len(b.row_groups) == 1 for b in plan.blocks)


def _write_empty(path: Path, how: str) -> str:
    schema = pa.schema([("x", pa.float64()), ("y", pa.float64())])
    if how == "empty-row-group":
        pq.write_table(schema.empty_table(), path)
    else:  # a writer opened and closed: no row group at all
        pq.ParquetWriter(path, schema).close()
    return str(path.resolve())


@pytest.mark.parametrize("how", ["empty-row-group", "no-row-group"])
def test_plan_skips_zero_row_file(tmp_path, how):
    a = _write(tmp_path / "a.parquet", _xy(5, 1), row_group_size=2)
    empty = _write_empty(tmp_path / "b.parquet", how)
    c = _write(tmp_path / "c.parquet", _xy(3, 2))

    plan = plan_dataset(str(tmp_path), block_size=4)

    assert [f.path for f in plan.files] == [a, empty, c]
    assert [(plan.path(b), b.row_groups, b.start, b.rows) for b in plan.blocks] == [
        (a, [0, 1], 0, 4), (a, [2], 4, 1), (c, [0], 5, 3)]
    assert [b.index for b in plan.blocks] == [0, 1, 2]
    assert plan.n_rows == 8


def test_plan_of_only_empty_files_raises(tmp_path):
    _write_empty(tmp_path / "a.parquet", "empty-row-group")
    _write_empty(tmp_path / "b.parquet", "no-row-group")

    with pytest.raises(InputError, match=rf"The input {re.escape(repr(str(tmp_path)))} has no "
                       r"rows"):
        plan_dataset(str(tmp_path))


def test_plan_round_trips_through_json(tmp_path):
    _write(tmp_path / "a.parquet", _xy(10), row_group_size=3)
    plan = plan_dataset(str(tmp_path), block_size=6)

    again = DatasetPlan.model_validate_json(plan.model_dump_json())

    assert again == plan
    assert isinstance(again.blocks[0], Block)


# --------------------------------------------------------------------------------------------
# plan_dataset: fingerprint
# --------------------------------------------------------------------------------------------


def test_fingerprint_is_stable_when_nothing_changes(tmp_path):
    _write(tmp_path / "a.parquet", _xy(50, 1), row_group_size=20)
    _write(tmp_path / "b.parquet", _xy(30, 2))

    first = plan_dataset(str(tmp_path))
    second = plan_dataset(str(tmp_path))

    assert first.fingerprint == second.fingerprint
    assert re.fullmatch(r"[0-9a-f]{24}", first.fingerprint)


def test_fingerprint_depends_on_the_plan_parameters(tmp_path):
    _write(tmp_path / "a.parquet", _xy(50, 1))

    base = plan_dataset(str(tmp_path)).fingerprint

    assert plan_dataset(str(tmp_path), features=["x"]).fingerprint != base
    assert plan_dataset(str(tmp_path), block_size=10).fingerprint != base


def _rewritten(old: dict, rewrite: str) -> dict:
    if rewrite == "new-values":
        return _xy(200, 3)
    if rewrite == "same-values-reordered":
        return {k: v[::-1].copy() for k, v in old.items()}
    # One value corrected, inside the column's range (min and max unchanged).
    x = old["x"].copy()
    i = int(np.argsort(x)[100])
    x[i] = (x[i] + np.sort(x)[101]) / 2
    return {"x": x, "y": old["y"]}


@pytest.mark.parametrize("rewrite", ["new-values", "same-values-reordered", "one-value-changed"])
def test_fingerprint_changes_when_a_file_is_rewritten_with_the_same_shape(tmp_path, rewrite):
    # Row order matters as much as values: labels are written in dataset row order, so a
    # reordered file must not reuse the old checkpoints.
    _write(tmp_path / "a.parquet", _xy(40, 1))
    b = tmp_path / "b.parquet"
    old = _xy(200, 2)
    _write(b, old)
    before = plan_dataset(str(tmp_path))

    _write(b, _rewritten(old, rewrite))
    after = plan_dataset(str(tmp_path))

    assert not np.array_equal(pq.read_table(b)["x"].to_numpy(), old["x"])  # the data did change
    assert (after.n_rows, after.blocks) == (before.n_rows, before.blocks)
    assert after.fingerprint != before.fingerprint


# --------------------------------------------------------------------------------------------
# read_block
# --------------------------------------------------------------------------------------------


def test_read_block_returns_rows_in_order_as_float64(tmp_path):
    rng = np.random.default_rng(5)
    data = {name: {"a": rng.random(n).astype(np.float32), "b": rng.integers(-5, 5, n)}
            for name, n in [("p", 11), ("q", 7)]}
    for name, cols in data.items():
        _write(tmp_path / f"{name}.parquet", cols, row_group_size=3)
    plan = plan_dataset(str(tmp_path), block_size=5)
    expected = np.vstack([np.column_stack([cols["a"].astype(np.float64), cols["b"]])
                          for cols in data.values()])

    parts = [read_block(plan, b, open_store(plan.input_url)) for b in plan.blocks]

    assert len(plan.blocks) > 2
    assert all(p.dtype == np.float64 for p in parts)
    assert [p.shape for p in parts] == [(b.rows, 2) for b in plan.blocks]
    np.testing.assert_array_equal(np.vstack(parts), expected)
    for b, p in zip(plan.blocks, parts, strict=True):
        np.testing.assert_array_equal(p, expected[b.start:b.start + b.rows])


@pytest.mark.parametrize("d", [1, 3, 70])
def test_read_block_interleaves_a_block_larger_than_one_tile(tmp_path, d):
    """A block is interleaved a tile of rows at a time: every tile, the last one short."""
    rng = np.random.default_rng(d)
    n = 3 * (columns_module.INTERLEAVE_BYTES // (8 * d)) + 1001
    columns = {f"c{j}": rng.normal(size=n) for j in range(d)}
    nulls = np.zeros(n, bool)
    nulls[-3] = True
    arrays = {**columns, "c0": pa.array(columns["c0"], mask=nulls)}
    f = _write(tmp_path / "a.parquet", arrays)
    plan = plan_dataset(f, block_size=n)
    expected = np.column_stack(list(columns.values()))
    expected[-3, 0] = np.nan

    X = read_block(plan, plan.blocks[0], open_store(plan.input_url))

    assert len(plan.blocks) == 1 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, expected)


def test_read_block_is_float32_when_every_feature_is_float32(tmp_path):
    x = np.array([1.5, 2.5, 3.5], dtype=np.float32)
    y = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    f = _write(tmp_path / "a.parquet", {"x": x, "y": y, "id": [7, 8, 9],
                                        "z": np.array([1.0, 2.0, 3.0])})

    plan32 = plan_dataset(f, features=["y", "x"], id_column="id")
    X32 = read_block(plan32, plan32.blocks[0], open_store(plan32.input_url))
    plan64 = plan_dataset(f, features=["x", "z"])
    X64 = read_block(plan64, plan64.blocks[0], open_store(plan64.input_url))

    assert X32.dtype == np.float32
    np.testing.assert_array_equal(X32, np.column_stack([y, x]))
    assert _rows_and_ids(plan32, plan32.blocks[0])[1] == [7, 8, 9]
    assert X64.dtype == np.float64


def _rows_and_ids(plan, block):
    store = open_store(plan.input_url)
    return read_block(plan, block, store), block_ids(plan, block, store).to_pylist()


def test_block_ids_from_the_id_column(tmp_path):
    _write(tmp_path / "a.parquet", {"key": ["r0", "r1", "r2", "r3", "r4"],
                                    "x": np.arange(5.0)}, row_group_size=2)
    _write(tmp_path / "b.parquet", {"key": ["s0", "s1", "s2"], "x": np.arange(5.0, 8.0)})
    plan = plan_dataset(str(tmp_path), id_column="key", block_size=2)

    got = [_rows_and_ids(plan, b) for b in plan.blocks]

    assert plan.features == ["x"]
    assert [list(ids) for _, ids in got] == [["r0", "r1"], ["r2", "r3"], ["r4"], ["s0", "s1", "s2"]]
    np.testing.assert_array_equal(np.vstack([X for X, _ in got]).ravel(), np.arange(8.0))


def test_block_ids_are_global_row_numbers_without_id_column(tmp_path):
    _write(tmp_path / "a.parquet", {"x": np.arange(5.0)}, row_group_size=2)
    _write(tmp_path / "b.parquet", {"x": np.arange(5.0, 8.0)})
    plan = plan_dataset(str(tmp_path), block_size=2)

    got = [_rows_and_ids(plan, b) for b in plan.blocks]

    for X, ids in got:
        np.testing.assert_array_equal(ids, X.ravel())  # x holds the global row number
    np.testing.assert_array_equal(np.concatenate([ids for _, ids in got]), np.arange(8))


def test_read_block_turns_nulls_into_nan(tmp_path):
    f = _write(tmp_path / "a.parquet", {
        "f": pa.array([1.5, None, 3.5], pa.float64()),
        "i": pa.array([None, 2, 3], pa.int64()),
        "b": pa.array([True, False, None], pa.bool_()),
        "g": pa.array([None, None, 0.25], pa.float32()),
    })
    plan = plan_dataset(f)

    X = read_block(plan, plan.blocks[0], open_store(plan.input_url))

    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1.5, np.nan, 1.0, np.nan],
                                      [np.nan, 2.0, 0.0, np.nan],
                                      [3.5, 3.0, np.nan, 0.25]])


def test_read_block_float32_nulls_become_nan(tmp_path):
    f = _write(tmp_path / "a.parquet", {"x": pa.array([None, 2.0], pa.float32()),
                                        "y": pa.array([1.0, None], pa.float32())})
    plan = plan_dataset(f)

    X = read_block(plan, plan.blocks[0], open_store(plan.input_url))

    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, np.array([[np.nan, 1.0], [2.0, np.nan]], np.float32))


# --------------------------------------------------------------------------------------------
# check_block
# --------------------------------------------------------------------------------------------


def test_check_block_reports_first_non_finite_value_with_row_file_row_and_column(tmp_path):
    _write(tmp_path / "a.parquet", {"u": np.arange(6.0), "v": np.arange(6.0)})
    v = np.arange(9.0)
    w = np.arange(9.0)
    w[6] = np.inf  # row 6 of b, in its second block
    v[7] = np.nan  # later row: not the first one reported
    _write(tmp_path / "b.parquet", {"u": v, "v": w}, row_group_size=3)
    plan = plan_dataset(str(tmp_path), block_size=3)
    b_blocks = [b for b in plan.blocks if plan.path(b).endswith("b.parquet")]

    reports = [check_block(b, plan, open_store(plan.input_url)) for b in plan.blocks]

    bad = [r for r in reports if "bad_row" in r]
    assert len(bad) == 1
    assert bad[0] == {"block": b_blocks[2].index, "bad_row": 6 + 6, "file_row": 6, "column": "v",
                      "value": math.inf}
    assert b_blocks[2].rows == 3


def test_check_block_reports_nan_in_a_later_column_of_the_same_row(tmp_path):
    f = _write(tmp_path / "a.parquet", {"p": [1.0, 2.0, 3.0],
                                        "q": pa.array([4.0, None, -np.inf])})
    plan = plan_dataset(f)

    report = check_block(plan.blocks[0], plan, open_store(plan.input_url))

    assert {k: report[k] for k in ("block", "bad_row", "file_row", "column")} == {
        "block": 0, "bad_row": 1, "file_row": 1, "column": "q"}
    assert math.isnan(report["value"])


@pytest.mark.parametrize("seed", range(6))
def test_check_block_agrees_with_the_row_major_matrix(tmp_path, seed):
    """Checked column by column, a block reports what the (rows, d) matrix would: the first
    non-finite value in row order (then column order), else the matrix's minimum."""
    rng = np.random.default_rng(seed)
    n = 40
    columns = {"a": rng.normal(size=n), "b": rng.integers(-5, 5, n),
               "c": rng.normal(size=n).astype(np.float32), "d": rng.normal(size=n)}
    arrays = {k: pa.array(v) for k, v in columns.items()}
    if seed:  # seed 0 stays finite; the others get NaN, inf and nulls in random places
        for _ in range(seed):
            name = rng.choice(["a", "c", "d"])
            values = columns[name].copy()
            values[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
            columns[name] = values
            arrays[name] = pa.array(values)
        mask = np.zeros(n, bool)
        mask[rng.integers(n)] = True
        arrays["b"] = pa.array(columns["b"], mask=mask)
    f = _write(tmp_path / "a.parquet", arrays)
    plan = plan_dataset(f)
    X = read_block(plan, plan.blocks[0], open_store(plan.input_url))

    report = check_block(plan.blocks[0], plan, open_store(plan.input_url))

    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        r, c = bad[0]
        assert (report["bad_row"], report["column"]) == (r, plan.features[c])
        np.testing.assert_equal(report["value"], X[r, c])
    else:
        assert report == {"block": 0, "min": float(X.min()), "rows": n}
    assert seed == 0 or bad.size  # every seed but 0 has a non-finite value


def test_check_block_reports_the_first_column_of_a_row_with_two_bad_values(tmp_path):
    f = _write(tmp_path / "a.parquet", {"p": [1.0, np.inf, np.nan], "q": [np.nan, 2.0, 3.0],
                                        "r": [np.inf, 2.0, 3.0]})
    plan = plan_dataset(f, features=["r", "q", "p"])

    report = check_block(plan.blocks[0], plan, open_store(plan.input_url))

    assert (report["bad_row"], report["column"], report["value"]) == (0, "r", math.inf)


def test_check_block_reports_min_and_rows_when_all_finite(tmp_path):
    _write(tmp_path / "a.parquet", {"x": [3.0, 1.0, 2.0], "y": [4.0, 5.0, 6.0]})
    _write(tmp_path / "b.parquet", {"x": [0.5, 9.0], "y": [-2.5, 1.0]})
    plan = plan_dataset(str(tmp_path))

    reports = [check_block(b, plan, open_store(plan.input_url)) for b in plan.blocks]

    assert reports == [{"block": 0, "min": 1.0, "rows": 3}, {"block": 1, "min": -2.5, "rows": 2}]


# --------------------------------------------------------------------------------------------
# Checkpoint parts: write once, check from the footer, read with every checksum verified
# --------------------------------------------------------------------------------------------


def _store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "stage"))


def test_write_read_part_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "label": np.array([2, 0, 1, 1, 0], dtype=np.int64),
        "weight": rng.random(5),
        "U": rng.random((5, 12)),  # more than 10 columns: U_10 must sort after U_9
        "P32": rng.random((5, 2)).astype(np.float32),
    }
    store = _store(tmp_path)

    part = write_part(store, "out.parquet", arrays, stage="embed", key="abc123", shape=[5, 12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = check_part(store, "out.parquet", {"stage": "embed", "key": "abc123"})
        out, meta = read_part(store, part, stage="embed", expect={"key": "abc123", "rows": 5})

    assert part == checked == Part(name="out.parquet", size=(tmp_path / "stage" /
                                                             "out.parquet").stat().st_size,
                                   rows=5)
    assert meta == {"format_version": FORMAT_VERSION, "rows": 5, "stage": "embed",
                    "key": "abc123", "shape": [5, 12]}
    assert sorted(out) == sorted(arrays)
    for name, a in arrays.items():
        assert out[name].shape == a.shape
        assert out[name].dtype == a.dtype
        np.testing.assert_array_equal(out[name], a)


def test_write_part_of_different_lengths_raises_and_writes_nothing(tmp_path):
    store = _store(tmp_path)

    with pytest.raises(ValueError, match=r"have different lengths: \{2, 3\}"):
        write_part(store, "out.parquet", {"a": np.zeros(3), "b": np.zeros((2, 2))})
    assert not (tmp_path / "stage" / "out.parquet").exists()


def test_check_part_of_an_absent_file_is_none_without_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_part(_store(tmp_path), "missing.parquet", {"stage": "x"}) is None


def _checkpoint(tmp_path: Path) -> tuple[Store, Part, Path]:
    store = _store(tmp_path)
    rng = np.random.default_rng(1)
    part = write_part(store, "ck.parquet", {"a": rng.random(2000), "B": rng.random((2000, 3))},
                      stage="gram", key="k1")
    return store, part, tmp_path / "stage" / "ck.parquet"


def _invalid(path: Path, problem: str) -> str:
    return rf"Checkpoint {re.escape(repr(str(path)))} is not valid \({problem}"


def test_check_part_of_a_truncated_file_warns_and_is_none(tmp_path):
    store, _, path = _checkpoint(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])

    with pytest.warns(CheckpointWarning, match=_invalid(path, "unreadable")):
        assert check_part(store, "ck.parquet", {"stage": "gram"}) is None


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
def test_corrupt_pages_pass_the_footer_check_but_fail_the_read(tmp_path, where):
    """The footer check is cheap and trusts the pages; reading verifies every page checksum
    and names the file, so the flow can recompute it."""
    store, part, path = _checkpoint(tmp_path)
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * where)
    raw[i:i + 8] = bytes(b ^ 0xFF for b in raw[i:i + 8])
    path.write_bytes(bytes(raw))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_part(store, "ck.parquet", {"stage": "gram"}) == part
    with pytest.raises(CorruptCheckpoint, match=rf"{re.escape(repr(str(path)))} of stage "
                       r"'gram' is corrupt \(.*checksum|Checkpoint .* is corrupt"):
        read_part(store, part, stage="gram")


def test_a_part_of_another_size_than_its_manifest_says_is_corrupt(tmp_path):
    store, part, _ = _checkpoint(tmp_path)
    write_part(store, "ck.parquet", {"a": np.zeros(3)}, stage="gram", key="k1")

    with pytest.raises(CorruptCheckpoint, match=r"bytes, the manifest says"):
        read_part(store, part, stage="gram")


def test_check_part_with_mismatching_expect_warns_and_is_none(tmp_path):
    store, _, path = _checkpoint(tmp_path)

    with pytest.warns(CheckpointWarning, match=_invalid(path, "key='k1', expected 'k2'")):
        assert check_part(store, "ck.parquet", {"stage": "gram", "key": "k2"}) is None


def _forge(path, table):
    """A Parquet file as another writer left it (not through write_part)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_check_part_with_a_wrong_row_count_in_metadata_warns_and_is_none(tmp_path):
    store = _store(tmp_path)
    meta = {"format_version": FORMAT_VERSION, "rows": 7, "stage": "gram"}
    _forge(tmp_path / "stage" / "ck.parquet", arrays_to_table({"a": np.zeros(5)}, meta))

    with pytest.warns(CheckpointWarning, match=_invalid(tmp_path / "stage" / "ck.parquet",
                                                        "5 rows, metadata says 7")):
        assert check_part(store, "ck.parquet", {}) is None


def test_check_part_of_another_format_version_warns_and_is_none(tmp_path):
    store = _store(tmp_path)
    meta = {"format_version": FORMAT_VERSION + 1, "rows": 5}
    _forge(tmp_path / "stage" / "ck.parquet", arrays_to_table({"a": np.zeros(5)}, meta))

    with pytest.warns(CheckpointWarning, match=_invalid(
            tmp_path / "stage" / "ck.parquet", f"format {FORMAT_VERSION + 1} != "
            f"{FORMAT_VERSION}")):
        assert check_part(store, "ck.parquet", {}) is None


def test_check_part_of_a_foreign_parquet_file_warns_and_is_none(tmp_path):
    path = tmp_path / "stage" / "ck.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0]}), path)  # no 'spectral' metadata

    with pytest.warns(CheckpointWarning, match=_invalid(path, "unreadable")):
        assert check_part(_store(tmp_path), "ck.parquet", {}) is None


# --------------------------------------------------------------------------------------------
# Manifests: written last, create-only; one rule for "this stage is done"
# --------------------------------------------------------------------------------------------


def _manifest(key: str = "k1", **result) -> Manifest:
    return Manifest(stage="embed", key=key, format_version=FORMAT_VERSION,
                    parts=[Part(name="part-000000.parquet", size=10, rows=3)], result=result,
                    seconds=1.5)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_manifest_is_committed_once_and_read_back(tmp_path, where):
    store = _store(tmp_path) if where == "local" else \
        open_store(f"memory://manifests-{uuid.uuid4().hex}/stage")
    store.makedirs()
    assert read_manifest(store, "embed", "k1") is None

    first = commit_manifest(store, _manifest(rows=1))
    second = commit_manifest(store, _manifest(rows=2))  # another run committing the same

    assert first == second == read_manifest(store, "embed", "k1")
    assert read_manifest(store, "embed", "k2") is None  # another key is not this stage
    assert read_manifest(store, "kernel_blocks", "k1") is None
    retract_manifest(store)
    assert read_manifest(store, "embed", "k1") is None


def test_an_unreadable_manifest_is_reported_and_replaced(tmp_path):
    store = _store(tmp_path)
    store.write_bytes(MANIFEST, b"{torn")

    with pytest.warns(CheckpointWarning, match=r"_SUCCESS\.json' is not valid"):
        assert read_manifest(store, "embed", "k1") is None
    with pytest.warns(CheckpointWarning):
        committed = commit_manifest(store, _manifest())
    assert read_manifest(store, "embed", "k1") == committed


def test_parts_replace_atomically_manifests_are_create_only_no_temporary_files(tmp_path):
    """A part is written whole, replacing an earlier file of its name (an invalid leftover is
    recomputed over); only a manifest is create-only. The docs say the same."""
    store = _store(tmp_path)

    write_part(store, "t.parquet", {"a": np.array([1, 2, 3])}, stage="embed", key="k1")
    part = write_part(store, "t.parquet", {"a": np.array([4, 5])}, stage="embed", key="k1")
    assert store.create("once.json", b"1") and not store.create("once.json", b"2")

    assert sorted(os.listdir(tmp_path / "stage")) == ["once.json", "t.parquet"]
    assert read_part(store, part, stage="embed")[0]["a"].tolist() == [4, 5]
    assert (tmp_path / "stage" / "once.json").read_bytes() == b"1"


def test_a_failed_part_write_keeps_the_old_file(tmp_path):
    store = _store(tmp_path)
    write_part(store, "t.parquet", {"a": np.array([1, 2, 3])}, stage="embed", key="k1")
    before = (tmp_path / "stage" / "t.parquet").read_bytes()
    # Parquet has no type for a union: the write fails before anything reaches the store.
    union = pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()),
                                      [pa.array([1, 2]), pa.array(["a", "b"])])

    with pytest.raises(pa.ArrowNotImplementedError, match=r"Parquet schema conversion"):
        write_part(store, "t.parquet", {"u": union}, stage="embed", key="k1")

    assert (tmp_path / "stage" / "t.parquet").read_bytes() == before
    assert os.listdir(tmp_path / "stage") == ["t.parquet"]


def test_a_write_to_an_unwritable_target_raises_and_touches_nothing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a directory")

    with pytest.raises(OSError, match=r"File exists|Not a directory"):
        open_store(str(blocker)).write_bytes("t.parquet", b"x")

    assert blocker.read_text() == "a regular file, not a directory"
    assert os.listdir(tmp_path) == ["blocker"]


def test_check_checkpoint_root_creates_the_marker_and_accepts_it_again(tmp_path):
    root = tmp_path / "ckpt" / "nested"

    check_checkpoint_root(open_store(str(root)))  # planning: checks, writes nothing
    assert not (tmp_path / "ckpt").exists()
    check_checkpoint_root(open_store(str(root)), create=True)
    marker = root / "spectral-checkpoints.json"
    written = marker.read_text()
    check_checkpoint_root(open_store(str(root)), create=True)

    assert json.loads(written) == {"format_version": FORMAT_VERSION}
    assert marker.read_text() == written
    assert os.listdir(root) == ["spectral-checkpoints.json"]


def test_check_checkpoint_root_refuses_another_format_version(tmp_path):
    (tmp_path / "spectral-checkpoints.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION + 1}))

    with pytest.raises(InputError, match=rf"{re.escape(repr(str(tmp_path)))} was written by "
                       rf"checkpoint format {FORMAT_VERSION + 1}; this version reads format "
                       rf"{FORMAT_VERSION}\. Use another checkpoint directory"):
        check_checkpoint_root(open_store(str(tmp_path)))


def test_check_checkpoint_root_refuses_an_unreadable_marker(tmp_path):
    (tmp_path / "spectral-checkpoints.json").write_text("{not json")

    with pytest.raises(InputError, match=r"has an unreadable spectral-checkpoints\.json: .*Use "
                       r"another checkpoint directory"):
        check_checkpoint_root(open_store(str(tmp_path)))
