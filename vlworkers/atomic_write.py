"""Output files appear whole or not at all.

Each file is written under a `_tmp.` name (ignored by Parquet readers, like every `_`
file) and moved to its final name only once it ends with Parquet's footer magic. A
worker killed mid-write, or a writer that raised, leaves at most a `_tmp.` file, which
the next run deletes.
"""

from __future__ import annotations

import io
import posixpath
import uuid

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TMP_PREFIX = "_tmp."
_PARQUET_MAGIC = b"PAR1"


def temp_path(path: str) -> str:
    head, tail = posixpath.split(path)
    return posixpath.join(head, f"{TMP_PREFIX}{uuid.uuid4().hex}.{tail}")


class _CommitOnClose(io.RawIOBase):
    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        super().__init__()
        self._fs = fs
        self._path = path
        self._tmp = temp_path(path)
        self._file = fs.open(self._tmp, "wb")
        self._tail = b""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._file.write(chunk)
        self._tail = (self._tail + chunk)[-len(_PARQUET_MAGIC) :]
        return len(chunk)

    def tell(self) -> int:
        return int(self._file.tell())

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        self._file.close()
        if self._tail == _PARQUET_MAGIC:
            self._fs.mv(self._tmp, self._path)
        else:  # the writer gave up part way: never let a reader see the fragment
            self._fs.rm(self._tmp)
        super().close()


class AtomicParquetHandler(pafs.FSSpecHandler):
    """An fsspec filesystem for pyarrow whose new files commit atomically when complete."""

    def open_output_stream(self, path: str, metadata: dict) -> pa.NativeFile:
        return pa.PythonFile(_CommitOnClose(self.fs, path), mode="w")


def atomic_arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    return pafs.PyFileSystem(AtomicParquetHandler(fs))


def write_table_atomically(table: pa.Table, fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Write (or replace) one Parquet file so readers see the old or the new, never half."""
    with atomic_arrow_filesystem(fs).open_output_stream(path) as stream:
        pq.write_table(table, stream)
