"""The engine contract (tests/vllm/contract.py) against both engines, on tiny random models.

Each engine gets one batch with a row that really fails on it: for transformers, a prompt
with a second image placeholder and no image for it; for vLLM, a prompt longer than the
model's context.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest

from tests.vllm import contract
from tests.vllm.conftest import CPU_VLLM_OPTIONS, MAX_MODEL_LEN
from vlworkers import tiny
from vlworkers.config import EngineConfig
from vlworkers.engine import Engine, GenerationRequest
from vlworkers.engine_hf import HFEngine

pytest.importorskip("vllm", reason="needs vLLM: run in .venv-vllm (make test-vllm)")
pytestmark = pytest.mark.vllm

PIXELS = np.full((32, 32, 3), 128, dtype=np.uint8)


def _hf(tiny_model) -> tuple[Engine, GenerationRequest]:
    engine = HFEngine(EngineConfig(model=str(tiny_model), device="cpu"))
    return engine, GenerationRequest(PIXELS, f"Compare {tiny.IMAGE} with this one.", 4)


def _vllm(tiny_vl2) -> tuple[Engine, GenerationRequest]:
    from vlworkers.engine_vllm import VLLMEngine

    config = EngineConfig(
        model=str(tiny_vl2),
        engine="vllm",
        max_model_len=MAX_MODEL_LEN,
        vllm_options=CPU_VLLM_OPTIONS,
    )
    return VLLMEngine(config), GenerationRequest(PIXELS, "word " * MAX_MODEL_LEN, 4)


@pytest.fixture(scope="module", params=["hf", "vllm"])
def outcome(request, tiny_model, tiny_vl2) -> Iterator[contract.Outcome]:
    engine, poisoned = _hf(tiny_model) if request.param == "hf" else _vllm(tiny_vl2)
    yield contract.run_contract(engine, poisoned)
    del engine
    gc.collect()  # the next engine's memory


def test_one_result_per_request_in_order(outcome):
    contract.check_one_result_per_request_in_order(outcome)


def test_a_failing_row_fails_alone(outcome):
    contract.check_failing_row_fails_alone(outcome)


def test_finish_reason_and_token_counts(outcome):
    contract.check_finish_reason_and_token_counts(outcome)
