"""Where the pipeline reads and writes: local disk, memory or an object store, through fsspec.

Every path the pipeline takes (``input``, ``output_dir``, ``checkpoint_dir``) may be a plain
path or a URL: ``file://``, ``s3://``, ``gs://``, ``abfs://`` / ``az://`` or ``memory://``. A
:class:`Store` is a directory in one of them; it is small and picklable, so tasks send it to
Dask workers, which open the filesystem themselves with their own credentials.

Credentials and endpoints come from each filesystem's standard environment and configuration
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``AZURE_STORAGE_ACCOUNT_NAME`` ...). ``storage_options`` may carry non-secret options only
(a region, an endpoint, an anonymous flag): a secret there would travel in run parameters,
``summary.json`` and logs, so it is refused, and so is a URL with credentials in it.

Writes are all-or-nothing for readers. On local disk a file is written to a temporary name,
fsynced, then renamed (or hard-linked, for a create-only write). On an object store an object
is written by one PUT, which is atomic: it is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pyarrow.parquet as pq

from .errors import InputError, StoreUnavailable

#: How long one request to an object store may go unanswered: a connection is given up after
#: CONNECT_TIMEOUT seconds, a read that receives nothing after READ_TIMEOUT, and a request is
#: tried ATTEMPTS times in all (botocore's and s3fs's defaults, 5 attempts each with
#: backoff and 60 s reads, retry for many minutes). So a request to a store that went away
#: fails within ATTEMPTS × (CONNECT_TIMEOUT + READ_TIMEOUT) = 45 s: :class:`StoreUnavailable`,
#: and the run fails; a store that refuses connections (its server is down) fails at once. A
#: user's ``storage_options`` may set other values.
CONNECT_TIMEOUT, READ_TIMEOUT, ATTEMPTS = 5, 10, 3
#: Errors that mean "the store did not answer" (by class name, so that no client library is
#: imported to name them): refused or dropped connections and timeouts, as raised by the
#: standard library, aiohttp and botocore.
_NO_ANSWER = frozenset({
    "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError",
    "TimeoutError", "timeout", "EndpointConnectionError", "ConnectTimeoutError",
    "ReadTimeoutError", "ConnectionClosedError", "ClientConnectorError",
    "ServerDisconnectedError", "ServerTimeoutError", "ClientOSError", "FSTimeoutError",
})


def no_answer(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) says a server did not answer."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(cls.__name__ in _NO_ANSWER for cls in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


#: URL scheme → the optional dependency ("extra") that provides its fsspec filesystem.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure",
          "abfss": "azure", "az": "azure"}
#: Schemes handled without an extra.
BUILTIN = ("file", "local", "memory")
#: storage_options keys that hold secrets (they belong in the environment, never in a run).
SECRET_OPTIONS = frozenset({
    "key", "secret", "token", "password", "session_token", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "account_key", "sas_token",
    "client_secret", "credential", "credentials", "connection_string",
})


class StorageError(InputError):
    """A path or URL cannot be used (unknown scheme, credentials in it, bad options)."""


class MissingExtraError(ImportError):
    """The filesystem of a URL needs an optional dependency that is not installed."""


def _frozen(options: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((options or {}).items()))


@dataclass(frozen=True)
class Store:
    """A directory on some filesystem; names below it are ``/``-separated.

    ``url`` is canonical: an absolute local path (``/data/out``) or ``scheme://bucket/key``.
    """

    url: str
    options: tuple[tuple[str, Any], ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ---- identity ---------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        return urlsplit(self.url).scheme if "://" in self.url else "file"

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def fs(self):
        """The fsspec filesystem (opened once per process, with this process's credentials)."""
        fs = self._cache.get("fs")
        if fs is None:
            fs = _filesystem(self.protocol, dict(self.options))
            self._cache["fs"] = fs
        return fs

    @property
    def root(self) -> str:
        """The directory as the filesystem names it (no scheme: ``bucket/key``, ``/dir``)."""
        if self.is_local:
            return self.url
        root = self._cache.get("root")
        if root is None:
            import fsspec

            try:
                cls = fsspec.get_filesystem_class(self.protocol)
                root = cls._strip_protocol(self.url)
            except ImportError:  # the extra is missing; .fs will say which
                root = self.url.split("://", 1)[1]
            self._cache["root"] = root
        return root

    def path(self, name: str = "") -> str:
        return posixpath.join(self.root, name) if name else self.root

    def display(self, name: str = "") -> str:
        """The URL of a name, for messages and outputs."""
        return posixpath.join(self.url, name) if name else self.url

    def child(self, *names: str) -> Store:
        return Store(posixpath.join(self.url, *names), self.options)

    def at(self, path: str) -> Store:
        """The file or directory ``path``, as this store's filesystem names it (``bucket/key``,
        ``/dir/file``: what a listing returns), with this store's options."""
        return Store(path if self.is_local else f"{self.protocol}://{path}", self.options)

    def __getstate__(self) -> dict[str, Any]:  # the filesystem is reopened where it is used
        return {"url": self.url, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "url", state["url"])
        object.__setattr__(self, "options", state["options"])
        object.__setattr__(self, "_cache", {})

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around any use of this store: a store that does not answer raises
        :class:`StoreUnavailable` (naming it), not the client library's error. Every method
        below uses it; so does a caller reading through a file object (Parquet reads)."""
        start = time.monotonic()
        try:
            yield
        except StoreUnavailable:
            raise
        except Exception as exc:
            if self.is_local or not no_answer(exc):
                raise
            raise StoreUnavailable(self.server(), time.monotonic() - start, exc) from exc

    def server(self) -> str:
        """The store as a person names it in an outage: ``s3://bucket`` (and its endpoint, when
        the environment sets one)."""
        bucket = f"{self.protocol}://{self.root.split('/', 1)[0]}"
        endpoint = dict(self.options).get("endpoint_url") or \
            dict(dict(self.options).get("client_kwargs") or {}).get("endpoint_url") or \
            os.environ.get("AWS_ENDPOINT_URL") if self.protocol in ("s3", "s3a") else None
        return f"{bucket} (at {endpoint})" if endpoint else bucket

    # ---- reading ----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        with self.answering():
            return self.fs.exists(self.path(name))

    def info(self, name: str = "") -> dict[str, Any]:
        """Size and a version tag: the ETag (object stores) or ``(mtime_ns, inode)``."""
        with self.answering():
            path = self.path(name)
            if self.is_local:
                st = os.stat(path)
                return {"size": st.st_size, "version": f"{st.st_mtime_ns}:{st.st_ino}"}
            info = self.fs.info(path)
            version = (info.get("ETag") or info.get("etag") or info.get("generation")
                       or info.get("version_id") or info.get("md5Hash") or info.get("mtime")
                       or info.get("LastModified") or info.get("created"))
            return {"size": int(info.get("size") or 0),
                    "version": str(version).strip('"') if version is not None else None}

    def names(self) -> list[str]:
        """The names directly below this directory (none if it does not exist). Only a writer
        that replaces a dataset lists one; readers follow manifests."""
        with self.answering():
            try:
                return [posixpath.basename(p.rstrip("/"))
                        for p in self.fs.ls(self.root, detail=False)]
            except FileNotFoundError:
                return []

    def files(self, *, glob: bool = False) -> tuple[str, list[str]]:
        """What this location is and the files in it, sorted, as the filesystem names them:
        ``("glob", matches)``, ``("file", [itself])``, ``("dir", every file below it)`` or
        ``("missing", [])``."""
        fs, root = self.fs, self.root
        with self.answering():
            if glob:
                return "glob", sorted(p for p in fs.glob(root) if fs.isfile(p))
            if not fs.exists(root):
                return "missing", []
            if fs.isfile(root):
                return "file", [root]
            return "dir", sorted(fs.find(root))

    def read_bytes(self, name: str) -> bytes:
        with self.answering():
            return self.fs.cat_file(self.path(name))

    def open(self, name: str = "", mode: str = "rb"):
        with self.answering():
            if self.is_local:
                return open(self.path(name), mode)
            return self.fs.open(self.path(name), mode)

    def parquet(self, name: str = "") -> pq.ParquetFile:
        """A Parquet file, reading only what is asked of it (the footer first)."""
        with self.answering():
            if self.is_local:
                return pq.ParquetFile(self.path(name))
            return pq.ParquetFile(self.fs.open(self.path(name), "rb", cache_type="none"))

    # ---- writing ----------------------------------------------------------------------------
    def makedirs(self) -> None:
        with self.answering():
            if self.is_local:
                os.makedirs(self.root, exist_ok=True)
            elif self.protocol == "memory":
                self.fs.makedirs(self.root, exist_ok=True)
            # object stores have no directories: a key prefix exists once an object is under it

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``; readers see the old or the new bytes, never part."""
        with self.answering():
            if self.is_local:
                _write_local(self.path(name), data, create_only=False)
            else:
                self.fs.pipe_file(self.path(name), data)

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if it does not exist; False (and nothing written) if it does.

        Local disk: a hard link from a fsynced temporary file, which fails if the name exists.
        S3: a conditional PUT (``If-None-Match: *``, honoured by AWS and SeaweedFS). Memory:
        fsspec's create mode. Elsewhere: a check, then a write.
        """
        with self.answering():
            if self.is_local:
                return _write_local(self.path(name), data, create_only=True)
            if self.protocol in ("s3", "s3a"):
                return _s3_create(self.fs, self.path(name), data)
            if self.protocol == "memory":
                try:
                    self.fs.pipe_file(self.path(name), data, mode="create")
                except FileExistsError:
                    return False
                return True
            if self.fs.exists(self.path(name)):
                return False
            self.fs.pipe_file(self.path(name), data)
            return True

    def remove(self, name: str) -> None:
        with self.answering():
            try:
                self.fs.rm_file(self.path(name))
            except FileNotFoundError:
                pass


def _write_local(path: str, data: bytes, *, create_only: bool) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path),
                       f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if create_only:
            try:
                os.link(tmp, path)  # atomic, and fails if the name exists
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(directory: str) -> None:
    """Make a rename durable (the directory entry), where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _s3_create(fs, path: str, data: bytes) -> bool:
    """A create-only PUT (``If-None-Match: *``; a conflict is HTTP 412).

    s3fs raises ``FileExistsError`` when the server names the failed condition (AWS) and a
    plain ``OSError`` "pre-conditions ... did not hold" when it does not (SeaweedFS).
    """
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    except OSError as exc:
        cause = exc.__cause__
        code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause else None
        if code == "PreconditionFailed" or "pre-conditions" in str(exc):
            return False
        raise
    return True


def _filesystem(protocol: str, options: dict[str, Any]):
    import fsspec

    if protocol in ("s3", "s3a"):  # bounded waits (see CONNECT_TIMEOUT); the user's win
        config = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
                  "retries": {"max_attempts": ATTEMPTS, "mode": "standard"},
                  **options.get("config_kwargs", {})}
        options = {**options, "config_kwargs": config}
    try:
        fs = fsspec.filesystem(protocol, **options)
        if protocol in ("s3", "s3a"):
            # botocore makes the ATTEMPTS; s3fs's own loop around each call would multiply
            # them by 5 (an attribute: s3fs takes no argument for it).
            fs.retries = 1
        return fs
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        raise MissingExtraError(
            f"{protocol}:// URLs need the {extra!r} extra, which is not installed: "
            f"pip install 'spectral-pipeline[{extra}]' (on every machine that runs the flow "
            "or its Dask workers)."
        ) from exc


def open_store(location: str, storage_options: Mapping[str, Any] | None = None,
               *, what: str = "path") -> Store:
    """A :class:`Store` for a path or URL, checked: scheme, no credentials, no secrets.

    Local paths become absolute with symlinks resolved, so a store names the same directory
    wherever it is sent.
    """
    if not isinstance(location, str) or not location:
        raise StorageError(f"The {what} must be a non-empty path or URL. Got {location!r}.")
    check_storage_options(storage_options)
    if "://" not in location:
        return Store(os.path.realpath(location), _frozen(storage_options))
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("file", "local"):
        return Store(os.path.realpath(parts.path or "/"), _frozen(storage_options))
    if scheme not in EXTRAS and scheme not in BUILTIN:
        raise StorageError(
            f"The {what} {location!r} has the scheme {scheme!r}, which is not supported. Use "
            "a local path, file://, s3://, gs://, abfs://, az:// or memory://."
        )
    if parts.username or parts.password or "@" in parts.netloc:
        raise StorageError(
            f"The {what} URL must not carry credentials ({scheme}://<user>:<secret>@...). "
            "Give them through the filesystem's environment or configuration instead."
        )
    bucket = parts.netloc
    key = posixpath.normpath("/" + parts.path).lstrip("/") if parts.path not in ("", "/") else ""
    if ".." in (parts.path or "").split("/"):
        raise StorageError(f"The {what} {location!r} must not contain '..'.")
    url = f"{scheme}://{bucket}" + (f"/{key}" if key else "")
    return Store(url, _frozen(storage_options))


def check_storage_options(options: Mapping[str, Any] | None) -> None:
    """Refuse secrets in ``storage_options``: they would be stored with the run."""
    if not options:
        return
    if not isinstance(options, Mapping):
        raise StorageError(f"storage_options must be a dict. Got {type(options).__name__}.")
    secret = sorted(k for k in _flat_keys(options) if k.lower() in SECRET_OPTIONS)
    if secret:
        raise StorageError(
            f"storage_options must not contain secrets ({secret}): they would be saved with "
            "the run's parameters and summary. Put credentials in the environment or the "
            "filesystem's configuration (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            "AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_KEY, ...)."
        )


def _flat_keys(options: Mapping[str, Any]) -> list[str]:
    keys = []
    for k, v in options.items():
        keys.append(str(k))
        if isinstance(v, Mapping):
            keys += _flat_keys(v)
    return keys


def within(store: Store, roots: list[Store]) -> bool:
    """Whether ``store`` lies inside one of ``roots`` (same filesystem, path boundary)."""
    for root in roots:
        if root.protocol != store.protocol:
            continue
        if store.url == root.url or store.url.startswith(root.url.rstrip("/") + "/"):
            return True
    return False
