"""The job's result cache: started on the driver, optionally filled from and saved to a
cross-run cache folder (--cache), one Parquet file per run."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import ray
from ray.actor import ActorHandle

from jobs.config import JobConfig
from vlworkers import storage
from vlworkers.atomic_write import write_table_atomically
from vlworkers.dedup import CachedResult, ResultCache

logger = logging.getLogger(__name__)

_COLUMNS = ("key", "text", "n_output_tokens", "finish_reason", "source_id")
_PRELOAD_CHUNK = 50_000


def start_result_cache(config: JobConfig) -> ActorHandle | None:
    if not config.dedup:
        return None
    cache: Any = (
        ray.remote(num_cpus=0)(ResultCache)
        .options(max_concurrency=1)
        .remote(max_entries=config.dedup_entries, keep_new=config.cache is not None)
    )
    if config.cache:
        loaded = _preload(cache, config.cache)
        logger.info("result cache %s: %d earlier results", storage.redact(config.cache), loaded)
    return cache


def _preload(cache: Any, cache_uri: str) -> int:
    fs, path = storage.resolve(cache_uri)
    if not fs.exists(path):
        return 0
    dataset = pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    loaded = 0
    for batch in dataset.to_batches(columns=list(_COLUMNS), batch_size=_PRELOAD_CHUNK):
        rows = batch.to_pylist()
        loaded = int(
            ray.get(
                cache.preload.remote(
                    {
                        r["key"]: CachedResult(
                            r["text"], r["n_output_tokens"], r["finish_reason"], r["source_id"]
                        )
                        for r in rows
                    }
                )
            )
        )
    return loaded


def save_new_results(config: JobConfig, cache: ActorHandle | None) -> int:
    if cache is None or not config.cache:
        return 0
    fresh: dict[str, CachedResult] = dict(ray.get(cache.new_results.remote()))
    if not fresh:
        return 0
    table = pa.table(
        {
            "key": list(fresh),
            "text": [r.text for r in fresh.values()],
            "n_output_tokens": pa.array([r.n_output_tokens for r in fresh.values()], pa.int32()),
            "finish_reason": [r.finish_reason for r in fresh.values()],
            "source_id": [r.source_id for r in fresh.values()],
        }
    )
    fs, path = storage.resolve(config.cache)
    fs.makedirs(path, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    write_table_atomically(table, fs, storage.join(path, name))
    return table.num_rows
