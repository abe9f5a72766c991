"""Live progress: a tracker actor sums what the model actors report (one fire-and-forget
call per batch); a driver thread polls it every interval, logs one line (the job's log:
`ray job logs --follow`), sets the job gauges and rewrites `_progress.json`.

Progress is best effort and must never fail or slow the job: a tracker that does not
answer or a write that fails costs one update and a warning, nothing more.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import cast

import ray
from ray.actor import ActorHandle

from jobs.config import JobConfig
from jobs.progress_file import Progress, Rates, State, progress_line, utc_iso, write_progress
from jobs.summary import OutputCounts, ReplicaUsage, RunSummary
from vlworkers import storage
from vlworkers.batch_stats import BatchStats
from vlworkers.metrics import JobMetrics

logger = logging.getLogger("caption.progress")

_RECENT_INTERVALS = 5  # the "now" rates cover about this many intervals


@dataclass
class ReplicaTimes:
    started_at: float  # wall clock, as the actor began loading the model
    last_seen: float
    busy_s: float = 0.0


@dataclass
class Totals:
    """What the model actors of this run reported, summed."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_error_kind: dict[str, int] = field(default_factory=dict)
    images: int = 0
    output_tokens: int = 0
    input_tokens: int = 0
    replicas: dict[str, ReplicaTimes] = field(default_factory=dict)

    def add(self, stats: BatchStats) -> None:
        self.rows += stats.rows
        for (status, kind), count in stats.by_outcome.items():
            self.by_status[status] = self.by_status.get(status, 0) + count
            if kind:
                self.by_error_kind[kind] = self.by_error_kind.get(kind, 0) + count
        self.images += stats.images
        self.output_tokens += stats.output_tokens
        self.input_tokens += stats.input_tokens
        replica = self.replicas.setdefault(
            stats.replica, ReplicaTimes(stats.finished_at - stats.busy_s, stats.finished_at)
        )
        replica.last_seen = stats.finished_at
        replica.busy_s += stats.busy_s

    def usage(self, until: float) -> ReplicaUsage:
        """Replica time counts to the end of the run: a fixed pool is held that long
        (with autoscaling, replicas removed early count to the end too: an upper bound)."""
        return ReplicaUsage(
            replicas=len(self.replicas),
            replica_seconds=sum(max(0.0, until - r.started_at) for r in self.replicas.values()),
            busy_seconds=sum(r.busy_s for r in self.replicas.values()),
            input_tokens=self.input_tokens,
        )


class ProgressTracker:
    """Runs as a Ray actor with no CPU of its own; every call is a few dict updates."""

    def __init__(self) -> None:
        self.totals = Totals()

    def replica_started(self, replica: str, started_at: float, ready_at: float) -> None:
        self.totals.replicas.setdefault(replica, ReplicaTimes(started_at, ready_at))

    def record(self, stats: BatchStats) -> None:
        self.totals.add(stats)

    def snapshot(self) -> Totals:
        return self.totals


_TrackerActor = ray.remote(num_cpus=0, max_restarts=0)(ProgressTracker)


class RateWindow:
    """Rates over the last `span_s` seconds of samples (always at least two samples)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.samples: deque[tuple[float, int, int, int]] = deque()

    def add(self, at: float, rows: int, images: int, tokens: int) -> tuple[float, float, float]:
        self.samples.append((at, rows, images, tokens))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.span_s:
            self.samples.popleft()
        first = self.samples[0]
        elapsed = at - first[0]
        if elapsed <= 0:
            return 0.0, 0.0, 0.0
        return (
            (rows - first[1]) / elapsed,
            (images - first[2]) / elapsed,
            (tokens - first[3]) / elapsed,
        )


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in sorted(a.keys() | b.keys())}


class ProgressReporter:
    def __init__(
        self, config: JobConfig, rows_total: int, earlier: OutputCounts, started_at: float
    ) -> None:
        self.output = config.output
        self.interval_s = config.progress_interval_s
        self.model = config.engine.model + (
            f"@{config.engine.revision}" if config.engine.revision else ""
        )
        self.rows_total = rows_total
        self.earlier = earlier
        self.started_at = started_at  # the run's start (wall clock), shared with the summary
        self.window = RateWindow(_RECENT_INTERVALS * self.interval_s)
        self.tracker = cast(ActorHandle, _TrackerActor.remote())
        self.metrics = JobMetrics(ray.get_runtime_context().get_job_id(), self.model)
        self.totals = Totals()
        self._tracker_silent = False  # warn once per silence, not at every interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    @classmethod
    def start(
        cls, config: JobConfig, rows_total: int, earlier: OutputCounts, started_at: float
    ) -> ProgressReporter:
        reporter = cls(config, rows_total, earlier, started_at)
        reporter._write(reporter._progress(State.RUNNING, reporter.totals))
        reporter._thread.start()
        return reporter

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()
            self._publish(self._progress(State.RUNNING, self.totals))

    def _poll(self) -> None:
        try:
            reply: ray.ObjectRef = self.tracker.snapshot.remote()
            self.totals = cast(Totals, ray.get(reply, timeout=max(10.0, self.interval_s)))
        except Exception as exc:  # keep the last totals; the next interval tries again
            log = logger.debug if self._tracker_silent else logger.warning
            log("progress tracker did not answer (counts may lag): %s", exc)
            self._tracker_silent = True
        else:
            self._tracker_silent = False

    def _progress(self, state: State, totals: Totals) -> Progress:
        now = time.time()
        elapsed = max(0.0, now - self.started_at)
        rows_now, images_now, tokens_now = self.window.add(
            elapsed, totals.rows, totals.images, totals.output_tokens
        )
        rows_done = self.earlier.rows + totals.rows
        remaining = max(0, self.rows_total - rows_done)
        speed = rows_now or (totals.rows / elapsed if elapsed > 0 else 0.0)
        eta = remaining / speed if speed > 0 else (0.0 if remaining == 0 else None)
        return Progress(
            state=state.value,
            started_at=utc_iso(self.started_at),
            updated_at=utc_iso(now),
            interval_s=self.interval_s,
            output=storage.redact(self.output),
            model=self.model,
            rows_total=self.rows_total,
            rows_done=rows_done,
            rows_done_before=self.earlier.rows,
            by_status=_add(self.earlier.by_status, totals.by_status),
            by_error_kind=_add(self.earlier.by_error_kind, totals.by_error_kind),
            images=self.earlier.images + totals.images,
            output_tokens=self.earlier.output_tokens + totals.output_tokens,
            rates=Rates(
                rows_per_s=_per_s(totals.rows, elapsed),
                rows_per_s_recent=round(rows_now, 3),
                images_per_s=_per_s(totals.images, elapsed),
                images_per_s_recent=round(images_now, 3),
                output_tokens_per_s=_per_s(totals.output_tokens, elapsed),
                output_tokens_per_s_recent=round(tokens_now, 3),
            ),
            eta_s=None if eta is None else round(eta, 1),
            elapsed_s=round(elapsed, 3),
            replicas=len(totals.replicas),
            driver={"pid": os.getpid(), "host": socket.gethostname()},
        )

    def _publish(self, progress: Progress) -> None:
        logger.info("%s", progress_line(progress))
        self.metrics.set(
            progress.rows_done,
            progress.rows_total,
            progress.rates.images_per_s_recent,
            progress.eta_s,
        )
        self._write(progress)

    def _write(self, progress: Progress) -> None:
        try:
            write_progress(self.output, progress)
        except Exception as exc:
            logger.warning("cannot write the progress file: %s", exc)

    def stop(self) -> ReplicaUsage:
        """Stop reporting and the tracker; how long the model replicas ran, for the summary."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._poll()
            ray.kill(self.tracker)
        return self.totals.usage(until=time.time())

    def failed(self, error: str) -> None:
        self.stop()
        self._publish(replace(self._progress(State.FAILED, self.totals), error=error))

    def finished(self, result: RunSummary, summary_uri: str) -> None:
        """The last word: counts from the output itself, as in the summary."""
        self.stop()
        progress = replace(
            self._progress(State.FINISHED, self.totals),
            rows_done=result.rows,
            by_status=result.by_status,
            by_error_kind=result.by_error_kind,
            images=result.images,
            output_tokens=result.output_tokens,
            rates=Rates(
                rows_per_s=result.rows_per_s,
                images_per_s=result.images_per_s,
                output_tokens_per_s=result.output_tokens_per_s,
            ),
            eta_s=0.0,
            elapsed_s=result.wall_time_s,
            summary=storage.redact(summary_uri),
            failed_manifest=result.failed_manifest and storage.redact(result.failed_manifest),
        )
        self._publish(progress)


def _per_s(value: int, elapsed: float) -> float:
    return round(value / elapsed, 3) if elapsed > 0 else 0.0


def rows_planned(num_rows: int, limit: int | None) -> int:
    return num_rows if limit is None else min(num_rows, limit)
