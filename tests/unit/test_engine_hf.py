"""The transformers engine on tiny real checkpoints: prompts, batching, per-row failures."""

from __future__ import annotations

import numpy as np
import pytest

from manifests.schema import ErrorKind
from vlworkers.config import EngineConfig
from vlworkers.engine import GenerationRequest
from vlworkers.engine_hf import HFEngine
from vlworkers.tiny import SYSTEM_PROMPT


@pytest.fixture(scope="module", params=["siglip", "hybrid"])
def engine(request, tiny_model, tiny_hybrid_model) -> HFEngine:
    model = tiny_model if request.param == "siglip" else tiny_hybrid_model
    return HFEngine(EngineConfig(model=str(model), device="cpu"))


def request_for(
    seed: int, max_new_tokens: int = 6, shape=(24, 32), prompt: str = "Describe this image."
) -> GenerationRequest:
    pixels = np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)
    return GenerationRequest(pixels=pixels, prompt=prompt, max_new_tokens=max_new_tokens)


def test_prompt_follows_the_deepseek_conversation_format(engine):
    assert engine.chat_prompt("Describe this image.") == (
        f"{SYSTEM_PROMPT}\n\nUser: <image_placeholder>Describe this image.\n\nAssistant:"
    )


def test_batch_generation_matches_single_rows(engine):
    wordy = "Describe this image in great detail, naming every object, colour and shape in it."
    requests = [
        request_for(1),
        request_for(2, shape=(32, 16)),
        request_for(3, max_new_tokens=3),
        request_for(4, prompt=wordy),  # pads the others in its call
    ]
    batched = engine.generate(requests)
    alone = [engine.generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in alone]
    # Padding in a batch is not counted as input: each row reads what it reads alone.
    assert [r.n_input_tokens for r in batched] == [r.n_input_tokens for r in alone]
    image_tokens = engine.processor.num_image_tokens
    assert all(r.n_input_tokens > image_tokens for r in batched)
    for result, request in zip(batched, requests, strict=True):
        assert result.error_kind is None
        assert 0 < result.n_output_tokens <= request.max_new_tokens
        assert result.finish_reason in ("stop", "length")
        assert result.finish_reason == "stop" or result.n_output_tokens == request.max_new_tokens


def test_a_failing_row_fails_alone(engine, monkeypatch):
    original = engine._generate_batch
    poisoned = request_for(99)

    def flaky(requests, max_new_tokens):
        if any(r is poisoned for r in requests):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return original(requests, max_new_tokens)

    monkeypatch.setattr(engine, "_generate_batch", flaky)
    results = engine.generate([request_for(1), poisoned, request_for(2)])
    assert [r.error_kind for r in results] == [None, ErrorKind.GENERATION_ERROR.value, None]
    assert "device-side assert" in results[1].error


def test_out_of_memory_splits_the_batch(engine, monkeypatch):
    original = engine._generate_batch
    sizes: list[int] = []
    too_big = request_for(7)

    def small_batches_only(requests, max_new_tokens):
        sizes.append(len(requests))
        if len(requests) > 2 or any(r is too_big for r in requests):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(requests, max_new_tokens)

    monkeypatch.setattr(engine, "_generate_batch", small_batches_only)
    requests = [request_for(i) for i in range(4)] + [too_big]
    results = engine.generate(requests)
    assert [r.error_kind for r in results] == [None] * 4 + [ErrorKind.OOM.value]
    assert sizes[0] == 5 and max(sizes[1:]) <= 3
