"""Manifest checks that run on the driver before any model loads.

They stream the manifest column by column, so a million-row manifest costs a few MB
(8 bytes per id hash), never the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from manifests import schema
from manifests.ids import id_hashes
from vlworkers import storage


class ManifestError(ValueError):
    """The manifest cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ManifestInfo:
    uri: str
    schema: pa.Schema
    num_rows: int
    has_id: bool


def open_manifest(uri: str) -> pads.Dataset:
    try:
        fs, path = storage.resolve(uri)
    except Exception as exc:  # unknown protocol, missing optional dependency, bad URL
        raise ManifestError(f"cannot open manifest {storage.redact(uri)}: {exc}") from exc
    try:
        if not fs.exists(path):
            raise ManifestError(f"manifest not found: {storage.redact(uri)}")
        return pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    except ManifestError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(
            f"manifest {storage.redact(uri)} is not a readable Parquet file or folder: {exc}"
        ) from exc


def validate_manifest(uri: str) -> ManifestInfo:
    dataset = open_manifest(uri)
    names = dataset.schema.names
    if schema.URI not in names:
        raise ManifestError(
            f"manifest {storage.redact(uri)} has no '{schema.URI}' column "
            f"(columns: {', '.join(names) or 'none'})"
        )
    if not pa.types.is_string(
        dataset.schema.field(schema.URI).type
    ) and not pa.types.is_large_string(dataset.schema.field(schema.URI).type):
        raise ManifestError(f"manifest column '{schema.URI}' must hold strings")
    reserved = sorted(schema.RESERVED_COLUMNS.intersection(names))
    if reserved:
        raise ManifestError(f"manifest columns {reserved} clash with output columns; rename them")
    for optional in (schema.ID, schema.TASK, schema.PROMPT):
        if optional in names and not _is_text(dataset.schema.field(optional).type):
            if optional == schema.ID and pa.types.is_integer(dataset.schema.field(optional).type):
                continue  # integer ids are fine; the output holds them as strings
            raise ManifestError(f"manifest column '{optional}' must hold strings")

    has_id = schema.ID in names
    num_rows, null_ids = _check_unique_ids(dataset, has_id)
    if num_rows == 0:
        raise ManifestError(f"manifest {storage.redact(uri)} has no rows")
    if null_ids:
        raise ManifestError(f"manifest has {null_ids} rows with an empty '{schema.ID}'")
    return ManifestInfo(uri=uri, schema=dataset.schema, num_rows=num_rows, has_id=has_id)


def _is_text(field_type: pa.DataType) -> bool:
    return pa.types.is_string(field_type) or pa.types.is_large_string(field_type)


def _check_unique_ids(dataset: pads.Dataset, has_id: bool) -> tuple[int, int]:
    """Stream the id (or uri) column; keep only 8-byte hashes to find duplicates."""
    column = schema.ID if has_id else schema.URI
    hashes: list[np.ndarray] = []
    null_ids = 0
    num_rows = 0
    for batch in dataset.to_batches(columns=[column]):
        values = batch.column(0).to_pylist()
        num_rows += len(values)
        if has_id:
            null_ids += sum(1 for v in values if v is None or v == "")
        hashes.append(id_hashes(str(v) if v is not None else "" for v in values))
    if not hashes:
        return 0, 0
    all_hashes = np.concatenate(hashes)
    _, counts = np.unique(all_hashes, return_counts=True)
    duplicates = int((counts > 1).sum())
    if duplicates:
        what = (
            f"'{schema.ID}' values"
            if has_id
            else f"'{schema.URI}' values (and no '{schema.ID}' column)"
        )
        raise ManifestError(
            f"manifest has {duplicates} duplicated {what}; every row needs a unique id"
            + ("" if has_id else ": add an 'id' column or drop the repeated uris")
        )
    return num_rows, null_ids
