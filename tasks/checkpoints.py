"""Checkpoints: Parquet parts with their provenance, and the manifest that commits a stage.

Everything written is Parquet or JSON (nothing is unpickled). A part carries its provenance in
the Parquet key-value metadata (``spectral`` → JSON: format version, stage, key, block, rows)
and is written whole, replacing any earlier file of that name (a temporary file renamed over
it on local disk, one PUT on an object store): a reader sees the old bytes or the new ones,
never part of either. Parts are pure functions of their key, so two runs writing the same part
write the same content. A stage is complete when its manifest, ``_SUCCESS.json``, exists: it
is written last, create-only (the first run to commit wins), and lists every part with its
size and rows. Readers trust the manifest and never list directories. A stage that died
part-way checks the parts it expects from their footers alone (a few KB each) and computes
only the missing or invalid ones; a part whose pages turn out corrupt when a later stage reads
it raises :class:`CorruptCheckpoint`, and the flow recomputes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from .columns import interleave
from .errors import InputError
from .storage import Store

#: Bumped whenever the layout or meaning of checkpoint files changes.
FORMAT_VERSION = 2
MANIFEST = "_SUCCESS.json"
_FORMAT_FILE = "spectral-checkpoints.json"
_META_KEY = b"spectral"


class CheckpointWarning(UserWarning):
    """A checkpoint part was unreadable or inconsistent and will be recomputed."""


class CorruptCheckpoint(RuntimeError):
    """A committed checkpoint part cannot be read back; the flow recomputes its stage."""

    def __init__(self, store: Store, name: str, stage: str, problem: str):
        super().__init__(f"Checkpoint {store.display(name)!r} of stage {stage!r} is corrupt "
                         f"({problem}); it will be recomputed.")
        self.url, self.name, self.stage = store.display(name), name, stage

    def __reduce__(self):  # picklable from Dask workers, with its fields
        return (_corrupt, (self.args[0], self.url, self.name, self.stage))


def _corrupt(message: str, url: str, name: str, stage: str) -> CorruptCheckpoint:
    exc = CorruptCheckpoint.__new__(CorruptCheckpoint)
    RuntimeError.__init__(exc, message)
    exc.url, exc.name, exc.stage = url, name, stage
    return exc


def stage_key(*parts: Any) -> str:
    """A short hash of JSON-able parts (with the format version), used as a folder name."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_checkpoint_root(store: Store, *, create: bool = False) -> None:
    """Refuse a checkpoint root written by an incompatible format; with ``create``, make it.

    Planning only checks (a run refused for bad input writes nothing); the first stage that
    writes a checkpoint creates the root and its format marker.
    """
    try:
        raw = store.read_bytes(_FORMAT_FILE)
    except FileNotFoundError:
        if create:
            store.makedirs()
            store.create(_FORMAT_FILE, json.dumps({"format_version": FORMAT_VERSION}).encode())
        return
    try:
        version = json.loads(raw)["format_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"The checkpoint directory {store.display()!r} has an unreadable "
                         f"{_FORMAT_FILE}: {exc}. Use another checkpoint directory.") from exc
    if version != FORMAT_VERSION:
        raise InputError(
            f"The checkpoint directory {store.display()!r} was written by checkpoint format "
            f"{version}; this version reads format {FORMAT_VERSION}. Use another checkpoint "
            "directory (or delete this one)."
        )


class Part(BaseModel):
    """One committed part: enough to check it without reading it."""

    model_config = ConfigDict(frozen=True)

    name: str
    size: int
    rows: int


class Manifest(BaseModel):
    """``_SUCCESS.json``: the stage is complete, these are its parts, this is its result."""

    model_config = ConfigDict(frozen=True)

    stage: str
    key: str
    format_version: int
    parts: list[Part]
    result: dict[str, Any]
    seconds: float
    flow_run_id: str | None = None


def arrays_to_table(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> pa.Table:
    """Columns of equal length (1-D arrays, or 2-D arrays split into ``name_j`` columns)."""
    cols: dict[str, pa.Array] = {}
    for name, a in arrays.items():
        if isinstance(a, pa.Array | pa.ChunkedArray):
            cols[name] = a
            continue
        a = np.asarray(a)
        if a.ndim == 1:
            cols[name] = pa.array(a)
        else:
            for j in range(a.shape[1]):
                cols[f"{name}_{j}"] = pa.array(np.ascontiguousarray(a[:, j]))
    table = pa.table(cols) if cols else pa.table({"_": pa.array([], pa.int8())})
    return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def _dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: integers of a narrow range (labels).

    Parquet's default tries a dictionary for every column and falls back to plain encoding
    once the dictionary outgrows a page. For floats and unique ids that attempt is pure cost:
    a 262,144 × 10 float32 part took 249 ms to write with it and 23 ms without (and is a third
    smaller); a (row id, label) part 35 ms against 8 ms with the dictionary on labels alone.
    """
    names = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_integer(field.type) and len(column):
            low, high = pc.min(column).as_py(), pc.max(column).as_py()
            if high - low < 2**16:
                names.append(field.name)
    return names


def write_part(store: Store, name: str, arrays: dict[str, Any], **meta: Any) -> Part:
    """Write one checkpoint part and describe it for the manifest.

    Whole or not at all, replacing a file of that name (an invalid leftover, or the same part
    written by a concurrent run of the same key: the same content). Only the manifest is
    create-only (:func:`commit_manifest`).
    """
    rows = {len(a) for a in arrays.values()}
    if len(rows) > 1:
        raise ValueError(f"Arrays written to {store.display(name)} have different lengths: "
                         f"{rows}")
    n = rows.pop() if rows else 0
    table = arrays_to_table(arrays, {"format_version": FORMAT_VERSION, "rows": n, **meta})
    buf = io.BytesIO()
    pq.write_table(table, buf, write_page_checksum=True,
                   use_dictionary=_dictionary_columns(table))
    data = buf.getvalue()
    store.write_bytes(name, data)
    return Part(name=name, size=len(data), rows=n)


def check_part(store: Store, name: str, expect: dict[str, Any]) -> Part | None:
    """A part from its footer alone (metadata, rows, size), or None if absent or invalid.

    An invalid part is reported with a :class:`CheckpointWarning` naming it.
    """
    try:
        pf = store.parquet(name)
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException, ValueError) as exc:
        _warn_invalid(store, name, f"unreadable ({type(exc).__name__}: {exc})")
        return None
    try:
        meta = json.loads((pf.schema_arrow.metadata or {})[_META_KEY])
        size = _size(store, name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _warn_invalid(store, name, f"unreadable ({type(exc).__name__}: {exc})")
        return None
    problem = _meta_problem(meta, pf.metadata.num_rows, expect)
    if problem:
        _warn_invalid(store, name, problem)
        return None
    return Part(name=name, size=size, rows=pf.metadata.num_rows)


def _size(store: Store, name: str) -> int:
    return store.info(name)["size"]


def _meta_problem(meta: dict[str, Any], rows: int, expect: dict[str, Any]) -> str | None:
    if meta.get("format_version") != FORMAT_VERSION:
        return f"format {meta.get('format_version')} != {FORMAT_VERSION}"
    if meta.get("rows") != rows:
        return f"{rows} rows, metadata says {meta.get('rows')}"
    for k, v in expect.items():
        if meta.get(k) != v:
            return f"{k}={meta.get(k)!r}, expected {v!r}"
    return None


def _warn_invalid(store: Store, name: str, problem: str) -> None:
    warnings.warn(f"Checkpoint {store.display(name)!r} is not valid ({problem}); it will be "
                  "recomputed.", CheckpointWarning, stacklevel=3)


def read_part(store: Store, part: Part | str, *, stage: str,
              expect: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata of a committed part, every page checksum verified.

    Raises :class:`CorruptCheckpoint` if it is missing, unreadable or not what the manifest
    says: the flow then recomputes the stage that wrote it.
    """
    name = part if isinstance(part, str) else part.name
    try:
        with store.answering(), store.open(name, "rb") as fh:
            data = fh.read()
        if not isinstance(part, str) and len(data) != part.size:
            raise ValueError(f"{len(data)} bytes, the manifest says {part.size}")
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise CorruptCheckpoint(store, name, stage, f"{type(exc).__name__}: {exc}") from None
    problem = _meta_problem(meta, table.num_rows, expect or {})
    if problem:
        raise CorruptCheckpoint(store, name, stage, problem)
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
        values = [table.column(n).to_numpy() for _, n in members]
        singles[base] = interleave(values, np.result_type(*values))
    return singles


def read_manifest(store: Store, stage: str, key: str, name: str = MANIFEST
                  ) -> Manifest | None:
    """The stage's manifest (``name`` in ``store``) if it is committed and belongs to this
    key, else None."""
    try:
        manifest = Manifest.model_validate_json(store.read_bytes(name))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warnings.warn(f"Manifest {store.display(name)!r} is not valid ({exc}); the stage "
                      "will be recomputed.", CheckpointWarning, stacklevel=2)
        return None
    if (manifest.stage, manifest.key, manifest.format_version) != (stage, key, FORMAT_VERSION):
        return None
    return manifest


def commit_manifest(store: Store, manifest: Manifest, name: str = MANIFEST) -> Manifest:
    """Write the manifest (``name`` in ``store``) last, create-only; if another run committed
    first, keep theirs.

    Two runs of the same stage and key compute the same parts, so either manifest is right;
    create-only makes sure a committed manifest is never overwritten while it is read.
    """
    data = manifest.model_dump_json(indent=1).encode()
    if store.create(name, data):
        return manifest
    theirs = read_manifest(store, manifest.stage, manifest.key, name)
    if theirs is not None:
        return theirs
    store.write_bytes(name, data)  # an unreadable leftover, or another key's: replace it
    return manifest


def retract_manifest(store: Store, name: str = MANIFEST) -> None:
    """Mark a stage incomplete again (a committed part turned out corrupt)."""
    store.remove(name)
