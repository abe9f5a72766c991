"""The job's typed configuration, built once from the command line and passed down."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from vlworkers.config import EngineConfig, PreprocessConfig

DEFAULT_MODEL = "deepseek-community/deepseek-vl-1.3b-chat"


class JobConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    manifest: str = Field(description="Manifest URI: a Parquet file or a folder of them.")
    output: str = Field(description="Output folder URI; result shards and `_`-prefixed side files.")
    limit: int | None = Field(None, description="Process only the first N manifest rows.")
    overwrite: bool = Field(False, description="Delete an existing output folder first.")
    dedup: bool = Field(
        True, description="Generate identical images (same bytes and settings) once per job."
    )
    dedup_entries: int = Field(
        200_000, description="Results the job's dedup cache keeps (least recently used go)."
    )
    cache: str | None = Field(
        None, description="Folder URI of a cross-run result cache, read at start, added to at end."
    )
    retry_failed: bool = Field(
        False, description="Redo rows whose last try failed transiently (timeouts, 5xx, OOM)."
    )
    max_failure_rate: float = Field(
        0.9, description="Stop the job when more than this share of the first rows failed."
    )
    failure_check_rows: int = Field(
        200, description="How many first rows (per model replica) judge --max-failure-rate."
    )
    batch_size: int | None = Field(
        None, description="Rows handed to one replica at a time; None: 128 on GPU, 8 on CPU."
    )
    min_replicas: int = Field(1, description="Smallest model actor pool.")
    max_replicas: int = Field(1, description="Largest model actor pool.")
    gpus_per_replica: float | None = Field(
        None,
        description="GPUs per model replica (fractions share a GPU); None: 1 if the cluster has GPUs.",
    )
    cpu_tasks: int | None = Field(
        None, description="Decode tasks at once; None: the CPUs the replicas leave free."
    )
    cpus_per_replica: float = Field(1.0, description="CPUs reserved per model replica.")
    rows_per_file: int = Field(5000, description="Minimum rows per output Parquet file.")
    ray_address: str | None = Field(
        None, description="Ray cluster to join; None: RAY_ADDRESS, else start Ray in-process."
    )
    progress_interval_s: float = Field(
        30.0, gt=0, description="Seconds between progress lines and `_progress.json` updates."
    )
    preprocess: PreprocessConfig
    engine: EngineConfig
