"""Command line → JobConfig. Every option a user needs, each with its help text."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from typing import Any

from jobs.config import DEFAULT_MODEL, JobConfig
from vlworkers import storage
from vlworkers.config import EngineConfig, PreprocessConfig
from vlworkers.engine_select import resolve_engine
from vlworkers.engine_vllm import check_vllm_options
from vlworkers.tasks import TASK_NAMES, TASKS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _replicas(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[-:]\s*(\d+)\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low < 1 or high < low:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, got {text!r}")
    return low, high


def _number(
    minimum: float, maximum: float = math.inf, *, above: bool = False
) -> Callable[[str], float]:
    """An argparse type for a float in [minimum, maximum] (or above minimum)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value > maximum or value < minimum or (above and value == minimum):
            bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            if maximum != math.inf:
                bound += f" and at most {maximum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    return parse


_fraction = _number(0.0, 1.0)
_seconds = _number(0.0, above=True)
_gpus = _number(0.0)


def _share(text: str) -> float:
    value = _fraction(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "engine", "Which inference engine runs the model; the vLLM engine's own settings."
    )
    group.add_argument(
        "--engine",
        choices=("auto", "hf", "vllm"),
        default="auto",
        help="hf: transformers, static batches (DeepSeek-VL). vllm: continuous batching, "
        "needs `pip install .[vllm]` (DeepSeek-VL2, DeepSeek-OCR). Default auto: vllm when the "
        "checkpoint's config (local or cached) or its name says DeepSeek-VL2 or DeepSeek-OCR.",
    )
    group.add_argument(
        "--tensor-parallel-size",
        type=_positive_int,
        default=1,
        metavar="N",
        help="vllm: shard each replica over N GPUs (default: 1; the replica then reserves N "
        "GPUs unless --gpus-per-replica says otherwise).",
    )
    group.add_argument(
        "--gpu-memory-utilization",
        type=_share,
        metavar="F",
        help="vllm: share of each GPU's memory vLLM takes for weights and KV cache (default: "
        "0.9 times --gpus-per-replica, so replicas sharing a GPU fit; on CPU builds, a share "
        "of the machine's memory).",
    )
    group.add_argument(
        "--max-model-len",
        type=_positive_int,
        metavar="TOKENS",
        help="vllm: longest prompt + output (default: the model's own); less leaves more "
        "KV cache for rows running at once.",
    )
    group.add_argument(
        "--vllm-options",
        type=_json_object,
        default={},
        metavar="JSON",
        help='vllm: further vllm.LLM arguments, e.g. {"max_num_seqs": 128}, or '
        '{"load_format": "dummy"} for random weights (benchmarks).',
    )


def _engine_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> EngineConfig:
    config = EngineConfig(
        model=args.model,
        revision=args.revision,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        min_new_tokens=args.min_new_tokens,
        engine=args.engine,
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        vllm_options=args.vllm_options,
        gpu_memory_utilization=args.gpu_memory_utilization,
    )
    # Resolved here so the summary records the engine that ran.
    engine = resolve_engine(config)
    vllm_only = {
        "--tensor-parallel-size": args.tensor_parallel_size != 1,
        "--gpu-memory-utilization": args.gpu_memory_utilization is not None,
        "--max-model-len": args.max_model_len is not None,
        "--vllm-options": bool(args.vllm_options),
    }
    given = [name for name, set_ in vllm_only.items() if set_]
    if engine == "hf" and given:
        parser.error(f"{', '.join(given)}: vllm engine only, and this model runs on hf (--engine)")
    try:
        check_vllm_options(args.vllm_options)
    except ValueError as exc:
        parser.error(str(exc))
    gpus, shards = args.gpus_per_replica, args.tensor_parallel_size
    if shards > 1 and gpus is not None and 0 < gpus < shards:
        parser.error("--gpus-per-replica must be at least --tensor-parallel-size")
    return config.model_copy(update={"engine": engine})


def build_parser() -> argparse.ArgumentParser:
    tasks_help = "; ".join(f"{name}: {spec.description}" for name, spec in TASKS.items())
    parser = argparse.ArgumentParser(
        prog="caption.py",
        description="Caption, alt-text or OCR every image in a Parquet manifest with a "
        "DeepSeek vision-language model on Ray, writing Parquet.",
    )
    parser.add_argument(
        "manifest",
        help="Manifest URI (local path, s3://, gs://, ...): Parquet with a 'uri' column.",
    )
    parser.add_argument(
        "--output", help="Output folder URI (default: beside the manifest, NAME.captions/)."
    )
    parser.add_argument(
        "--task",
        choices=TASK_NAMES,
        default=None,
        help=f"Default task for rows without a 'task' value ({tasks_help}). Default: caption, or custom when --prompt is given.",
    )
    parser.add_argument(
        "--prompt",
        help="Instruction replacing the task's own, for rows that name no task of their own.",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"Model id or local checkpoint folder (default: {DEFAULT_MODEL}).",
    )
    parser.add_argument(
        "--revision", help="Model revision: branch, tag or commit (recorded in the output)."
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="Rows handed to one replica at a time (default: 128 on GPU, 8 on CPU). On GPU "
        "the transformers engine splits them into generate calls that fit the replica's "
        "share of GPU memory, measured at start.",
    )
    parser.add_argument(
        "--replicas",
        type=_replicas,
        default=(1, 1),
        metavar="N|MIN-MAX",
        help="Model actor pool size, fixed or autoscaling between MIN and MAX (default: 1).",
    )
    parser.add_argument(
        "--gpus-per-replica",
        type=_gpus,
        default=None,
        help="GPUs per replica; fractions pack replicas of a small model onto one GPU (default: 1 when the cluster has GPUs, else 0).",
    )
    parser.add_argument(
        "--cpus-per-replica",
        type=_gpus,
        default=1.0,
        help="CPUs reserved per replica (default: 1).",
    )
    parser.add_argument(
        "--cpu-tasks",
        type=_positive_int,
        help="Fetch/decode tasks running at once (default: the cluster's CPUs minus those the "
        "model replicas reserve, counted at start; set it on autoscaling clusters).",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        help="Token limit for every row, replacing each task's own (caption 96, alt_text 48, ocr 1024, custom 256).",
    )
    parser.add_argument(
        "--min-new-tokens",
        type=_positive_int,
        help="Generate at least this many tokens per row (benchmarks on random weights).",
    )
    parser.add_argument(
        "--limit", type=_positive_int, help="Process only the first N rows (a dry run)."
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Delete an existing output folder first (default: resume: rows that already "
        "have a final row are not redone).",
    )
    parser.add_argument(
        "--no-dedup",
        action="store_true",
        help="Generate every row, even when its image and settings repeat an earlier row's "
        "(default: identical images are generated once per job and copied).",
    )
    parser.add_argument(
        "--dedup-entries",
        type=_positive_int,
        default=200_000,
        help="Results the job keeps for deduplication; the least recently used go first "
        "(default: 200000).",
    )
    parser.add_argument(
        "--cache",
        metavar="URI",
        help="Cross-run result cache folder (local or s3://): results for the same image, "
        "model, revision, prompt and generation settings are reused, new ones added.",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="On resume, also redo rows whose last try failed transiently "
        "(timeout, unavailable, oom).",
    )
    parser.add_argument(
        "--max-failure-rate",
        type=_fraction,
        default=0.9,
        help="Stop the job when more than this share of the first rows failed: a setup "
        "problem, not bad data (default: 0.9; 1 disables).",
    )
    parser.add_argument(
        "--failure-check-rows",
        type=_positive_int,
        default=200,
        help="How many first rows per model replica judge --max-failure-rate (default: 200).",
    )
    parser.add_argument(
        "--fetch-attempts",
        type=_positive_int,
        default=4,
        help="Tries per image for transient failures: 5xx, 429, timeouts, dropped "
        "connections (default: 4).",
    )
    parser.add_argument(
        "--retry-base-delay",
        type=float,
        default=0.5,
        help="First retry delay in seconds; doubles per retry, with jitter (default: 0.5).",
    )
    parser.add_argument(
        "--retry-max-delay",
        type=float,
        default=20.0,
        help="Cap on one retry delay in seconds (default: 20).",
    )
    parser.add_argument(
        "--allow-private-addresses",
        action="store_true",
        help="Let http(s) fetches reach loopback, private, link-local and metadata addresses "
        "(refused by default: manifest URLs may be hostile).",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="Where the model runs (default: cuda when present).",
    )
    parser.add_argument(
        "--dtype", default="auto", help="Model dtype (default: bfloat16 on GPU, float32 on CPU)."
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow code shipped with the checkpoint to run (off by default).",
    )
    _add_engine_arguments(parser)
    parser.add_argument(
        "--rows-per-file",
        type=_positive_int,
        default=5000,
        help="Minimum rows per output Parquet file (default: 5000).",
    )
    parser.add_argument(
        "--max-image-bytes",
        type=_positive_int,
        default=50 * 1024 * 1024,
        help="Refuse image files larger than this (default: 50 MiB).",
    )
    parser.add_argument(
        "--min-image-side",
        type=_positive_int,
        default=8,
        help="Skip images with a side shorter than this, e.g. tracking pixels (default: 8).",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=30.0,
        help="Seconds before a fetch request times out (default: 30).",
    )
    parser.add_argument(
        "--progress-interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="Seconds between progress lines in the job's log and rewrites of "
        "OUTPUT/_progress.json (default: 30).",
    )
    parser.add_argument(
        "--ray-address",
        help="Ray cluster to join (default: RAY_ADDRESS, set by `ray job submit`; else Ray starts in-process). Use 'auto' for a cluster started on this machine.",
    )
    return parser


def parse_config(argv: list[str] | None, target_size: int = 0) -> JobConfig:
    """Parse the command line. `target_size` is filled in later, once the model is probed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    engine = _engine_config(parser, args)
    task = args.task or ("custom" if args.prompt else "caption")
    min_replicas, max_replicas = args.replicas
    return JobConfig(
        manifest=args.manifest,
        output=args.output or storage.default_output_uri(args.manifest),
        limit=args.limit,
        overwrite=args.overwrite,
        retry_failed=args.retry_failed,
        dedup=not args.no_dedup,
        dedup_entries=args.dedup_entries,
        cache=args.cache,
        max_failure_rate=args.max_failure_rate,
        failure_check_rows=args.failure_check_rows,
        batch_size=args.batch_size,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        # A tensor-parallel replica needs all its shards' GPUs.
        gpus_per_replica=args.gpus_per_replica
        if args.gpus_per_replica is not None or engine.tensor_parallel_size == 1
        else float(engine.tensor_parallel_size),
        cpus_per_replica=args.cpus_per_replica,
        cpu_tasks=args.cpu_tasks,
        rows_per_file=args.rows_per_file,
        ray_address=args.ray_address,
        progress_interval_s=args.progress_interval,
        preprocess=PreprocessConfig(
            target_size=target_size,
            max_image_bytes=args.max_image_bytes,
            min_image_side=args.min_image_side,
            fetch_timeout_s=args.fetch_timeout,
            fetch_attempts=args.fetch_attempts,
            retry_base_delay_s=args.retry_base_delay,
            retry_max_delay_s=args.retry_max_delay,
            allow_private_addresses=args.allow_private_addresses,
            default_task=task,
            default_prompt=args.prompt,
            max_new_tokens=args.max_new_tokens,
        ),
        engine=engine,
    )
