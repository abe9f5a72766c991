"""The vLLM engine: DeepSeek-VL2 and DeepSeek-OCR, continuously batched.

Every row of a batch goes to vLLM in one call, each with its own token limit. vLLM schedules
them continuously: a caption that ends frees its slot for the next row while an OCR transcript
goes on, instead of the whole batch decoding as long as its longest row. vLLM is an optional
dependency (`pip install .[vllm]`), imported only when this engine is constructed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from manifests.schema import ErrorKind
from vlworkers.config import EngineConfig
from vlworkers.engine import GenerationRequest, GenerationResult
from vlworkers.engine_hf import ModelLoadError, is_oom
from vlworkers.engine_select import VLLMFamily, fetch_model_config, vllm_family

logger = logging.getLogger(__name__)

_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's own default, for a replica with a whole GPU

# vllm.LLM arguments this engine sets from its own options; --vllm-options may not repeat them.
MANAGED_OPTIONS = frozenset(
    {
        "model",
        "tokenizer",
        "revision",
        "tokenizer_revision",
        "trust_remote_code",
        "dtype",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "limit_mm_per_prompt",
        "hf_overrides",
    }
)


def check_vllm_options(options: Mapping[str, Any]) -> None:
    clash = sorted(MANAGED_OPTIONS & set(options))
    if clash:
        raise ValueError(
            f"--vllm-options may not set {', '.join(clash)}: the job sets them itself "
            "(from --model, --revision, --dtype, --tensor-parallel-size, ...)"
        )


def gpu_memory_utilization(config: EngineConfig) -> float:
    """The share given, or vLLM's usual 0.9 of this replica's share of the GPU."""
    if config.gpu_memory_utilization is not None:
        return config.gpu_memory_utilization
    return round(_DEFAULT_GPU_MEMORY_UTILIZATION * config.gpu_share, 4)


def llm_kwargs(config: EngineConfig, family: VLLMFamily) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "revision": config.revision,
        "tokenizer_revision": config.revision,
        "trust_remote_code": config.trust_remote_code,
        "dtype": config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization(config),
        "max_model_len": config.max_model_len,
        # One image per row: vLLM plans encoder memory for one, not its default several.
        "limit_mm_per_prompt": {"image": 1},
    }
    if family.architecture_override:
        kwargs["hf_overrides"] = {"architectures": [family.architecture_override]}
    if config.tensor_parallel_size > 1:
        # The replica already holds its GPUs: vLLM's workers run as its subprocesses on them,
        # rather than as new Ray actors asking the cluster for more.
        kwargs["distributed_executor_backend"] = "mp"
    return {**kwargs, **config.vllm_options}


def chat_prompt(family: VLLMFamily, instruction: str) -> str:
    return family.prompt_template.format(prompt=instruction)


def to_result(output: Any, eos_token_id: int | None) -> GenerationResult:
    """A vLLM `RequestOutput` as a result; the end-of-sequence token is not counted."""
    completion = output.outputs[0]
    reason = completion.finish_reason
    if reason not in ("stop", "length"):
        return GenerationResult(
            error_kind=ErrorKind.GENERATION_ERROR.value, error=f"vLLM ended the request: {reason}"
        )
    tokens = list(completion.token_ids)
    # vLLM keeps the token that stopped the request (EOS, or a stop token id) in token_ids.
    if reason == "stop" and tokens and tokens[-1] in (eos_token_id, completion.stop_reason):
        tokens.pop()
    return GenerationResult(
        text=completion.text.strip(),
        n_output_tokens=len(tokens),
        finish_reason=reason,
        n_input_tokens=len(output.prompt_token_ids or []),
    )


def _failed(exc: BaseException) -> GenerationResult:
    kind = ErrorKind.OOM if is_oom(exc) else ErrorKind.GENERATION_ERROR
    return GenerationResult(error_kind=kind.value, error=f"{type(exc).__name__}: {exc}")


class VLLMEngine:
    def __init__(self, config: EngineConfig) -> None:
        from vllm import LLM, SamplingParams
        from vllm.v1.engine.exceptions import EngineDeadError

        self.model_name = config.model
        self.min_new_tokens = config.min_new_tokens
        self.family = vllm_family(config, fetch_model_config(config))
        self._sampling_params = SamplingParams
        self._fatal = EngineDeadError  # the engine is gone: every later row would fail too
        try:
            self.llm = LLM(**llm_kwargs(config, self.family))
        except Exception as exc:
            raise ModelLoadError(f"cannot load model {config.model!r} in vLLM: {exc}") from exc
        self.eos_token_id: int | None = self.llm.get_tokenizer().eos_token_id
        logger.info("loaded %s in vLLM (%s)", config.model, self.family.name)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All rows at once; if vLLM refuses the batch, each row alone, so one bad row fails alone."""
        if not requests:
            return []
        try:
            outputs = self._generate(requests)
        except self._fatal:
            raise
        except Exception as exc:
            if len(requests) == 1:
                logger.warning("generation failed for one row: %s", exc)
                return [_failed(exc)]
            logger.warning("batch of %d failed (%s); retrying row by row", len(requests), exc)
            return [result for r in requests for result in self.generate([r])]
        return [to_result(output, self.eos_token_id) for output in outputs]

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[Any]:
        prompts = [
            {
                "prompt": chat_prompt(self.family, r.prompt),
                "multi_modal_data": {"image": Image.fromarray(r.pixels)},
            }
            for r in requests
        ]
        params = [self._params(r) for r in requests]
        return list(self.llm.generate(prompts, params, use_tqdm=False))

    def _params(self, request: GenerationRequest) -> Any:
        """Greedy, like the transformers engine, up to the row's own token limit."""
        limit = request.max_new_tokens
        return self._sampling_params(
            temperature=0.0, max_tokens=limit, min_tokens=min(self.min_new_tokens or 0, limit)
        )
