"""Typed, frozen settings handed to workers. Built once by `jobs/` and never mutated."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class PreprocessConfig(_Frozen):
    """What the CPU stage needs: fetch limits and the pixel size the model wants."""

    target_size: int = Field(
        description="Longest image side, in pixels, shipped to the model actors."
    )
    max_image_bytes: int = Field(
        50 * 1024 * 1024, description="Bytes above which a file is refused."
    )
    max_image_pixels: int = Field(
        64_000_000, description="Declared width*height above which an image is refused unread."
    )
    min_image_side: int = Field(8, description="Images with a shorter side are skipped (spacers).")
    fetch_timeout_s: float = Field(30.0, description="Per-request timeout for every fetch.")
    fetch_threads: int = Field(16, description="Concurrent fetches inside one CPU task.")
    fetch_attempts: int = Field(4, description="Tries per image for transient failures.")
    retry_base_delay_s: float = Field(0.5, description="First backoff delay; doubles per retry.")
    retry_max_delay_s: float = Field(20.0, description="Cap on one backoff delay.")
    allow_private_addresses: bool = Field(
        False, description="Let http(s) fetches reach loopback, private and link-local hosts."
    )
    default_task: str = Field(description="Task for rows without a 'task' column value.")
    default_prompt: str | None = Field(None, description="Instruction replacing the task's own.")
    max_new_tokens: int | None = Field(None, description="Overrides every task's token limit.")


class EngineConfig(_Frozen):
    """What a model actor needs to load and run the model."""

    model: str = Field(description="Hugging Face model id or local checkpoint folder.")
    revision: str | None = Field(None, description="Model revision (branch, tag or commit).")
    device: str = Field("auto", description="'auto' (cuda if present, else cpu), 'cuda' or 'cpu'.")
    dtype: str = Field("auto", description="'auto' (bf16 on GPU, float32 on CPU) or a torch dtype.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint.")
    attn_implementation: str | None = Field(
        None, description="Attention kernel; default: sdpa on GPU, the model's default on CPU."
    )
    min_new_tokens: int | None = Field(
        None,
        description="Generate at least this many tokens (capped by each row's limit): fixes "
        "output lengths for benchmarks on random weights.",
    )
    gpu_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of one GPU this replica holds (the job sets it from "
        "--gpus-per-replica); the transformers engine sizes its batches to that share's memory.",
    )
    engine: Literal["auto", "hf", "vllm"] = Field(
        "auto",
        description="'hf' (transformers), 'vllm' (continuous batching; DeepSeek-VL2 and "
        "DeepSeek-OCR) or 'auto' (vllm for those model families, hf for the rest).",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="vLLM: GPUs one replica shards the model over."
    )
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="vLLM: share of each GPU's memory (weights + KV cache) vLLM may take; "
        "on CPU builds, share of the machine's memory. None: 0.9 of this replica's gpu_share, "
        "so replicas sharing a GPU fit beside each other.",
    )
    max_model_len: int | None = Field(
        None, ge=1, description="vLLM: longest prompt + output in tokens; None: the model's own."
    )
    vllm_options: dict[str, Any] = Field(
        default_factory=dict,
        description="vLLM: further keyword arguments for vllm.LLM (e.g. max_num_seqs, load_format).",
    )
