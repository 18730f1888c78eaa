"""Parquet in, Parquet out: the dataset plan, block reads and atomic checkpoints.

Everything on disk is Parquet or JSON (nothing is unpickled). A checkpoint file carries its
provenance in the Parquet key-value metadata (``spectral`` → JSON: format version, stage, key,
shape) and is written to a temporary name, fsynced, then ``os.replace``d into place, so a
reader sees either the previous complete file or the new complete file. A reader validates the
metadata and row count and treats a mismatching or unreadable file as missing (with a warning
naming it), so a torn or foreign file is recomputed, never trusted.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spectral_core.blocks import compute_dtype

#: Bumped whenever the layout or meaning of checkpoint files changes.
FORMAT_VERSION = 1
_FORMAT_FILE = "spectral-checkpoints.json"
_META_KEY = b"spectral"


class InputError(ValueError):
    """The input dataset cannot be clustered as given (the message says why and where)."""


class CheckpointWarning(UserWarning):
    """A checkpoint file was unreadable or inconsistent and will be recomputed."""


# --------------------------------------------------------------------------------------------
# The dataset plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One unit of block work: consecutive row groups of one file, at a global row offset."""

    index: int
    path: str
    row_groups: list[int]
    start: int
    rows: int


@dataclass(frozen=True)
class DatasetPlan:
    """Where the rows are. JSON-able, so tasks can pass it around and Prefect can cache it."""

    files: list[str]
    features: list[str]
    id_column: str | None
    blocks: list[Block]
    n_rows: int
    fingerprint: str

    @property
    def n_features(self) -> int:
        return len(self.features)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetPlan:
        d = dict(d)
        d["blocks"] = [Block(**b) for b in d["blocks"]]
        return cls(**d)


def resolve_input(source: str) -> list[str]:
    """The Parquet files of a file, a directory (recursively) or a glob, sorted."""
    if any(ch in source for ch in "*?["):
        files = sorted(p for p in globlib.glob(source, recursive=True) if os.path.isfile(p))
        if not files:
            raise InputError(f"The input glob {source!r} matches no files.")
        return [os.path.abspath(p) for p in files]
    path = Path(source)
    if not path.exists():
        raise InputError(f"The input {source!r} does not exist.")
    if path.is_file():
        return [str(path.resolve())]
    files = sorted(str(p.resolve()) for p in path.rglob("*.parquet") if p.is_file()
                   and not p.name.startswith((".", "_")))
    if not files:
        raise InputError(f"The input directory {source!r} contains no .parquet files.")
    return files


def plan_dataset(
    source: str,
    features: list[str] | None = None,
    id_column: str | None = None,
    block_size: int = 65_536,
) -> DatasetPlan:
    """Read only the footers: files, schema agreement, feature columns, blocks, fingerprint.

    A block is a run of consecutive row groups of one file holding about ``block_size`` rows
    (a row group larger than that is one block: Parquet cannot read part of a row group).
    """
    files = resolve_input(source)
    schemas, metas = [], []
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"The input file {f!r} is not a readable Parquet file: {exc}") from exc
        schemas.append(pf.schema_arrow)
        metas.append(pf.metadata)
    first = schemas[0]
    for f, schema in zip(files[1:], schemas[1:], strict=True):
        if not schema.equals(first, check_metadata=False):
            diff = _schema_difference(first, schema)
            raise InputError(
                f"The input files disagree on their schema: {files[0]!r} and {f!r} differ "
                f"({diff}). Write all files with the same columns and types."
            )
    names = first.names
    if id_column is not None and id_column not in names:
        raise InputError(f"The id column {id_column!r} is not in the input (columns: {names}).")
    if features:
        missing = [c for c in features if c not in names]
        if missing:
            raise InputError(f"The feature columns {missing} are not in the input (columns: "
                             f"{names}).")
        bad = [c for c in features if not _is_numeric(first.field(c).type)]
        if bad:
            raise InputError(f"The feature columns {bad} are not numeric (types: "
                             f"{[str(first.field(c).type) for c in bad]}).")
        cols = list(features)
    else:
        cols = [c for c in names if c != id_column and _is_numeric(first.field(c).type)]
        if not cols:
            raise InputError(f"The input has no numeric feature columns (columns: {names}).")
    blocks, start = [], 0
    for f, meta in zip(files, metas, strict=True):
        groups, rows = [], 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if not n:
                continue
            if groups and rows + n > block_size:
                blocks.append(Block(len(blocks), f, groups, start, rows))
                start, groups, rows = start + rows, [], 0
            groups.append(g)
            rows += n
        if groups:
            blocks.append(Block(len(blocks), f, groups, start, rows))
            start += rows
    if start == 0:
        raise InputError(f"The input {source!r} has no rows.")
    # The fingerprint hashes the bytes of every file: footers and sizes alone miss a rewrite
    # that keeps the shape (rows reordered, one value corrected), which would silently reuse
    # checkpoints of other data. One sequential read at ~1 GB/s, once per run.
    digest = hashlib.blake2b(digest_size=16)
    for f in files:
        digest.update(f.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(8 * 2**20):
                digest.update(chunk)
    digest.update(json.dumps([cols, id_column, block_size]).encode())
    return DatasetPlan(files, cols, id_column, blocks, start, digest.hexdigest()[:24])


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


def read_block(plan: DatasetPlan, block: Block, *, with_ids: bool = False):
    """The feature matrix (rows, d) of one block as float64 (float32 if every column is)."""
    columns = list(plan.features)
    if with_ids and plan.id_column:
        columns.append(plan.id_column)
    table = pq.ParquetFile(block.path).read_row_groups(block.row_groups, columns=columns)
    X = _table_to_matrix(table, plan.features)
    if not with_ids:
        return X
    ids = table.column(plan.id_column).to_numpy() if plan.id_column else \
        np.arange(block.start, block.start + block.rows)
    return X, ids


def _table_to_matrix(table: pa.Table, features: list[str]) -> np.ndarray:
    cols = [table.column(c) for c in features]
    dtype = compute_dtype(c.type.to_pandas_dtype() for c in cols)
    out = np.empty((table.num_rows, len(cols)), dtype=dtype)
    for j, c in enumerate(cols):
        if c.null_count:
            out[:, j] = c.to_numpy(zero_copy_only=False).astype(dtype)  # nulls → NaN
            out[np.asarray(c.is_null()), j] = np.nan
        else:
            out[:, j] = c.to_numpy(zero_copy_only=False)
    return out


def check_block(block: Block, plan: DatasetPlan) -> dict[str, Any]:
    """Validation pass for one block: first non-finite value, minimum, rows read, the ids."""
    X, ids = read_block(plan, block, with_ids=True)
    if X.shape[0] != block.rows:
        return {"block": block.index, "error": f"expected {block.rows} rows, read {X.shape[0]}"}
    finite = np.isfinite(X)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        local = int(r)
        return {"block": block.index, "bad_row": block.start + local, "file_row":
                _row_in_file(plan, block) + local, "column": plan.features[int(c)],
                "value": float(X[r, c])}
    out = {"block": block.index, "min": float(X.min()), "rows": int(X.shape[0])}
    if plan.id_column:
        out["ids"] = ids
    return out


def _row_in_file(plan: DatasetPlan, block: Block) -> int:
    return sum(b.rows for b in plan.blocks if b.path == block.path and b.index < block.index)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def stage_key(*parts: Any) -> str:
    """A short hash of JSON-able parts (with the format version), used as a folder name."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_checkpoint_root(root: str) -> Path:
    """Create the checkpoint root, or refuse one written by an incompatible format."""
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / _FORMAT_FILE
    if marker.exists():
        try:
            version = json.loads(marker.read_text())["format_version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"The checkpoint directory {root!r} has an unreadable "
                             f"{_FORMAT_FILE}: {exc}. Use another checkpoint directory.") from exc
        if version != FORMAT_VERSION:
            raise InputError(
                f"The checkpoint directory {root!r} was written by checkpoint format "
                f"{version}; this version reads format {FORMAT_VERSION}. Use another checkpoint "
                "directory (or delete this one)."
            )
    else:
        write_text_atomic(marker, json.dumps({"format_version": FORMAT_VERSION}))
    return path


def _write_atomic(path: Path | str, write: Any) -> None:
    """``write(fh)`` into a temporary name beside ``path``, fsync, then rename over ``path``.

    A reader sees the old file or the new one, never a torn one; on failure (a full disk)
    the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: Path | str, text: str) -> None:
    _write_atomic(path, lambda fh: fh.write(text.encode()))


def write_table_atomic(path: Path | str, table: pa.Table) -> None:
    """Write a Parquet file so that ``path`` is either absent, the old file or the new one."""
    _write_atomic(path, lambda fh: pq.write_table(table, fh, write_page_checksum=True))


def arrays_to_table(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> pa.Table:
    """Columns of equal length (1-D arrays, or 2-D arrays split into ``name_j`` columns)."""
    cols: dict[str, pa.Array] = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.ndim == 1:
            cols[name] = pa.array(a)
        else:
            for j in range(a.shape[1]):
                cols[f"{name}_{j}"] = pa.array(np.ascontiguousarray(a[:, j]))
    table = pa.table(cols) if cols else pa.table({"_": pa.array([], pa.int8())})
    return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write_arrays(path: Path | str, arrays: dict[str, np.ndarray], **meta: Any) -> None:
    rows = {np.asarray(a).shape[0] for a in arrays.values()}
    if len(rows) > 1:
        raise ValueError(f"Arrays written to {path} have different lengths: {rows}")
    meta = {"format_version": FORMAT_VERSION, "rows": rows.pop() if rows else 0, **meta}
    write_table_atomic(path, arrays_to_table(arrays, meta))


def read_arrays(
    path: Path | str, *, expect: dict[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Arrays and metadata of a checkpoint file, or None if it is absent or not valid.

    ``expect`` lists metadata values that must match (stage key, rows, ...). Anything else
    wrong -- unreadable bytes, a bad checksum, a row count that disagrees -- is reported as a
    :class:`CheckpointWarning` naming the file, and the file is treated as missing.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        problem = None
        if meta.get("format_version") != FORMAT_VERSION:
            problem = f"format {meta.get('format_version')} != {FORMAT_VERSION}"
        elif meta.get("rows") != table.num_rows:
            problem = f"{table.num_rows} rows, metadata says {meta.get('rows')}"
        else:
            for k, v in (expect or {}).items():
                if meta.get(k) != v:
                    problem = f"{k}={meta.get(k)!r}, expected {v!r}"
                    break
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem:
        warnings.warn(f"Checkpoint {str(path)!r} is not valid ({problem}); it will be "
                      "recomputed.", CheckpointWarning, stacklevel=2)
        return None
    return _columns_to_arrays(table), meta


def _columns_to_arrays(table: pa.Table) -> dict[str, np.ndarray]:
    groups: dict[str, list[tuple[int, str]]] = {}
    singles: dict[str, np.ndarray] = {}
    for name in table.column_names:
        base, _, idx = name.rpartition("_")
        if base and idx.isdigit():
            groups.setdefault(base, []).append((int(idx), name))
        else:
            singles[name] = table.column(name).to_numpy()
    for base, members in groups.items():
        members.sort()
        singles[base] = np.column_stack(
            [table.column(n).to_numpy() for _, n in members]
        ) if table.num_rows else np.empty((0, len(members)))
    return singles
