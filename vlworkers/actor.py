"""The GPU stage: a Ray Data actor holding one model replica.

Constructed once per actor (the model loads once); called per batch. Rows that already
failed upstream pass straight through. Returns tables in the job's fixed output schema.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
from ray.actor import ActorHandle

from manifests import schema
from manifests.schema import Status
from vlworkers.batch_stats import BatchReporter
from vlworkers.config import EngineConfig
from vlworkers.dedup import Deduplicator, KeyedRequest, result_key
from vlworkers.engine import Engine, GenerationRequest, GenerationResult
from vlworkers.engine_hf import HFEngine
from vlworkers.failure_guard import FailureGuard

logger = logging.getLogger(__name__)


def load_engine(config: EngineConfig) -> Engine:
    # Imported on use: only jobs that pick the vLLM engine need its modules.
    from vlworkers.engine_select import resolve_engine
    from vlworkers.engine_vllm import VLLMEngine

    if resolve_engine(config) == "vllm":
        return VLLMEngine(config)
    return HFEngine(config)


class CaptionActor:
    def __init__(
        self,
        engine_config: EngineConfig,
        output_schema: pa.Schema,
        failure_guard: FailureGuard,
        progress: ActorHandle | None = None,
        dedup: ActorHandle | None = None,
    ) -> None:
        started = time.monotonic()
        started_at = time.time()  # wall clock: the job's progress tracker sums replica time
        self.failure_guard = failure_guard
        self.engine = load_engine(engine_config)
        self.model_label = engine_config.model + (
            f"@{engine_config.revision}" if engine_config.revision else ""
        )
        self.output_schema = output_schema
        self.reporter = BatchReporter(progress, self.model_label, started_at)
        self.dedup = Deduplicator(dedup) if dedup is not None else None
        self.min_new_tokens = engine_config.min_new_tokens
        logger.info("model actor ready in %.1fs", time.monotonic() - started)

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.monotonic()
        statuses = batch.column("status").to_pylist()
        pending = [i for i, status in enumerate(statuses) if status is None]
        results: dict[int, GenerationResult] = {}
        copied_from: dict[int, str] = {}
        generate_s = 0.0
        if pending:
            requests = [self._request(batch, i) for i in pending]
            generate_started = time.monotonic()
            if self.dedup is None:
                results = dict(zip(pending, self.engine.generate(requests), strict=True))
            else:
                keyed = [self._keyed(batch, i, r) for i, r in zip(pending, requests, strict=True)]
                for index, (result, source) in zip(
                    pending, self.dedup.run(keyed, self.engine.generate), strict=True
                ):
                    results[index] = result
                    if source is not None:
                        copied_from[index] = source
            generate_s = time.monotonic() - generate_started
        output = self._to_output(batch, statuses, results, copied_from)
        # Before the guard, so a job it stops still shows the failures that stopped it.
        # Copies (same image, same prompt) cost the model nothing: only fresh rows count.
        input_tokens = sum(
            result.n_input_tokens or 0
            for index, result in results.items()
            if index not in copied_from
        )
        self.reporter.batch_done(
            output, len(pending), time.monotonic() - started, generate_s, input_tokens
        )
        self.failure_guard.observe(
            output.column("status").to_pylist(), output.column("error_kind").to_pylist()
        )
        return output

    @staticmethod
    def _request(batch: pa.Table, index: int) -> GenerationRequest:
        height = batch.column(schema.PIXELS_HEIGHT)[index].as_py()
        width = batch.column(schema.PIXELS_WIDTH)[index].as_py()
        raw = batch.column(schema.PIXELS)[index].as_py()
        pixels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        return GenerationRequest(
            pixels=pixels,
            prompt=batch.column(schema.PROMPT)[index].as_py(),
            max_new_tokens=batch.column(schema.MAX_NEW_TOKENS)[index].as_py(),
        )

    def _keyed(self, batch: pa.Table, index: int, request: GenerationRequest) -> KeyedRequest:
        key = result_key(
            batch.column("image_sha256")[index].as_py(),
            self.model_label,
            request.prompt,
            request.max_new_tokens,
            self.min_new_tokens,
        )
        return KeyedRequest(row_id=batch.column(schema.ID)[index].as_py(), key=key, request=request)

    def _to_output(
        self,
        batch: pa.Table,
        statuses: list[str | None],
        results: dict[int, GenerationResult],
        copied_from: dict[int, str],
    ) -> pa.Table:
        n = batch.num_rows
        text: list[str | None] = [None] * n
        tokens: list[int | None] = [None] * n
        finish: list[str | None] = [None] * n
        model: list[str | None] = [None] * n
        error_kind = batch.column("error_kind").to_pylist()
        error = batch.column("error").to_pylist()
        status = list(statuses)
        for index, result in results.items():
            model[index] = self.model_label
            if result.error_kind is None:
                status[index] = Status.OK.value
                text[index], tokens[index], finish[index] = (
                    result.text,
                    result.n_output_tokens,
                    result.finish_reason,
                )
            else:
                status[index] = Status.FAILED.value
                error_kind[index], error[index] = result.error_kind, result.error
        new_columns = {
            "text": text,
            "status": status,
            "error_kind": error_kind,
            "error": error,
            "model": model,
            "n_output_tokens": tokens,
            "finish_reason": finish,
            "copied_from": [copied_from.get(i) for i in range(n)],
        }
        arrays = []
        for field in self.output_schema:
            if field.name in new_columns:
                arrays.append(pa.array(new_columns[field.name], type=field.type))
            else:
                arrays.append(batch.column(field.name).cast(field.type))
        return pa.Table.from_arrays(arrays, schema=self.output_schema)
