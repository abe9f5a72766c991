"""The job from start to end: checks first, then Ray, the pipeline and the summary.

Everything a user can get wrong (options, manifest, output folder, model name) is
checked before Ray starts, and reported as one line with a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import ray

from jobs import cli, summary
from jobs.config import JobConfig
from jobs.failed_manifest import write_failed_manifest
from jobs.model_probe import probe_model
from jobs.pipeline import run_pipeline
from jobs.progress import ProgressReporter, rows_planned
from jobs.result_cache import save_new_results, start_result_cache
from jobs.resume import OutputMismatchError, ResumeState, prepare_resume
from manifests import schema
from manifests.validate import ManifestError, ManifestInfo, validate_manifest
from vlworkers import storage
from vlworkers.engine_hf import ModelLoadError

logger = logging.getLogger("caption")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class OutputError(ValueError):
    pass


def prepare_output(config: JobConfig, manifest: ManifestInfo) -> ResumeState:
    """Empty the output for --overwrite; otherwise find what an earlier run finished."""
    fs, path = storage.resolve(config.output)
    if fs.exists(path) and not fs.isdir(path):
        raise OutputError(f"output {storage.redact(config.output)} exists and is not a folder")
    if config.overwrite and fs.exists(path):
        logger.info("removing the existing output %s", storage.redact(config.output))
        fs.rm(path, recursive=True)
    state = prepare_resume(
        config.output, schema.output_schema(manifest.schema), config.retry_failed
    )
    if state.done_rows:
        logger.info(
            "resuming: %d rows already have a final row%s",
            state.done_rows,
            f"; {state.requeued_rows} transient failures will be retried"
            if state.requeued_rows
            else "",
        )
    return state


# Messages of transient object-store errors, as s3fs and gcsfs word them, on top of
# Ray Data's own list (worded for pyarrow's S3 client): reads and writes retry on these.
_RETRIED_IO_ERRORS = (
    "SlowDown",
    "reduce your request rate",
    "ServiceUnavailable",
    "InternalError",
    "Connection reset",
    "Connection refused",
    "timed out",
)


def init_ray(config: JobConfig) -> None:
    if ray.is_initialized():  # embedded in a program (or a test) that started Ray itself
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    # With no address, start Ray here rather than join whatever cluster
    # /tmp/ray/ray_current_cluster names (possibly a dead one).
    ray.init(address=address or "local", logging_level=logging.WARNING, log_to_driver=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    context.retried_io_errors = [*context.retried_io_errors, *_RETRIED_IO_ERRORS]


def check_inputs(argv: list[str] | None) -> tuple[JobConfig, ManifestInfo, ResumeState]:
    config = cli.parse_config(argv)
    manifest = validate_manifest(config.manifest)
    model = probe_model(config.engine)
    resume = prepare_output(config, manifest)  # last: it may change the output folder
    logger.info(
        "manifest %s: %d rows; model %s (%s, images at %d px)",
        storage.redact(config.manifest),
        manifest.num_rows,
        config.engine.model,
        model.image_processor,
        model.target_size,
    )
    preprocess = config.preprocess.model_copy(update={"target_size": model.target_size})
    return config.model_copy(update={"preprocess": preprocess}), manifest, resume


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config, manifest, resume = check_inputs(argv)
    except (ManifestError, OutputError, OutputMismatchError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # What earlier runs left in the output: the summary's rates count only this run.
    earlier = summary.count_output(config.output) if resume.done_rows else summary.OutputCounts()
    started_at, started = time.time(), time.monotonic()
    init_ray(config)
    reporter = ProgressReporter.start(
        config, rows_planned(manifest.num_rows, config.limit), earlier, started_at
    )
    dedup = start_result_cache(config)
    try:
        run_pipeline(config, manifest.schema, resume.done_hashes, reporter.tracker, dedup)
    except Exception as exc:
        message = _root_message(exc)
        logger.error("the job failed: %s", message)
        reporter.failed(message)
        return EXIT_FAILED
    finally:
        elapsed = time.monotonic() - started

    usage = reporter.stop()
    saved = save_new_results(config, dedup)
    if saved:
        logger.info("added %d results to the cache %s", saved, storage.redact(config.cache or ""))
    failed = write_failed_manifest(config)
    result = summary.summarize(config, started_at, elapsed, earlier, usage, failed)
    where = summary.write_summary(config.output, result)
    reporter.finished(result, where)
    print(summary.format_summary(result))
    print(f"results: {storage.redact(config.output)}  (summary: {storage.redact(where)})")
    return EXIT_OK


def _root_message(exc: BaseException) -> str:
    """Ray wraps worker errors several times; the innermost message is the useful one."""
    messages: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(messages) < 10:
        messages.append(f"{type(current).__name__}: {current}".splitlines()[0])
        current = current.__cause__ or current.__context__
    return " <- ".join(reversed(messages))
