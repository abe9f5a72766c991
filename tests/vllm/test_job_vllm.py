"""The whole job on local Ray with the vLLM engine: every task, failed rows, the output schema.

One vLLM job run (the model loads once, ~1 min on CPU) and one transformers run on the same
manifest, whose output schema the vLLM run must match.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from jobs.run import EXIT_OK, main
from manifests.schema import OUTPUT_COLUMNS
from tests.images import write_images
from tests.vllm.conftest import CPU_VLLM_OPTIONS, MAX_MODEL_LEN
from vlworkers.tasks import TASKS

pytest.importorskip("vllm", reason="needs vLLM: run in .venv-vllm (make test-vllm)")
pytestmark = pytest.mark.vllm

TOO_LONG = "word " * MAX_MODEL_LEN  # more tokens than the model's context: vLLM refuses it


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vllm-job")
    images = folder / "images"
    images.mkdir()
    write_images(images)
    rows = [
        ("cap", "photo.jpg", None, None),
        ("alt", "wide.jpg", "alt_text", None),
        ("ocr", "label.png", "ocr", None),
        ("long", "photo.jpg", "custom", TOO_LONG),
        ("bad", "broken.jpg", None, None),
        ("gone", "missing.png", None, None),
    ]
    table = pa.Table.from_pylist(
        [
            {"id": i, "uri": str(images / name), "task": task, "prompt": prompt, "shelf": i.upper()}
            for i, name, task, prompt in rows
        ]
    )
    path = folder / "batch.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def outputs(manifest, tiny_vl2, tiny_model) -> dict[str, Path]:
    """Run the job once per engine (in-process Ray, started once for both)."""
    out = {"vllm": manifest.parent / "vllm-out", "hf": manifest.parent / "hf-out"}
    vllm_options = ["--max-model-len", str(MAX_MODEL_LEN), "--vllm-options"]
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        # No --engine: auto picks vllm from the checkpoint's config.json.
        _run(manifest, tiny_vl2, out["vllm"], *vllm_options, json.dumps(CPU_VLLM_OPTIONS))
        _run(manifest, tiny_model, out["hf"], "--engine", "hf", "--max-new-tokens", "4")
    finally:
        ray.shutdown()
    return out


def _run(manifest: Path, model: Path, output: Path, *options: str) -> None:
    argv = [str(manifest), "--model", str(model), "--output", str(output), *options]
    assert main(argv) == EXIT_OK


def _rows(output: Path) -> dict[str, dict]:
    return {row["id"]: row for row in pq.read_table(output).to_pylist()}


def test_every_task_runs_to_its_own_token_limit(outputs, tiny_vl2):
    rows = _rows(outputs["vllm"])
    for row_id, task in (("cap", "caption"), ("alt", "alt_text"), ("ocr", "ocr")):
        row = rows[row_id]
        assert row["status"] == "ok", row
        assert row["task"] == task and row["prompt"] == TASKS[task].instruction
        assert isinstance(row["text"], str) and row["error_kind"] is None
        assert row["model"] == str(tiny_vl2)
        assert row["finish_reason"] in ("stop", "length")
    # One batch, each row with its own limit: random weights never stop early.
    assert (rows["cap"]["n_output_tokens"], rows["cap"]["finish_reason"]) == (96, "length")
    assert (rows["alt"]["n_output_tokens"], rows["alt"]["finish_reason"]) == (48, "length")
    # OCR's 1024 tokens do not fit: the context (--max-model-len) ends it first.
    assert rows["ocr"]["finish_reason"] == "length"
    assert 0 < rows["ocr"]["n_output_tokens"] < MAX_MODEL_LEN - 400


def test_a_row_vllm_refuses_fails_alone(outputs):
    rows = _rows(outputs["vllm"])
    long = rows["long"]
    assert long["status"] == "failed" and long["error_kind"] == "generation_error"
    assert "maximum context length" in long["error"]
    assert long["text"] is None and long["n_output_tokens"] is None
    assert long["shelf"] == "LONG"
    assert rows["bad"]["error_kind"] == "decode_error"
    assert rows["gone"]["error_kind"] == "not_found"
    summary = json.loads((outputs["vllm"] / "_summary.json").read_text())
    assert summary["by_status"] == {"ok": 3, "failed": 3}
    assert summary["config"]["engine"]["engine"] == "vllm"  # what auto resolved to


def test_output_schema_matches_the_transformers_engine(outputs):
    vllm_schema = pq.read_table(outputs["vllm"]).schema.remove_metadata()
    hf_schema = pq.read_table(outputs["hf"]).schema.remove_metadata()
    assert vllm_schema.names == [*OUTPUT_COLUMNS, "shelf"]
    assert vllm_schema == hf_schema
    assert len(_rows(outputs["hf"])) == len(_rows(outputs["vllm"])) == 6
