"""The transformers engine: DeepSeek-VL (1.3B, SigLIP) and DeepSeek-VL hybrid (7B, SigLIP+SAM).

Loads through the Auto classes and the checkpoint's own processor and chat template,
so a tiny local checkpoint and the real hub checkpoints take the same path.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from manifests.schema import ErrorKind
from vlworkers.batch_sizer import BatchSizer, kv_bytes_per_token, memory_budget
from vlworkers.config import EngineConfig
from vlworkers.device_pixels import UnsupportedImageProcessorError, model_pixels, towers_for
from vlworkers.engine import GenerationRequest, GenerationResult
from vlworkers.tasks import TASKS

logger = logging.getLogger(__name__)

# The memory probe at start: a few rows, a few tokens; the KV cache beyond is computed.
_PROBE_ROWS = 4
_PROBE_TOKENS = 8


class ModelLoadError(RuntimeError):
    """The model or its processor could not be loaded: fatal for the job."""


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = getattr(torch, requested, None)
    if not isinstance(dtype, torch.dtype):
        raise ModelLoadError(f"unknown dtype {requested!r}")
    return dtype


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _load(config: EngineConfig, dtype: torch.dtype, attn: str | None) -> tuple[Any, Any]:
    try:
        processor = AutoProcessor.from_pretrained(
            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
        model = AutoModelForImageTextToText.from_pretrained(
            config.model,
            revision=config.revision,
            trust_remote_code=config.trust_remote_code,
            dtype=dtype,
            **({"attn_implementation": attn} if attn else {}),
        )
    except Exception as exc:
        raise ModelLoadError(f"cannot load model {config.model!r}: {exc}") from exc
    return processor, model


class HFEngine:
    def __init__(self, config: EngineConfig) -> None:
        self.model_name = config.model
        self.min_new_tokens = config.min_new_tokens
        self.device = pick_device(config.device)
        self.dtype = pick_dtype(config.dtype, self.device)
        attn = config.attn_implementation or ("sdpa" if self.device.type == "cuda" else None)
        self.processor, self.model = _load(config, self.dtype, attn)
        try:
            self.towers = towers_for(self.processor.image_processor)
        except UnsupportedImageProcessorError as exc:
            raise ModelLoadError(f"model {config.model!r}: {exc}") from exc
        self.model.to(self.device).eval()
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        )
        logger.info("loaded %s on %s as %s", config.model, self.device, self.dtype)
        self.sizer = (
            self._measure_memory(config.gpu_share) if self.device.type == "cuda" else BatchSizer()
        )

    def chat_prompt(self, instruction: str) -> str:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}
        ]
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True))

    def _measure_memory(self, gpu_share: float) -> BatchSizer:
        """Run a small probe batch and size later batches to this replica's GPU memory."""
        side = max(tower.side for tower in self.towers)
        grey = np.full((side, side, 3), 127, dtype=np.uint8)
        probe = [GenerationRequest(grey, "Describe this image.", _PROBE_TOKENS)] * _PROBE_ROWS
        torch.cuda.synchronize(self.device)
        in_use = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._generate_batch(probe, _PROBE_TOKENS)
        row_bytes = (torch.cuda.max_memory_allocated(self.device) - in_use) / _PROBE_ROWS
        free, total = torch.cuda.mem_get_info(self.device)
        sizer = BatchSizer(
            budget_bytes=memory_budget(free, total, gpu_share, in_use),
            row_bytes=row_bytes,
            probe_tokens=_PROBE_TOKENS,
            kv_bytes=kv_bytes_per_token(
                self.model.config.get_text_config(), torch.finfo(self.dtype).bits // 8
            ),
        )
        limits = sorted({task.max_new_tokens for task in TASKS.values()})
        logger.info("batch size from GPU memory: %s", sizer.describe(limits))
        return sizer

    def _text_inputs(self, instructions: list[str]) -> dict[str, torch.Tensor]:
        """Chat prompts with each image placeholder expanded to the model's image tokens."""
        prompts = [self.chat_prompt(text) for text in instructions]
        image_token = self.processor.image_token
        for prompt in prompts:
            if prompt.count(image_token) != 1:
                raise ValueError(
                    f"the prompt holds {prompt.count(image_token)} {image_token} placeholders; "
                    "a row has one image"
                )
        expanded, _ = self.processor.get_text_with_replacements(
            prompts,
            [self.processor.replace_image_token({}, image_idx=i) for i in range(len(prompts))],
        )
        tokens = self.processor.tokenizer(expanded, padding=True, return_tensors="pt")
        return {key: value.to(self.device) for key, value in tokens.items()}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        # Rows with the same token limit share a generate call, so a caption never waits
        # for an OCR-length decode.
        groups: dict[int, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[request.max_new_tokens].append(index)
        for max_new_tokens, indices in groups.items():
            start = 0
            while start < len(indices):
                rows = self.sizer.rows_per_call(max_new_tokens) or len(indices)
                chunk = indices[start : start + rows]
                start += len(chunk)
                outputs = self._generate_resilient([requests[i] for i in chunk], max_new_tokens)
                for index, output in zip(chunk, outputs, strict=True):
                    results[index] = output
        return [
            r if r is not None else GenerationResult(error_kind=ErrorKind.GENERATION_ERROR.value)
            for r in results
        ]

    def _generate_resilient(
        self, requests: Sequence[GenerationRequest], max_new_tokens: int
    ) -> list[GenerationResult]:
        """Run a batch; on OOM split it in halves, on any other error isolate the bad row."""
        try:
            return self._generate_batch(requests, max_new_tokens)
        except Exception as exc:
            oom = is_oom(exc)
            if oom and self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(requests) == 1:
                kind = ErrorKind.OOM if oom else ErrorKind.GENERATION_ERROR
                logger.warning("generation failed for one row: %s", exc)
                return [
                    GenerationResult(error_kind=kind.value, error=f"{type(exc).__name__}: {exc}")
                ]
            if oom:
                self.sizer.out_of_memory(len(requests), max_new_tokens)
                middle = len(requests) // 2
                logger.warning("out of memory on a batch of %d; splitting", len(requests))
                return self._generate_resilient(
                    requests[:middle], max_new_tokens
                ) + self._generate_resilient(requests[middle:], max_new_tokens)
            logger.warning("batch of %d failed (%s); retrying row by row", len(requests), exc)
            return [out for r in requests for out in self._generate_resilient([r], max_new_tokens)]

    @torch.inference_mode()
    def _generate_batch(
        self, requests: Sequence[GenerationRequest], max_new_tokens: int
    ) -> list[GenerationResult]:
        inputs = self._text_inputs([r.prompt for r in requests])
        inputs.update(
            model_pixels([r.pixels for r in requests], self.towers, self.device, self.dtype)
        )
        output = self.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min(self.min_new_tokens or 0, max_new_tokens),
            do_sample=False,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()  # padding excluded
        return [
            self._result(tokens, read)
            for tokens, read in zip(new_tokens, prompt_tokens, strict=True)
        ]

    def _result(self, tokens: list[int], prompt_tokens: int) -> GenerationResult:
        if self.eos_token_id in tokens:
            tokens = tokens[: tokens.index(self.eos_token_id)]
            finish_reason = "stop"
        else:
            finish_reason = "length"
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return GenerationResult(
            text=text,
            n_output_tokens=len(tokens),
            finish_reason=finish_reason,
            n_input_tokens=prompt_tokens,
        )
