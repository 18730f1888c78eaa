"""The input dataset: which files, which columns, which blocks, and what the bytes are.

Planning reads Parquet footers only (once per file: the plan keeps what later steps need of
them, the schema's dtype included) and fingerprints the input: on an object store each file's
(size, ETag or version) from the listing; on local disk a 128-bit XXH3 hash of the bytes,
remembered in the checkpoint root by (size, mtime_ns, inode). Then the block reads every pass
makes, the one validation pass's per-block check, and the id uniqueness check's bucket reads.
Every file is reached through its :class:`~spectral_pipeline.tasks.storage.Store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from spectral_core.blocks import compute_dtype

from .columns import interleave
from .errors import InputError
from .job import Block, DatasetPlan, InputFile
from .storage import Store, open_store

_FINGERPRINTS = "input-fingerprints.json"


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def resolve_input(store: Store | str) -> list[str]:
    """The Parquet files of a file, a directory (recursively) or a glob, sorted.

    Names starting with ``_`` or ``.`` are skipped (``_SUCCESS.json``, temporary files).
    """
    store = store if isinstance(store, Store) else open_store(store, what="input")
    shown, root = store.display(), store.root
    kind, found = store.files(glob=_is_glob(root))
    if kind == "glob":
        if not found:
            raise InputError(f"The input glob {shown!r} matches no files.")
        return found
    if kind == "missing":
        raise InputError(f"The input {shown!r} does not exist.")
    if kind == "file":
        return found
    files = [p for p in found if p.endswith(".parquet")
             and not any(part.startswith((".", "_"))
                         for part in posixpath.relpath(p, root).split("/"))]
    if not files:
        raise InputError(f"The input directory {shown!r} contains no .parquet files.")
    return files


def plan_dataset(
    store: Store | str,
    features: list[str] | None = None,
    id_column: str | None = None,
    block_size: int = 65_536,
    *,
    fingerprints: Store | None = None,
    hash_files: bool = True,
) -> DatasetPlan:
    """Read only the footers: files, schema agreement, feature columns, blocks, fingerprint.

    A block is a run of consecutive row groups of one file holding about ``block_size`` rows
    (a row group larger than that is one block: Parquet cannot read part of a row group).
    ``fingerprints``: where local files' byte hashes are remembered between plans.
    ``hash_files=False``: local files are identified by (size, mtime, inode) alone (a check of
    the input that reads no data; such a fingerprint must not key checkpoints).
    """
    store = store if isinstance(store, Store) else open_store(store, what="input")
    paths = resolve_input(store)
    schemas, metas, infos = [], [], []
    for path in paths:
        try:
            pf = store.at(path).parquet()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"The input file {store.at(path).display()!r} is not a readable "
                             f"Parquet file: {exc}", "input") from exc
        schemas.append(pf.schema_arrow)
        metas.append(pf.metadata)
        infos.append(store.at(path).info())
    first = schemas[0]
    for path, schema in zip(paths[1:], schemas[1:], strict=True):
        if not schema.equals(first, check_metadata=False):
            diff = _schema_difference(first, schema)
            raise InputError(
                f"The input files disagree on their schema: {store.at(paths[0]).display()!r} and "
                f"{store.at(path).display()!r} differ ({diff}). Write all files with the same "
                "columns and types."
            )
    names = first.names
    if id_column is not None and id_column not in names:
        raise InputError(f"The id column {id_column!r} is not in the input (columns: {names}).",
                         parameter="id_column")
    if features:
        missing = [c for c in features if c not in names]
        if missing:
            raise InputError(f"The feature columns {missing} are not in the input (columns: "
                             f"{names}).", parameter="feature_columns")
        bad = [c for c in features if not _is_numeric(first.field(c).type)]
        if bad:
            raise InputError(f"The feature columns {bad} are not numeric (types: "
                             f"{[str(first.field(c).type) for c in bad]}).",
                             parameter="feature_columns")
        cols = list(features)
    else:
        cols = [c for c in names if c != id_column and _is_numeric(first.field(c).type)]
        if not cols:
            raise InputError(f"The input has no numeric feature columns (columns: {names}).")
    # What every block read returns: float32 if every feature column is, else float64.
    dtype = compute_dtype(first.field(c).type.to_pandas_dtype() for c in cols).name
    memo = _load_fingerprints(fingerprints) if store.is_local else {}
    if hash_files:
        # One thread per core: xxhash and file reads release the GIL. Reading the files is
        # the plan's main cost on a fresh local dataset: XXH3 hashes ~14 GB/s on one core
        # here (blake2b 0.8 GB/s; SHA-256 1.6 GB/s, and only with the CPU's SHA extensions).
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(paths), os.cpu_count() or 1)) as pool:
            contents = list(pool.map(lambda pi: _content_id(store, *pi, memo),
                                     zip(paths, infos, strict=True)))
    else:
        contents = [f"{info['size']}:{info['version']}" for info in infos]
    files, blocks, start = [], [], 0
    for i, (path, meta, info) in enumerate(zip(paths, metas, infos, strict=True)):
        files.append(InputFile(path=path, size=info["size"], version=info["version"],
                               rows=meta.num_rows, content=contents[i]))
        groups, rows = [], 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if not n:
                continue
            if groups and rows + n > block_size:
                blocks.append(Block(index=len(blocks), file=i, row_groups=groups, start=start,
                                    rows=rows))
                start, groups, rows = start + rows, [], 0
            groups.append(g)
            rows += n
        if groups:
            blocks.append(Block(index=len(blocks), file=i, row_groups=groups, start=start,
                                rows=rows))
            start += rows
    if start == 0:
        raise InputError(f"The input {store.display()!r} has no rows.")
    digest = hashlib.blake2b(digest_size=16)
    for f in files:
        digest.update(json.dumps([f.path, f.content]).encode())
    digest.update(json.dumps([cols, id_column, block_size]).encode())
    return DatasetPlan(input_url=store.url, files=files, features=cols, id_column=id_column,
                       dtype=dtype, blocks=blocks, n_rows=start,
                       fingerprint=digest.hexdigest()[:24])


def _content_id(store: Store, path: str, info: dict[str, Any], memo: dict[str, Any]) -> str:
    """What identifies a file's content.

    Object stores: (size, ETag or version), from the listing: a rewrite changes the ETag.
    Local disk: a hash of the bytes, since (size, mtime) can survive a rewrite that keeps the
    shape (rows reordered, one value corrected). A file whose (size, mtime_ns, inode) is
    unchanged since the last run is not read again: its hash is remembered in the checkpoint
    root (:func:`remember_fingerprints`). A miss costs one sequential read of the file.
    """
    stat = f"{info['size']}:{info['version']}"
    if not store.is_local and info["version"] is not None:
        return stat
    known = memo.get(path)  # (local files only: an object store's memo is empty)
    if store.is_local and isinstance(known, dict) and known.get("stat") == stat:
        return known["xxh3_128"]
    return _hash_bytes(store.at(path).open())  # no version from this filesystem either


def remember_fingerprints(plan: DatasetPlan, fingerprints: Store) -> None:
    """Remember the byte hashes of a plan's local files, keyed by (size, mtime_ns, inode),
    so that the next plan of unchanged files does not read them again."""
    if "://" in plan.input_url:
        return
    memo = _load_fingerprints(fingerprints)
    memo.update({f.path: {"stat": f"{f.size}:{f.version}", "xxh3_128": f.content}
                 for f in plan.files})
    _save_fingerprints(fingerprints, memo)


def _hash_bytes(fh) -> str:
    """XXH3's 128-bit hash: it tells a rewritten file from the one a checkpoint was made of
    (not an adversary's forgery, which a fingerprint does not guard against), at the speed
    memory reads the bytes."""
    digest = xxhash.xxh3_128()
    with fh:
        while chunk := fh.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _load_fingerprints(store: Store | None) -> dict[str, Any]:
    if store is None:
        return {}
    try:
        memo = json.loads(store.read_bytes(_FINGERPRINTS))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _save_fingerprints(store: Store | None, memo: dict[str, Any]) -> None:
    if store is not None:  # a cache only: a lost update costs one more read
        try:
            store.write_bytes(_FINGERPRINTS, json.dumps(memo).encode())
        except OSError:
            pass


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) \
        or pa.types.is_decimal(t)


def _schema_difference(a: pa.Schema, b: pa.Schema) -> str:
    if a.names != b.names:
        return f"columns {a.names} vs {b.names}"
    for fa, fb in zip(a, b, strict=True):
        if fa.type != fb.type:
            return f"column {fa.name!r} is {fa.type} vs {fb.type}"
    return "field metadata or nullability"


def read_block(plan: DatasetPlan, block: Block, store: Store) -> np.ndarray:
    """The feature matrix (rows, d) of one block as float64 (float32 if every column is)."""
    return _table_to_matrix(_row_groups(plan, block, store, plan.features), plan.features)


def block_ids(plan: DatasetPlan, block: Block, store: Store,
              table: pa.Table | None = None) -> pa.Array:
    """The ids of a block's rows: its id column, or global row numbers."""
    if not plan.id_column:
        return pa.array(np.arange(block.start, block.start + block.rows, dtype=np.int64))
    if table is None:
        table = _row_groups(plan, block, store, [plan.id_column])
    return table.column(plan.id_column).combine_chunks()


def _row_groups(plan: DatasetPlan, block: Block, store: Store, columns: list[str]) -> pa.Table:
    file = store.at(plan.path(block))
    with file.answering():  # the reads go through the file object, after the open
        return file.parquet().read_row_groups(block.row_groups, columns=columns)


def _table_to_matrix(table: pa.Table, features: list[str]) -> np.ndarray:
    dtype = _features_dtype(table, features)
    return interleave([_column_values(table.column(c), dtype) for c in features], dtype)


def _features_dtype(table: pa.Table, features: list[str]) -> np.dtype:
    return compute_dtype(table.column(c).type.to_pandas_dtype() for c in features)


def _column_values(column: pa.ChunkedArray, dtype: np.dtype) -> np.ndarray:
    """One column as ``dtype`` (a view when Arrow's buffer already is), nulls as NaN."""
    values = column.to_numpy(zero_copy_only=False)
    if column.null_count:
        values = values.astype(dtype)
        values[np.asarray(column.is_null())] = np.nan
        return values
    return values.astype(dtype, copy=False)


def check_block(block: Block, plan: DatasetPlan, store: Store) -> dict[str, Any]:
    """Validation pass for one block: first non-finite value, minimum, rows read, the ids.

    Column by column, as Parquet stores them: the (rows, d) matrix the other passes build is
    not needed here (building it was a third of this pass's time).
    """
    columns = [*plan.features, *([plan.id_column] if plan.id_column else [])]
    table = _row_groups(plan, block, store, columns)
    if table.num_rows != block.rows:
        return {"block": block.index, "error": f"expected {block.rows} rows, read "
                f"{table.num_rows}"}
    dtype = _features_dtype(table, plan.features)
    first_bad, lowest = None, np.inf
    for j, name in enumerate(plan.features):
        values = _column_values(table.column(name), dtype)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            if first_bad is None or row < first_bad[0]:  # the first row, then its first column
                first_bad = (row, j, values[row])
        elif values.size:
            lowest = min(lowest, values.min())
    if first_bad is not None:
        local, j, value = first_bad
        return {"block": block.index, "bad_row": block.start + local, "file_row":
                _row_in_file(plan, block) + local, "column": plan.features[j],
                "value": float(value)}
    out = {"block": block.index, "min": float(lowest), "rows": table.num_rows}
    if plan.id_column:
        out["ids"] = summarize_ids(block_ids(plan, block, store, table)
                                   .to_numpy(zero_copy_only=False))
    return out


def summarize_ids(ids: np.ndarray) -> dict[str, Any]:
    """What the uniqueness check needs from one block's ids, in O(1) space: whether one is
    missing, the first value repeated within the block (with its count), the smallest and the
    largest. The block's ids themselves never leave the worker."""
    if ids.dtype == object and any(v is None for v in ids):
        return {"null": True}
    if ids.dtype.kind in "iu" and ids.size and (ids[1:] > ids[:-1]).all():
        # Increasing integers (a row number, as most id columns are): no repeat, nothing to
        # sort (np.unique sorts: 50 times the cost of this comparison on a block).
        return {"null": False, "dup": None, "lo": ids[0].item(), "hi": ids[-1].item()}
    values, counts = np.unique(ids, return_counts=True)
    out: dict[str, Any] = {"null": False, "dup": None, "lo": None, "hi": None}
    if values.size:
        out["lo"], out["hi"] = values[0].item() if hasattr(values[0], "item") else values[0], \
            values[-1].item() if hasattr(values[-1], "item") else values[-1]
    dup = counts > 1
    if dup.any():
        first = values[dup][0]
        out["dup"] = (first.item() if hasattr(first, "item") else first, int(counts[dup][0]))
    return out


def duplicate_ids_in_bucket(bucket: int, buckets: int, plan: DatasetPlan,
                            store: Store) -> tuple[Any, int] | None:
    """The first id repeated across the dataset among the ids hashed to ``bucket`` (of
    ``buckets``), with its count, or None. Reads only the id column, block by block, and keeps
    about n / buckets ids."""
    import pandas as pd

    kept = []
    for block in plan.blocks:
        ids = block_ids(plan, block, store).to_numpy(zero_copy_only=False)
        kept.append(ids[pd.util.hash_array(ids) % np.uint64(buckets) == bucket])
    if not kept:
        return None
    values, counts = np.unique(np.concatenate(kept), return_counts=True)
    dup = counts > 1
    if not dup.any():
        return None
    first = values[dup][0]
    return (first.item() if hasattr(first, "item") else first, int(counts[dup][0]))


def _row_in_file(plan: DatasetPlan, block: Block) -> int:
    return sum(b.rows for b in plan.blocks if b.file == block.file and b.index < block.index)
