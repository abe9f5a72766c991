"""The manifest and output contracts: one source of truth for column names and types."""

from __future__ import annotations

from enum import Enum

import pyarrow as pa

# Manifest columns the job interprets; every other column is carried through unchanged.
URI = "uri"
ID = "id"
TASK = "task"
PROMPT = "prompt"
MANIFEST_COLUMNS = (URI, ID, TASK, PROMPT)


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class ErrorKind(str, Enum):
    """Short, stable codes for why a row did not end `ok`. Users filter on these."""

    INVALID_URI = "invalid_uri"
    INVALID_TASK = "invalid_task"
    BLOCKED_ADDRESS = "blocked_address"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    FETCH_ERROR = "fetch_error"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too_large"
    EMPTY_FILE = "empty_file"
    DECODE_ERROR = "decode_error"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_SMALL = "too_small"
    OOM = "oom"
    GENERATION_ERROR = "generation_error"


# Failures that may pass on a later try: retried within a run, and again by --retry-failed.
TRANSIENT_ERROR_KINDS = frozenset(
    {ErrorKind.TIMEOUT.value, ErrorKind.UNAVAILABLE.value, ErrorKind.OOM.value}
)


# The output's own columns, in order. Carried manifest columns follow them.
OUTPUT_FIELDS: tuple[pa.Field, ...] = (
    pa.field(ID, pa.string()),
    pa.field(URI, pa.string()),
    pa.field(TASK, pa.string()),
    pa.field("text", pa.string()),
    pa.field("status", pa.string()),
    pa.field("error_kind", pa.string()),
    pa.field("error", pa.string()),
    pa.field("attempts", pa.int32()),
    pa.field("model", pa.string()),
    pa.field(PROMPT, pa.string()),
    pa.field("image_sha256", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("n_output_tokens", pa.int32()),
    pa.field("finish_reason", pa.string()),
    # The id of the row whose generation this row reuses (identical image, same settings).
    pa.field("copied_from", pa.string()),
)
OUTPUT_COLUMNS = tuple(f.name for f in OUTPUT_FIELDS)

# Columns that live only between stages (the CPU stage hands pixels to the GPU stage).
PIXELS = "_pixels"
PIXELS_HEIGHT = "_pixels_height"
PIXELS_WIDTH = "_pixels_width"
MAX_NEW_TOKENS = "_max_new_tokens"
INTERNAL_COLUMNS = (PIXELS, PIXELS_HEIGHT, PIXELS_WIDTH, MAX_NEW_TOKENS)

# A manifest may not use these names for its own columns: they would shadow ours.
RESERVED_COLUMNS = frozenset(OUTPUT_COLUMNS) - frozenset(MANIFEST_COLUMNS) | frozenset(
    INTERNAL_COLUMNS
)


def output_schema(manifest_schema: pa.Schema) -> pa.Schema:
    """The fixed schema of every output file: our columns, then the carried ones."""
    carried = [f for f in manifest_schema if f.name not in MANIFEST_COLUMNS]
    return pa.schema([*OUTPUT_FIELDS, *carried])


def carried_columns(manifest_schema: pa.Schema) -> list[str]:
    return [f.name for f in manifest_schema if f.name not in MANIFEST_COLUMNS]
