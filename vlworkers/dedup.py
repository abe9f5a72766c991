"""Generate each distinct image once per job: identical images reuse the first result.

Web archives repeat logos and icons thousands of times. A `ResultCache` actor (one per
job, no CPU reserved) maps a result key (image hash + model + prompt + generation
settings) to its result. Model actors ask it once per batch which rows to generate:
- "hit": the result exists; the row is copied and says which row it came from;
- "mine": nobody has it; this actor generates it and publishes the result;
- "wait": another actor is generating it right now; fetch the result when it lands.
Claims expire, so a row whose generating actor died is generated again elsewhere. The
cache is bounded (least recently used results go first), so memory stays flat however
long the manifest; `preload` and `new_results` carry results across runs (--cache).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray.actor import ActorHandle

from vlworkers.engine import GenerationRequest, GenerationResult

HIT, MINE, WAIT = "hit", "mine", "wait"


@dataclass(frozen=True)
class CachedResult:
    text: str
    n_output_tokens: int
    finish_reason: str
    source_id: str  # the row whose generation produced it


def result_key(
    image_sha256: str, model: str, prompt: str, max_new_tokens: int, min_new_tokens: int | None
) -> str:
    """Everything that changes the output is in the key; nothing else is."""
    material = "\x1f".join(
        (image_sha256, model, prompt, str(max_new_tokens), str(min_new_tokens or 0))
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class ResultCache:
    """Use as a Ray actor: `ray.remote(num_cpus=0)(ResultCache).remote(...)`."""

    def __init__(
        self, max_entries: int = 200_000, claim_timeout_s: float = 120.0, keep_new: bool = False
    ) -> None:
        self.max_entries = max_entries
        self.claim_timeout_s = claim_timeout_s
        self.keep_new = keep_new  # only with a cross-run cache: it grows with unique images
        self.results: OrderedDict[str, CachedResult] = OrderedDict()
        self.claims: dict[str, float] = {}
        self.fresh: dict[str, CachedResult] = {}
        self.hits = 0
        self.generated = 0

    def claim(self, keys: list[str]) -> list[tuple[str, CachedResult | None]]:
        now = time.monotonic()
        answers: list[tuple[str, CachedResult | None]] = []
        for key in keys:
            cached = self.results.get(key)
            if cached is not None:
                self.results.move_to_end(key)
                self.hits += 1
                answers.append((HIT, cached))
            elif now - self.claims.get(key, -1e18) < self.claim_timeout_s:
                answers.append((WAIT, None))
            else:
                self.claims[key] = now
                answers.append((MINE, None))
        return answers

    def publish(self, results: dict[str, CachedResult]) -> None:
        for key, result in results.items():
            self._store(key, result)
            self.generated += 1
            if self.keep_new:
                self.fresh[key] = result
            self.claims.pop(key, None)

    def release(self, keys: list[str]) -> None:
        """Give up claims (generation failed) so the rows' twins are tried again."""
        for key in keys:
            self.claims.pop(key, None)

    def preload(self, results: dict[str, CachedResult]) -> int:
        for key, result in results.items():
            self._store(key, result)
        return len(self.results)

    def new_results(self) -> dict[str, CachedResult]:
        return dict(self.fresh)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self.results), "hits": self.hits, "generated": self.generated}

    def _store(self, key: str, result: CachedResult) -> None:
        self.results[key] = result
        self.results.move_to_end(key)
        while len(self.results) > self.max_entries:
            self.results.popitem(last=False)


@dataclass(frozen=True)
class KeyedRequest:
    row_id: str
    key: str
    request: GenerationRequest


class Deduplicator:
    """The model actor's side of the protocol: one `claim` round trip per batch."""

    def __init__(self, cache: ActorHandle, poll_s: float = 0.25) -> None:
        self.cache = cache
        self.poll_s = poll_s

    def run(
        self,
        rows: list[KeyedRequest],
        generate: Callable[[list[GenerationRequest]], list[GenerationResult]],
    ) -> list[tuple[GenerationResult, str | None]]:
        """Each row's result and, for copies, the id of the row that was generated."""
        first: dict[str, KeyedRequest] = {}
        for row in rows:
            first.setdefault(row.key, row)
        resolved: dict[str, tuple[GenerationResult, str | None]] = {}
        waiting = list(first)
        while waiting:
            answers: list[tuple[str, CachedResult | None]] = ray.get(
                self.cache.claim.remote(waiting)
            )
            mine = [
                key for key, (answer, _) in zip(waiting, answers, strict=True) if answer == MINE
            ]
            for key, (answer, cached) in zip(waiting, answers, strict=True):
                if answer == HIT and cached is not None:
                    resolved[key] = (_as_result(cached), cached.source_id)
            if mine:
                self._generate(mine, first, generate, resolved)
            waiting = [key for key in waiting if key not in resolved]
            if waiting:
                time.sleep(self.poll_s)  # another actor is generating these right now
        out: list[tuple[GenerationResult, str | None]] = []
        for row in rows:
            result, source = resolved[row.key]
            representative = first[row.key].row_id
            if row.row_id != representative and source is None:
                source = representative  # a twin within this batch
            out.append((result, source))
        return out

    def _generate(
        self,
        keys: list[str],
        first: dict[str, KeyedRequest],
        generate: Callable[[list[GenerationRequest]], list[GenerationResult]],
        resolved: dict[str, tuple[GenerationResult, str | None]],
    ) -> None:
        results = generate([first[key].request for key in keys])
        publish: dict[str, CachedResult] = {}
        failed: list[str] = []
        for key, result in zip(keys, results, strict=True):
            resolved[key] = (result, None)
            if result.error_kind is None and result.text is not None:
                publish[key] = CachedResult(
                    text=result.text,
                    n_output_tokens=result.n_output_tokens or 0,
                    finish_reason=result.finish_reason or "",
                    source_id=first[key].row_id,
                )
            else:
                failed.append(key)
        if publish:
            self.cache.publish.remote(publish)
        if failed:
            self.cache.release.remote(failed)


def _as_result(cached: CachedResult) -> GenerationResult:
    return GenerationResult(
        text=cached.text,
        n_output_tokens=cached.n_output_tokens,
        finish_reason=cached.finish_reason,
    )
