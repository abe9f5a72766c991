"""The run summary: counted from the output itself, so it always agrees with it.

Counts cover the whole output (rows from earlier, resumed runs included); rates, wall
time and replica time cover this run.
"""

from __future__ import annotations

import json
import logging
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from jobs import sidefiles
from jobs.config import JobConfig
from jobs.failed_manifest import FailedManifest
from jobs.progress_file import utc_iso
from vlworkers import storage

logger = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"
_EXAMPLES_PER_KIND = 3
_COUNTED = ["status", "error_kind", "error", "n_output_tokens", "model"]


@dataclass(frozen=True)
class OutputCounts:
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_error_kind: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, list[str]] = field(default_factory=dict)
    images: int = 0  # rows the model ran on (their `model` is set)
    output_tokens: int = 0


@dataclass(frozen=True)
class ReplicaUsage:
    """Model actors of this run, as they reported themselves to the progress tracker."""

    replicas: int = 0
    replica_seconds: float = 0.0  # from each actor's start (model load included) to the end
    busy_seconds: float = 0.0  # inside batches
    input_tokens: int = 0  # prompt tokens the model read, image tokens included


@dataclass(frozen=True)
class RunSummary:
    rows: int
    by_status: dict[str, int]
    by_error_kind: dict[str, int]
    error_examples: dict[str, list[str]]
    images: int
    output_tokens: int
    input_tokens_this_run: int  # what the model read this run (copied rows read nothing)
    rows_this_run: int
    rows_before: int  # already in the output when this run started (resume)
    started_at: str
    wall_time_s: float
    rows_per_s: float
    images_per_s: float
    output_tokens_per_s: float
    replicas: int
    replica_seconds: float
    replica_busy_seconds: float
    model: str
    revision: str | None
    failed_manifest: str | None
    failed_manifest_rows: int
    rerun_failed: str | None  # the command that reruns just the failed rows
    config: dict[str, Any]
    versions: dict[str, str]


def library_versions() -> dict[str, str]:
    import pyarrow
    import ray
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pyarrow": pyarrow.__version__,
    }


def count_output(output_uri: str) -> OutputCounts:
    fs, path = storage.resolve(output_uri)
    fs.invalidate_cache(path)  # listings cached before the run miss the files it wrote
    dataset = pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    tokens = images = 0
    for batch in dataset.to_batches(columns=_COUNTED):
        statuses.update(_value_counts(batch.column("status")))
        kinds.update(_value_counts(batch.column("error_kind")))
        tokens += pc.sum(batch.column("n_output_tokens")).as_py() or 0
        images += batch.num_rows - batch.column("model").null_count
        _collect_examples(batch.column("error_kind"), batch.column("error"), examples)
    return OutputCounts(
        rows=sum(statuses.values()),
        by_status=dict(statuses),
        by_error_kind=dict(kinds.most_common()),
        error_examples=examples,
        images=images,
        output_tokens=tokens,
    )


def _value_counts(column: Any) -> dict[str, int]:
    return {
        item["values"]: item["counts"]
        for item in pc.value_counts(column).to_pylist()
        if item["values"] is not None
    }


def _collect_examples(kinds: Any, errors: Any, examples: dict[str, list[str]]) -> None:
    full = [kind for kind, found in examples.items() if len(found) >= _EXAMPLES_PER_KIND]
    wanted = pc.and_(
        pc.is_valid(kinds), pc.invert(pc.is_in(kinds, value_set=pa.array(full, type=pa.string())))
    )
    if not pc.any(wanted).as_py():
        return  # the common case once every kind has its examples: no per-row work
    for kind, error in zip(
        pc.filter(kinds, wanted).to_pylist(), pc.filter(errors, wanted).to_pylist(), strict=True
    ):
        bucket = examples.setdefault(kind, [])
        if len(bucket) < _EXAMPLES_PER_KIND and error:
            bucket.append(error)


def summarize(
    config: JobConfig,
    started_at: float,
    wall_time_s: float,
    earlier: OutputCounts,
    usage: ReplicaUsage,
    failed: FailedManifest,
) -> RunSummary:
    counts = count_output(config.output)
    # This run's share is the output's growth: exact, unlike what the actors reported.
    rows_this_run = max(0, counts.rows - earlier.rows)

    def per_s(value: int) -> float:
        return round(value / wall_time_s, 3) if wall_time_s > 0 else 0.0

    effective = config.model_dump(mode="json")
    effective.update(manifest=storage.redact(config.manifest), output=storage.redact(config.output))
    return RunSummary(
        rows=counts.rows,
        by_status=counts.by_status,
        by_error_kind=counts.by_error_kind,
        error_examples=counts.error_examples,
        images=counts.images,
        output_tokens=counts.output_tokens,
        input_tokens_this_run=usage.input_tokens,
        rows_this_run=rows_this_run,
        rows_before=earlier.rows,
        started_at=utc_iso(started_at),
        wall_time_s=round(wall_time_s, 3),
        rows_per_s=per_s(rows_this_run),
        images_per_s=per_s(max(0, counts.images - earlier.images)),
        output_tokens_per_s=per_s(max(0, counts.output_tokens - earlier.output_tokens)),
        replicas=usage.replicas,
        replica_seconds=round(usage.replica_seconds, 3),
        replica_busy_seconds=round(usage.busy_seconds, 3),
        model=config.engine.model,
        revision=config.engine.revision,
        failed_manifest=failed.uri,
        failed_manifest_rows=failed.rows,
        rerun_failed=failed.rerun_command,
        config=effective,
        versions=library_versions(),
    )


def write_summary(output_uri: str, summary: RunSummary) -> str:
    uri = storage.join(output_uri, SUMMARY_FILE)
    sidefiles.write_text(uri, json.dumps(asdict(summary), indent=2, sort_keys=True))
    return uri


def format_summary(summary: RunSummary) -> str:
    busy = summary.replica_busy_seconds / summary.replica_seconds if summary.replica_seconds else 0
    lines = [
        f"rows: {summary.rows}  in {summary.wall_time_s:.1f}s  ({summary.rows_per_s:.2f} rows/s)"
        + (f"  ({summary.rows_before} from earlier runs)" if summary.rows_before else ""),
        "status:     " + ", ".join(f"{k}={v}" for k, v in sorted(summary.by_status.items())),
    ]
    for kind, count in summary.by_error_kind.items():
        example = (summary.error_examples.get(kind) or [""])[0]
        lines.append(f"  {kind:<20} {count:>8}  e.g. {example[:100]}")
    lines += [
        f"images: {summary.images}  ({summary.images_per_s:.2f}/s)   "
        f"output tokens: {summary.output_tokens}  ({summary.output_tokens_per_s:.1f}/s)   "
        f"input tokens this run: {summary.input_tokens_this_run}",
        f"model replicas: {summary.replicas}, {summary.replica_seconds:.1f} replica-seconds "
        f"({busy:.0%} busy)",
        f"model: {summary.model}" + (f"@{summary.revision}" if summary.revision else ""),
    ]
    if summary.failed_manifest:
        lines.append(
            f"failed rows ({summary.failed_manifest_rows}): {storage.redact(summary.failed_manifest)}"
        )
        lines.append(f"  rerun them: {summary.rerun_failed}")
    return "\n".join(lines)
