"""What every engine promises the model actor, as checks that run against any engine.

One result per request, in request order; a request that fails comes back as an error result
while the others succeed; `finish_reason` is "length" exactly when the row used its whole
token limit, and `n_output_tokens` never counts the end-of-sequence token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manifests.schema import ErrorKind
from vlworkers.engine import Engine, GenerationRequest, GenerationResult

POISONED_INDEX = 1


@dataclass(frozen=True)
class Outcome:
    requests: list[GenerationRequest]
    results: list[GenerationResult]
    no_requests: list[GenerationResult]


def _request(seed: int, max_new_tokens: int, shape: tuple[int, int]) -> GenerationRequest:
    pixels = np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)
    return GenerationRequest(pixels, "Describe this image.", max_new_tokens)


def run_contract(engine: Engine, poisoned: GenerationRequest) -> Outcome:
    """One batch: two good rows with different token limits around one that must fail."""
    requests = [_request(1, 3, (24, 32)), poisoned, _request(2, 5, (40, 20))]
    return Outcome(requests, engine.generate(requests), engine.generate([]))


def check_one_result_per_request_in_order(outcome: Outcome) -> None:
    assert len(outcome.results) == len(outcome.requests)
    assert outcome.no_requests == []
    # Random weights never end a row early, so each row's count is its own limit (3, then 5):
    # results in another order would show other counts.
    good = [r for i, r in enumerate(outcome.results) if i != POISONED_INDEX]
    assert [(r.n_output_tokens, r.finish_reason) for r in good] == [(3, "length"), (5, "length")]


def check_failing_row_fails_alone(outcome: Outcome) -> None:
    kinds = [r.error_kind for r in outcome.results]
    assert kinds == [None, ErrorKind.GENERATION_ERROR.value, None]
    failed = outcome.results[POISONED_INDEX]
    assert failed.error
    assert failed.text is None and failed.n_output_tokens is None and failed.finish_reason is None


def check_finish_reason_and_token_counts(outcome: Outcome) -> None:
    for request, result in zip(outcome.requests, outcome.results, strict=True):
        if result.error_kind is not None:
            continue
        assert isinstance(result.text, str) and result.error is None
        assert result.n_output_tokens is not None
        # The prompt the model read: the instruction, the chat frame and the image's tokens.
        assert result.n_input_tokens is not None and result.n_input_tokens > 16
        assert result.finish_reason in ("stop", "length")
        if result.finish_reason == "length":
            assert result.n_output_tokens == request.max_new_tokens
        else:
            assert result.n_output_tokens < request.max_new_tokens
