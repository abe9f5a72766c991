"""The Ray Data plan: read → prepare pixels (CPU tasks) → generate (model actors) → write."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import ray
from ray.actor import ActorHandle

from jobs.config import JobConfig
from manifests import schema
from vlworkers import storage
from vlworkers.actor import CaptionActor
from vlworkers.atomic_write import atomic_arrow_filesystem
from vlworkers.failure_guard import FailureGuard
from vlworkers.preprocess import preprocess_batch

logger = logging.getLogger(__name__)

GPU_BATCH_SIZE = 128  # an upper bound: the engine sizes its calls to GPU memory
CPU_BATCH_SIZE = 8

# A CPU block holds at most about this many bytes of pixels (uint8 at model size).
_PREPROCESS_BLOCK_BYTES = 64 * 1024 * 1024


def rows_per_task(target_size: int, model_batch_size: int) -> int:
    """Rows per CPU task and per block downstream: the unit of streaming and of resume.

    Small enough that blocks of pixels stay near _PREPROCESS_BLOCK_BYTES and that work
    reaches the output (and survives a kill) often; a multiple of the model batch, so
    actors get full batches.
    """
    by_memory = max(1, _PREPROCESS_BLOCK_BYTES // max(target_size * target_size * 3, 1))
    rows = min(by_memory, 256, max(4 * model_batch_size, 16))
    return max(model_batch_size, (rows // model_batch_size) * model_batch_size)


def preprocess_concurrency(config: JobConfig) -> int:
    """CPU tasks at once: the CPUs the model replicas leave free, at least one.

    Without the cap, decode tasks can hold every CPU of a small node so the model actor
    cannot even start: the whole manifest gets decoded into the object store first, and
    the job stops streaming. Counted at start: on an autoscaling cluster, set --cpu-tasks.
    """
    if config.cpu_tasks is not None:
        return config.cpu_tasks
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus - config.max_replicas * config.cpus_per_replica))


def resolve_gpus_per_replica(config: JobConfig) -> float:
    if config.gpus_per_replica is not None:
        return config.gpus_per_replica
    if config.engine.device == "cpu":
        return 0.0
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def build_dataset(
    config: JobConfig,
    manifest_schema: pa.Schema,
    done_ids: np.ndarray,
    progress: ActorHandle | None = None,
    dedup: ActorHandle | None = None,
) -> ray.data.Dataset:
    manifest_fs, manifest_path = storage.resolve(config.manifest)
    dataset = ray.data.read_parquet(manifest_path, filesystem=storage.arrow_filesystem(manifest_fs))
    if config.limit is not None:
        dataset = dataset.limit(config.limit)
    gpus = resolve_gpus_per_replica(config)
    # Measured on an H100 (benchmarks/RESULTS.md): 128 rows give 2.2x the images/s of 32;
    # the transformers engine splits a batch into calls that fit the replica's GPU memory
    # (so 1024-token OCR rows on a 24 GB card too). On CPU bigger batches only add latency.
    batch_size = config.batch_size or (GPU_BATCH_SIZE if gpus > 0 else CPU_BATCH_SIZE)
    task_rows = rows_per_task(config.preprocess.target_size, batch_size)
    # A manifest file is often one block of a million uris: split it (streaming, no
    # shuffle) so CPU tasks run in parallel and results flow to the output steadily.
    dataset = dataset.repartition(target_num_rows_per_block=task_rows)
    dataset = dataset.map_batches(
        preprocess_batch,  # type: ignore[arg-type]  # Ray's stubs omit fn_kwargs functions
        # In a list so Ray hands the workers the reference, fetched once where needed.
        fn_kwargs={
            "config": config.preprocess,
            "done_ids": [ray.put(done_ids)] if done_ids.size else None,
        },
        batch_format="pyarrow",
        batch_size=task_rows,
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=preprocess_concurrency(config)),
        # Room for a block of pixels plus the decode buffers. A resource request the
        # model actors do not share also keeps Ray Data from fusing this CPU stage into
        # them: the GPU must never wait on decoding.
        memory=4 * _PREPROCESS_BLOCK_BYTES,
    )
    logger.info(
        "model replicas: %d-%d, %.2f GPU and %.1f CPU each, batches of %d",
        config.min_replicas,
        config.max_replicas,
        gpus,
        config.cpus_per_replica,
        batch_size,
    )
    return dataset.map_batches(
        CaptionActor,
        fn_constructor_kwargs={
            "engine_config": config.engine.model_copy(update={"gpu_share": min(1.0, gpus or 1.0)}),
            "output_schema": schema.output_schema(manifest_schema),
            "failure_guard": FailureGuard(config.max_failure_rate, config.failure_check_rows),
            "progress": progress,  # the job's ProgressTracker: one report per batch
            "dedup": dedup,  # the job's ResultCache: one claim per batch
        },
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(
            min_size=config.min_replicas, max_size=config.max_replicas
        ),
        num_gpus=gpus,
        num_cpus=config.cpus_per_replica,
    )


def run_pipeline(
    config: JobConfig,
    manifest_schema: pa.Schema,
    done_ids: np.ndarray,
    progress: ActorHandle | None = None,
    dedup: ActorHandle | None = None,
) -> None:
    dataset = build_dataset(config, manifest_schema, done_ids, progress, dedup)
    output_fs, output_path = storage.resolve(config.output)
    dataset.write_parquet(
        output_path,
        filesystem=atomic_arrow_filesystem(output_fs),
        min_rows_per_file=config.rows_per_file,
        # Writing is I/O. Reserving no CPU lets files land while decoding and the model
        # hold every CPU, instead of waiting until the whole manifest is decoded.
        ray_remote_args={"num_cpus": 0},
    )
