"""The run summary: counted from the output itself, so it always agrees with it."""

from __future__ import annotations

import json
import logging
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.dataset as pads

from vlworkers import storage

logger = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"
_EXAMPLES_PER_KIND = 3


@dataclass
class RunSummary:
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_error_kind: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, list[str]] = field(default_factory=dict)
    output_tokens: int = 0
    wall_time_s: float = 0.0
    rows_per_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


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


def count_output(output_uri: str) -> RunSummary:
    fs, path = storage.resolve(output_uri)
    dataset = pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    tokens = 0
    for batch in dataset.to_batches(columns=["status", "error_kind", "error", "n_output_tokens"]):
        for status, kind, error, n_tokens in zip(
            *(batch.column(i).to_pylist() for i in range(4)), strict=True
        ):
            statuses[status] += 1
            tokens += n_tokens or 0
            if kind:
                kinds[kind] += 1
                bucket = examples.setdefault(kind, [])
                if len(bucket) < _EXAMPLES_PER_KIND and error:
                    bucket.append(error)
    return RunSummary(
        rows=sum(statuses.values()),
        by_status=dict(statuses),
        by_error_kind=dict(kinds.most_common()),
        error_examples=examples,
        output_tokens=tokens,
    )


def write_summary(output_uri: str, summary: RunSummary) -> str:
    fs, path = storage.resolve(storage.join(output_uri, SUMMARY_FILE))
    with fs.open(path, "w") as handle:
        json.dump(asdict(summary), handle, indent=2, sort_keys=True)
    return storage.join(output_uri, SUMMARY_FILE)


def format_summary(summary: RunSummary) -> str:
    lines = [
        f"rows: {summary.rows}  in {summary.wall_time_s:.1f}s  ({summary.rows_per_s:.2f} rows/s)",
        "status:     " + ", ".join(f"{k}={v}" for k, v in sorted(summary.by_status.items())),
    ]
    for kind, count in summary.by_error_kind.items():
        example = (summary.error_examples.get(kind) or [""])[0]
        lines.append(f"  {kind:<20} {count:>8}  e.g. {example[:100]}")
    lines.append(f"output tokens: {summary.output_tokens}")
    return "\n".join(lines)
