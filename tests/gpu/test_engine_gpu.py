"""The transformers engine on a CUDA GPU: bf16 and SDPA, both architectures.

Skipped without a GPU; the CPU suite runs the same engine code in float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlworkers.config import EngineConfig
from vlworkers.engine import GenerationRequest
from vlworkers.engine_hf import HFEngine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("arch", ["siglip", "hybrid"])
def test_bf16_sdpa_generation_on_gpu(arch, tiny_model, tiny_hybrid_model):
    model = tiny_model if arch == "siglip" else tiny_hybrid_model
    engine = HFEngine(EngineConfig(model=str(model)))
    assert engine.device.type == "cuda"
    assert engine.dtype == torch.bfloat16
    assert engine.model.config._attn_implementation == "sdpa"
    rng = np.random.default_rng(0)
    requests = [
        GenerationRequest(rng.integers(0, 255, (24 + i, 32, 3), dtype=np.uint8), "Describe.", 6)
        for i in range(4)
    ]
    results = engine.generate(requests)
    assert [r.error_kind for r in results] == [None] * 4
    assert all(r.n_output_tokens == 6 for r in results)


def test_real_oom_fails_one_row_not_the_batch(tiny_model, monkeypatch):
    engine = HFEngine(EngineConfig(model=str(tiny_model)))
    original = engine._generate_batch

    def allocate_too_much(requests, max_new_tokens):
        if len(requests) > 1:
            torch.empty(1 << 45, dtype=torch.uint8, device="cuda")  # 32 TiB: a real CUDA OOM
        return original(requests, max_new_tokens)

    monkeypatch.setattr(engine, "_generate_batch", allocate_too_much)
    rng = np.random.default_rng(1)
    requests = [
        GenerationRequest(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "Describe.", 4)
        for _ in range(3)
    ]
    results = engine.generate(requests)
    assert [r.error_kind for r in results] == [None] * 3  # split down to single rows, all fit


def test_batch_size_comes_from_this_replicas_gpu_memory(tiny_model):
    whole = HFEngine(EngineConfig(model=str(tiny_model))).sizer
    assert whole.budget_bytes and whole.budget_bytes > 0
    assert whole.row_bytes > 0 and whole.kv_bytes > 0
    caption, ocr = whole.rows_per_call(48), whole.rows_per_call(1024)
    assert caption is not None and ocr is not None and caption >= ocr >= 1
    half = HFEngine(EngineConfig(model=str(tiny_model), gpu_share=0.5)).sizer
    assert half.budget_bytes is not None and half.budget_bytes < whole.budget_bytes
