"""What one model batch did, counted in the model actor: every row passes through it,
including rows that failed or were skipped upstream, so counting there sees them all.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
from ray.actor import ActorHandle

from vlworkers.metrics import ActorMetrics


@dataclass(frozen=True)
class BatchStats:
    replica: str
    rows: int
    by_outcome: dict[tuple[str, str], int]  # (status, error_kind or "") -> rows
    images: int  # rows the model generated for; the rest failed or were skipped before
    output_tokens: int
    input_tokens: int  # what the model read for this batch's fresh rows (copies excluded)
    busy_s: float  # the whole call: pixels in, output table out
    generate_s: float
    finished_at: float  # wall clock: bounds the replica's alive time across machines


def count_batch(
    output: pa.Table,
    replica: str,
    images: int,
    busy_s: float,
    generate_s: float,
    input_tokens: int,
) -> BatchStats:
    outcomes: Counter[tuple[str, str]] = Counter(
        zip(
            (s or "" for s in output.column("status").to_pylist()),
            (k or "" for k in output.column("error_kind").to_pylist()),
            strict=True,
        )
    )
    tokens = sum(n or 0 for n in output.column("n_output_tokens").to_pylist())
    return BatchStats(
        replica=replica,
        rows=output.num_rows,
        by_outcome=dict(outcomes),
        images=images,
        output_tokens=tokens,
        input_tokens=input_tokens,
        busy_s=busy_s,
        generate_s=generate_s,
        finished_at=time.time(),
    )


class BatchReporter:
    """One per model actor: metrics per batch, and one fire-and-forget call to the
    job's progress tracker per batch (never per row, never waited on)."""

    def __init__(self, tracker: ActorHandle | None, model: str, started_at: float) -> None:
        self.replica = uuid.uuid4().hex[:12]
        self.tracker = tracker
        self.metrics = ActorMetrics(model)
        if tracker is not None:
            tracker.replica_started.remote(self.replica, started_at, time.time())

    def batch_done(
        self, output: pa.Table, images: int, busy_s: float, generate_s: float, input_tokens: int
    ) -> None:
        stats = count_batch(output, self.replica, images, busy_s, generate_s, input_tokens)
        self.metrics.record(stats)
        if self.tracker is not None:
            self.tracker.record.remote(stats)
