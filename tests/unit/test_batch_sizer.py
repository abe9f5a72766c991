"""Rows per generate call from GPU memory, and the lower limit an OOM leaves behind."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vlworkers.batch_sizer import BatchSizer, kv_bytes_per_token, memory_budget
from vlworkers.config import EngineConfig
from vlworkers.engine import GenerationRequest
from vlworkers.engine_hf import HFEngine

GIB = 2**30


def test_kv_cache_per_token_of_deepseek_vl_1_3b():
    # LLaMA-style text model of DeepSeek-VL 1.3B: 24 layers, 16 heads of 128, bf16.
    config = SimpleNamespace(num_hidden_layers=24, num_attention_heads=16, hidden_size=2048)
    assert kv_bytes_per_token(config, 2) == 2 * 24 * 16 * 128 * 2  # 192 KiB
    grouped = SimpleNamespace(**vars(config), num_key_value_heads=4)
    assert kv_bytes_per_token(grouped, 2) == 2 * 24 * 4 * 128 * 2


def test_budget_is_this_replicas_share_less_its_weights_and_never_over_free():
    whole = memory_budget(
        free_bytes=76 * GIB, total_bytes=80 * GIB, share=1.0, in_use_bytes=4 * GIB
    )
    assert whole == int(76 * GIB * 0.85)
    quarter = memory_budget(
        free_bytes=76 * GIB, total_bytes=80 * GIB, share=0.25, in_use_bytes=4 * GIB
    )
    assert quarter == int(16 * GIB * 0.85)
    crowded = memory_budget(
        free_bytes=2 * GIB, total_bytes=80 * GIB, share=1.0, in_use_bytes=4 * GIB
    )
    assert crowded == int(2 * GIB * 0.85)
    assert memory_budget(free_bytes=GIB, total_bytes=8 * GIB, share=0.1, in_use_bytes=GIB) == 0


def test_longer_outputs_get_fewer_rows():
    sizer = BatchSizer(
        budget_bytes=10 * GIB, row_bytes=100 * 2**20, probe_tokens=8, kv_bytes=192 * 2**10
    )
    caption, ocr = sizer.rows_per_call(48), sizer.rows_per_call(1024)
    assert caption == int(10 * GIB // (100 * 2**20 + 40 * 192 * 2**10))
    assert ocr is not None and caption is not None and 1 <= ocr < caption
    assert BatchSizer(budget_bytes=0, row_bytes=1, probe_tokens=1, kv_bytes=1).rows_per_call(9) == 1


def test_an_oom_halves_the_limit_for_that_token_budget_only():
    sizer = BatchSizer()  # CPU: no memory limit
    assert sizer.rows_per_call(48) is None
    sizer.out_of_memory(rows=10, max_new_tokens=48)
    assert (sizer.rows_per_call(48), sizer.rows_per_call(96)) == (5, None)
    sizer.out_of_memory(rows=5, max_new_tokens=48)
    sizer.out_of_memory(rows=9, max_new_tokens=48)  # a larger failure does not raise it again
    assert sizer.rows_per_call(48) == 2


@pytest.fixture(scope="module")
def engine(tiny_model) -> HFEngine:
    return HFEngine(EngineConfig(model=str(tiny_model), device="cpu"))


def _requests(count: int, tokens: int = 3) -> list[GenerationRequest]:
    rng = np.random.default_rng(0)
    return [
        GenerationRequest(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "Describe.", tokens)
        for _ in range(count)
    ]


def test_the_engine_splits_a_batch_into_calls_that_fit(engine, monkeypatch):
    calls: list[int] = []
    original = engine._generate_batch

    def counted(requests, max_new_tokens):
        calls.append(len(requests))
        return original(requests, max_new_tokens)

    monkeypatch.setattr(engine, "_generate_batch", counted)
    monkeypatch.setattr(engine, "sizer", BatchSizer(budget_bytes=3 * 2**20, row_bytes=2**20))
    results = engine.generate(_requests(7))
    assert calls == [3, 3, 1]
    assert [r.error_kind for r in results] == [None] * 7


def test_after_an_oom_later_batches_start_at_the_size_that_fitted(engine, monkeypatch):
    calls: list[int] = []
    original = engine._generate_batch

    def fits_two(requests, max_new_tokens):
        calls.append(len(requests))
        if len(requests) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return original(requests, max_new_tokens)

    monkeypatch.setattr(engine, "_generate_batch", fits_two)
    monkeypatch.setattr(engine, "sizer", BatchSizer())
    engine.generate(_requests(4))
    assert calls == [4, 2, 2]  # the first batch pays for the OOM once ...
    calls.clear()
    results = engine.generate(_requests(4))
    assert calls == [2, 2]  # ... and the next does not
    assert [r.error_kind for r in results] == [None] * 4
