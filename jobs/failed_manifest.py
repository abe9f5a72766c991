"""`_failed.parquet`: the failed rows as a manifest of their own, so redoing just those is
one command: `python jobs/caption.py OUTPUT/_failed.parquet --output OTHER`.

Manifest columns only (the output's own columns are refused as input): `id` and `uri`
as in the output, each row's resolved `task` and `prompt` (so the rerun asks exactly what
this run asked, whatever --task or --prompt it is given), and every carried column.
Skipped rows stay out: skipping them was deliberate (spacers, tracking pixels).
"""

from __future__ import annotations

import itertools
import posixpath
import shlex
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from jobs.config import JobConfig
from manifests import schema
from manifests.schema import Status
from vlworkers import storage
from vlworkers.atomic_write import atomic_arrow_filesystem

FAILED_FILE = "_failed.parquet"


@dataclass(frozen=True)
class FailedManifest:
    uri: str | None = None  # None: no failed rows, so no file
    rows: int = 0
    rerun_command: str | None = None


def manifest_columns(output_schema: pa.Schema) -> list[str]:
    carried = [name for name in output_schema.names if name not in schema.OUTPUT_COLUMNS]
    return [schema.ID, schema.URI, schema.TASK, schema.PROMPT, *carried]


def write_failed_manifest(config: JobConfig) -> FailedManifest:
    fs, path = storage.resolve(config.output)
    fs.invalidate_cache(path)  # listings cached before the run miss the files it wrote
    dataset = pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    scanner = dataset.scanner(
        columns=manifest_columns(dataset.schema),
        filter=pc.field("status") == Status.FAILED.value,
    )
    target = posixpath.join(path, FAILED_FILE)
    rows = _write(scanner, fs, target)
    if not rows:
        if fs.exists(target):  # left by an earlier run whose failures have since been redone
            fs.rm(target)
        return FailedManifest()
    uri = storage.join(config.output, FAILED_FILE)
    return FailedManifest(uri=uri, rows=rows, rerun_command=rerun_command(config, uri))


def _write(scanner: pads.Scanner, fs: fsspec.AbstractFileSystem, target: str) -> int:
    """Stream the failed rows into one Parquet file; returns how many (0: nothing written)."""
    batches = (batch for batch in scanner.to_batches() if batch.num_rows)
    first = next(batches, None)
    if first is None:
        return 0
    rows = 0
    # The file appears only once complete: the atomic stream commits on Parquet's footer,
    # and the writer writes that footer only if every batch made it.
    with atomic_arrow_filesystem(fs).open_output_stream(target) as stream:
        writer = pq.ParquetWriter(stream, scanner.projected_schema)
        for batch in itertools.chain([first], batches):
            writer.write_batch(batch)
            rows += batch.num_rows
        writer.close()
    return rows


def rerun_command(config: JobConfig, failed_uri: str) -> str:
    """The options that decide what the model produces; the user adds any others."""
    engine = config.engine
    args = [
        "python",
        "jobs/caption.py",
        storage.redact(failed_uri),
        "--output",
        storage.redact(config.output).rstrip("/") + ".retry",
        "--model",
        engine.model,
    ]
    if engine.revision:
        args += ["--revision", engine.revision]
    if config.preprocess.max_new_tokens:
        args += ["--max-new-tokens", str(config.preprocess.max_new_tokens)]
    if engine.trust_remote_code:
        args.append("--trust-remote-code")
    return shlex.join(args)
