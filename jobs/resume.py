"""Resume from the output itself: rows that already have a final row are not redone.

The output folder is the only record of what is done, so there is nothing to drift out
of step with it. (Ray Data's CheckpointConfig keeps a second record and filters at read
time by an id column; our ids may be derived from the uri after the read, and
--retry-failed must replace rows, which it cannot do.)
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests import schema
from manifests.ids import id_hashes
from vlworkers import storage
from vlworkers.atomic_write import TMP_PREFIX, write_table_atomically

logger = logging.getLogger(__name__)


class OutputMismatchError(ValueError):
    """The output folder holds files that are not this job's results."""


@dataclass(frozen=True)
class ResumeState:
    done_rows: int
    requeued_rows: int  # transient failures removed so --retry-failed redoes them
    done_hashes: np.ndarray  # sorted uint64 hashes of the done ids


EMPTY = ResumeState(done_rows=0, requeued_rows=0, done_hashes=np.array([], dtype=np.uint64))


def result_files(output_uri: str) -> list[str]:
    fs, path = storage.resolve(output_uri)
    if not fs.exists(path):
        return []
    return sorted(
        f
        for f in fs.ls(path, detail=False)
        if f.endswith(".parquet") and not posixpath.basename(f).startswith(("_", "."))
    )


def prepare_resume(output_uri: str, expected: pa.Schema, retry_failed: bool) -> ResumeState:
    fs, path = storage.resolve(output_uri)
    if not fs.exists(path):
        return EMPTY
    for leftover in fs.glob(posixpath.join(path, f"{TMP_PREFIX}*")):
        fs.rm(leftover)  # fragments of writes a killed run never finished
    hashes: list[np.ndarray] = []
    done = requeued = 0
    for file in result_files(output_uri):
        table = _read_done_columns(fs, file, expected, output_uri)
        if retry_failed:
            transient = pc.is_in(
                table["error_kind"], pa.array(sorted(schema.TRANSIENT_ERROR_KINDS))
            )
            transient = pc.fill_null(transient, False)
            n_transient = pc.sum(transient).as_py() or 0
            if n_transient:
                _drop_rows(fs, file, transient)
                table = table.filter(pc.invert(transient))
                requeued += n_transient
        done += table.num_rows
        hashes.append(id_hashes(table[schema.ID].to_pylist()))
    done_hashes = np.unique(np.concatenate(hashes)) if hashes else EMPTY.done_hashes
    return ResumeState(done_rows=done, requeued_rows=requeued, done_hashes=done_hashes)


def _read_done_columns(
    fs: fsspec.AbstractFileSystem, file: str, expected: pa.Schema, output_uri: str
) -> pa.Table:
    """One open per file: check it is one of ours, then read the columns resume needs."""
    with fs.open(file, "rb") as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except pa.ArrowInvalid:
            parquet = None
        if parquet is None or not parquet.schema_arrow.equals(expected):
            raise OutputMismatchError(
                f"{storage.redact(output_uri)} holds {posixpath.basename(file)}, whose columns "
                "differ from this job's output; choose another --output, or --overwrite"
            )
        return parquet.read(columns=[schema.ID, "status", "error_kind"])


def _drop_rows(fs: fsspec.AbstractFileSystem, file: str, mask: pa.ChunkedArray) -> None:
    """Rewrite one result file without the masked rows, atomically and in place.

    In place matters: a kill at any moment leaves either the old file or the new one,
    never both, so no row is ever seen twice.
    """
    with fs.open(file, "rb") as handle:
        table = pq.read_table(handle)
    kept = table.filter(pc.invert(mask))
    if kept.num_rows == 0:
        fs.rm(file)
    else:
        write_table_atomically(kept, fs, file)
