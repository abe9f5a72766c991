"""Fixtures for the vLLM engine: a weightless tiny DeepSeek-VL2 and vLLM settings for CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# vLLM's engine core and worker run in the calling process (in the tests and in the Ray
# actors, which inherit this environment): two fewer process starts, ~1 min less per load.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

# vllm.LLM settings that make a load take seconds rather than minutes on 2 CPU cores:
# random weights without files, no torch.compile, a fixed 1 GiB KV cache (no memory
# profiling run) and no encoder profiling with a batch of full-size images.
CPU_VLLM_OPTIONS: dict[str, Any] = {
    "load_format": "dummy",
    "enforce_eager": True,
    "kv_cache_memory_bytes": 1 << 30,
    "skip_mm_profiling": True,
    "distributed_executor_backend": "uni",
}
# Prompt plus output, in tokens: one image takes ~420 of them, so a caption (96 new tokens)
# fits and an OCR transcript (1024) is cut by this limit.
MAX_MODEL_LEN = 640


@pytest.fixture(scope="session")
def tiny_vl2(tmp_path_factory) -> Path:
    from vlworkers.tiny_vl2 import build_tiny_vl2

    return build_tiny_vl2(tmp_path_factory.mktemp("tiny-vl2"))
