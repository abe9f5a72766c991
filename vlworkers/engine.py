"""What every inference engine takes and returns; the pipeline knows nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class GenerationRequest:
    pixels: np.ndarray  # uint8 (height, width, 3)
    prompt: str  # the user instruction; the engine wraps it in the model's chat template
    max_new_tokens: int


@dataclass(frozen=True)
class GenerationResult:
    text: str | None = None
    n_output_tokens: int | None = None
    n_input_tokens: int | None = None  # prompt tokens the model read, image tokens included
    finish_reason: str | None = None  # "stop" (end of sequence) or "length" (token limit)
    error_kind: str | None = None
    error: str | None = None


class Engine(Protocol):
    model_name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order; per-request failures come back as results."""
        ...
