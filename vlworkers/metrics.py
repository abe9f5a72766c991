"""The job's Ray metrics (dashboard and Prometheus): names, tags and buckets in one place.

Ray exports each as `ray_<name>`. The model actors record per batch; the driver sets
the job gauges at every progress interval. Objects are built once per process (in an
actor's constructor), never at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.util.metrics import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from vlworkers.batch_stats import BatchStats

# Seconds; a CPU test batch takes well under a second, a 7B OCR batch on GPU a minute.
_LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 600]


class ActorMetrics:
    """Counters and latency histograms a model actor records once per batch."""

    def __init__(self, model: str) -> None:
        self.tags = {"model": model}
        self.rows = Counter(
            "vlcaption_rows_total",
            "Rows finished by the model actors, by status and error kind.",
            tag_keys=("model", "status", "error_kind"),
        )
        self.images = Counter(
            "vlcaption_images_total",
            "Images the model generated for (rows that reached it with pixels).",
            tag_keys=("model",),
        )
        self.output_tokens = Counter(
            "vlcaption_output_tokens_total",
            "Tokens generated, end-of-sequence excluded.",
            tag_keys=("model",),
        )
        self.input_tokens = Counter(
            "vlcaption_input_tokens_total",
            "Prompt tokens the model read, image tokens included (copied rows excluded).",
            tag_keys=("model",),
        )
        self.batch_latency = Histogram(
            "vlcaption_batch_latency_seconds",
            "Time a model actor spends on one batch, pixels to output table.",
            boundaries=_LATENCY_BOUNDARIES,
            tag_keys=("model",),
        )
        self.generate_latency = Histogram(
            "vlcaption_generate_latency_seconds",
            "Time in the engine's generate call for one batch (batches with images only).",
            boundaries=_LATENCY_BOUNDARIES,
            tag_keys=("model",),
        )

    def record(self, stats: BatchStats) -> None:
        for (status, kind), count in stats.by_outcome.items():
            self.rows.inc(count, tags={**self.tags, "status": status, "error_kind": kind})
        if stats.images:  # Counter.inc refuses zero
            self.images.inc(stats.images, tags=self.tags)
        if stats.output_tokens:
            self.output_tokens.inc(stats.output_tokens, tags=self.tags)
        if stats.input_tokens:
            self.input_tokens.inc(stats.input_tokens, tags=self.tags)
        self.batch_latency.observe(stats.busy_s, tags=self.tags)
        if stats.images:
            self.generate_latency.observe(stats.generate_s, tags=self.tags)


class JobMetrics:
    """Gauges the driver sets at every progress interval, one series per Ray job."""

    def __init__(self, job: str, model: str) -> None:
        self.tags = {"job": job, "model": model}
        keys = ("job", "model")
        self.rows_done = Gauge("vlcaption_job_rows_done", "Rows finished so far.", keys)
        self.rows_planned = Gauge(
            "vlcaption_job_rows_planned", "Rows the job will have finished at the end.", keys
        )
        self.images_per_s = Gauge(
            "vlcaption_job_images_per_second", "Images per second, recent window.", keys
        )
        self.eta = Gauge("vlcaption_job_eta_seconds", "Estimated seconds to the end.", keys)

    def set(
        self, rows_done: int, rows_planned: int, images_per_s: float, eta_s: float | None
    ) -> None:
        self.rows_done.set(rows_done, tags=self.tags)
        self.rows_planned.set(rows_planned, tags=self.tags)
        self.images_per_s.set(images_per_s, tags=self.tags)
        if eta_s is not None:
            self.eta.set(eta_s, tags=self.tags)
