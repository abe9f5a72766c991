"""The CPU stage: resolve each row's task, fetch its bytes, decode and shrink the image.

Runs as Ray Data tasks on CPU workers. A row that fails here leaves with
`status=failed` (or `skipped`) and no pixels; the GPU stage passes it straight through.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import ray
import requests

from manifests import schema
from manifests.ids import derive_id, id_hashes
from manifests.schema import ErrorKind, Status
from vlworkers import storage
from vlworkers.config import PreprocessConfig
from vlworkers.fetch import FetchError, FetchLimits, fetch_bytes
from vlworkers.images import ImageError, ImageLimits, prepare_image
from vlworkers.retry import Attempts, RetryPolicy
from vlworkers.tasks import UnknownTaskError, resolve_task

logger = logging.getLogger(__name__)


@dataclass
class PreparedRow:
    id: str
    uri: str | None
    task: str | None = None
    prompt: str | None = None
    max_new_tokens: int | None = None
    status: str | None = None  # None: waiting for the model
    error_kind: str | None = None
    error: str | None = None
    attempts: int = 0
    image_sha256: str | None = None
    width: int | None = None
    height: int | None = None
    pixels: bytes | None = None
    pixels_height: int | None = None
    pixels_width: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def fail(self, kind: ErrorKind, message: str, skipped: bool = False) -> None:
        self.status = (Status.SKIPPED if skipped else Status.FAILED).value
        self.error_kind = kind.value
        self.error = message


def preprocess_batch(
    batch: pa.Table, config: PreprocessConfig, done_ids: list[ray.ObjectRef] | None = None
) -> pa.Table:
    """Ray Data `map_batches` function: manifest rows in, rows with pixels out.

    Rows whose id is in `done_ids` (a sorted uint64 hash array in the object store,
    wrapped in a list so Ray hands us the reference) already have a final output row
    and are dropped: that is how a rerun resumes.
    """
    ids = [
        str(i) if i is not None else derive_id(u or "")
        for i, u in zip(_column(batch, schema.ID), _column(batch, schema.URI), strict=True)
    ]
    if done_ids:
        keep = ~np.isin(id_hashes(ids), ray.get(done_ids[0]))
        if not keep.all():
            batch = batch.filter(pa.array(keep))
            ids = [i for i, k in zip(ids, keep, strict=True) if k]
    uris = _column(batch, schema.URI)
    rows = [PreparedRow(id=row_id, uri=uri) for row_id, uri in zip(ids, uris, strict=True)]
    for row, row_task, row_prompt in zip(
        rows, _column(batch, schema.TASK), _column(batch, schema.PROMPT), strict=True
    ):
        _resolve(row, row_task, row_prompt, config)

    limits = FetchLimits(
        max_bytes=config.max_image_bytes,
        timeout_s=config.fetch_timeout_s,
        retry=RetryPolicy(
            attempts=config.fetch_attempts,
            base_delay_s=config.retry_base_delay_s,
            max_delay_s=config.retry_max_delay_s,
        ),
        allow_private_addresses=config.allow_private_addresses,
    )
    image_limits = ImageLimits(
        target_size=config.target_size,
        max_pixels=config.max_image_pixels,
        min_side=config.min_image_side,
    )
    pending = [row for row in rows if row.status is None]
    with requests.Session() as session, ThreadPoolExecutor(config.fetch_threads) as pool:
        list(pool.map(lambda row: _load(row, limits, image_limits, session), pending))
    return _to_table(batch, rows)


def _column(batch: pa.Table, name: str) -> list:
    if name in batch.column_names:
        return batch.column(name).to_pylist()
    return [None] * batch.num_rows


def _resolve(
    row: PreparedRow, row_task: str | None, row_prompt: str | None, config: PreprocessConfig
) -> None:
    try:
        resolved = resolve_task(
            row_task, row_prompt, config.default_task, config.default_prompt, config.max_new_tokens
        )
    except UnknownTaskError as exc:
        row.task = row_task
        row.prompt = row_prompt
        row.fail(ErrorKind.INVALID_TASK, str(exc))
        return
    row.task, row.prompt, row.max_new_tokens = (
        resolved.task,
        resolved.prompt,
        resolved.max_new_tokens,
    )


def _load(
    row: PreparedRow, limits: FetchLimits, image_limits: ImageLimits, session: requests.Session
) -> None:
    attempts = Attempts()
    try:
        data = fetch_bytes(row.uri or "", limits, attempts, session)
        row.attempts = attempts.count
        row.image_sha256 = hashlib.sha256(data).hexdigest()
        image = prepare_image(data, image_limits)
    except FetchError as exc:
        row.attempts = attempts.count
        row.fail(exc.kind, exc.message)
        return
    except ImageError as exc:
        row.fail(exc.kind, exc.message, skipped=exc.skipped)
        return
    except Exception as exc:  # a bug must cost one row, not the whole dataset
        logger.exception("unexpected error preparing %s", row.id)
        row.fail(ErrorKind.DECODE_ERROR, f"unexpected error: {type(exc).__name__}: {exc}")
        return
    row.width, row.height = image.width, image.height
    row.pixels = image.pixels.tobytes()
    row.pixels_height, row.pixels_width = image.pixels.shape[0], image.pixels.shape[1]


_STAGE_FIELDS = (
    pa.field(schema.ID, pa.string()),
    pa.field(schema.URI, pa.string()),
    pa.field(schema.TASK, pa.string()),
    pa.field(schema.PROMPT, pa.string()),
    pa.field(schema.MAX_NEW_TOKENS, pa.int32()),
    pa.field("status", pa.string()),
    pa.field("error_kind", pa.string()),
    pa.field("error", pa.string()),
    pa.field("attempts", pa.int32()),
    pa.field("image_sha256", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field(schema.PIXELS, pa.binary()),
    pa.field(schema.PIXELS_HEIGHT, pa.int32()),
    pa.field(schema.PIXELS_WIDTH, pa.int32()),
)


def _to_table(batch: pa.Table, rows: list[PreparedRow]) -> pa.Table:
    values = {
        schema.ID: [r.id for r in rows],
        # Signed query strings and userinfo are credentials: they never reach the output.
        schema.URI: [storage.redact(r.uri) if r.uri else r.uri for r in rows],
        schema.TASK: [r.task for r in rows],
        schema.PROMPT: [r.prompt for r in rows],
        schema.MAX_NEW_TOKENS: [r.max_new_tokens for r in rows],
        "status": [r.status for r in rows],
        "error_kind": [r.error_kind for r in rows],
        "error": [r.error for r in rows],
        "attempts": [r.attempts for r in rows],
        "image_sha256": [r.image_sha256 for r in rows],
        "width": [r.width for r in rows],
        "height": [r.height for r in rows],
        schema.PIXELS: [r.pixels for r in rows],
        schema.PIXELS_HEIGHT: [r.pixels_height for r in rows],
        schema.PIXELS_WIDTH: [r.pixels_width for r in rows],
    }
    columns = [pa.array(values[f.name], type=f.type) for f in _STAGE_FIELDS]
    names = [f.name for f in _STAGE_FIELDS]
    for name in batch.column_names:
        if name not in schema.MANIFEST_COLUMNS:
            columns.append(batch.column(name))
            names.append(name)
    return pa.Table.from_arrays(columns, names=names)
