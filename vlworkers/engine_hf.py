"""The transformers engine: DeepSeek-VL (1.3B, SigLIP) and DeepSeek-VL hybrid (7B, SigLIP+SAM).

Loads through the Auto classes and the checkpoint's own processor and chat template,
so a tiny local checkpoint and the real hub checkpoints take the same path.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from manifests.schema import ErrorKind
from vlworkers.config import EngineConfig
from vlworkers.device_pixels import UnsupportedImageProcessorError, model_pixels, towers_for
from vlworkers.engine import GenerationRequest, GenerationResult

logger = logging.getLogger(__name__)


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

    def chat_prompt(self, instruction: str) -> str:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}
        ]
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True))

    def _text_inputs(self, instructions: list[str]) -> dict[str, torch.Tensor]:
        """Chat prompts with each image placeholder expanded to the model's image tokens."""
        prompts = [self.chat_prompt(text) for text in instructions]
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
            outputs = self._generate_resilient([requests[i] for i in indices], max_new_tokens)
            for index, output in zip(indices, outputs, strict=True):
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
        return [self._result(tokens, max_new_tokens) for tokens in new_tokens]

    def _result(self, tokens: list[int], max_new_tokens: int) -> GenerationResult:
        if self.eos_token_id in tokens:
            tokens = tokens[: tokens.index(self.eos_token_id)]
            finish_reason = "stop"
        else:
            finish_reason = "length"
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return GenerationResult(text=text, n_output_tokens=len(tokens), finish_reason=finish_reason)
