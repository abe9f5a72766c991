"""The whole job on local Ray with both tiny architectures: every task, failed rows included."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import ray

from jobs.run import EXIT_OK, main
from manifests.schema import OUTPUT_COLUMNS
from vlworkers.tasks import TASKS

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.mark.parametrize("arch", ["siglip", "hybrid"])
def test_job_writes_one_row_per_manifest_row(arch, mixed_manifest, tiny_model, tiny_hybrid_model):
    manifest, expected = mixed_manifest
    model = str(tiny_model if arch == "siglip" else tiny_hybrid_model)
    assert (
        main([str(manifest), "--model", model, "--batch-size", "2", "--max-new-tokens", "12"])
        == EXIT_OK
    )

    output = manifest.parent / "batch.captions"
    table = pq.read_table(output)
    assert table.schema.names == [*OUTPUT_COLUMNS, "shelf"]
    rows = {row["id"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted(expected)

    for row_id in ("cap", "alt", "ocr", "own"):
        row, want = rows[row_id], expected[row_id]
        assert row["status"] == "ok", row
        assert row["text"] is not None and row["error_kind"] is None
        assert 0 < row["n_output_tokens"] <= 12
        assert row["finish_reason"] in ("stop", "length")
        assert row["model"] == model
        assert row["image_sha256"] == want["sha"]
        assert row["shelf"] == want["shelf"]
        assert row["attempts"] == 1
        assert row["width"] > 0 and row["height"] > 0
    assert (
        rows["cap"]["task"] == "caption" and rows["cap"]["prompt"] == TASKS["caption"].instruction
    )
    assert (
        rows["alt"]["task"] == "alt_text" and rows["alt"]["prompt"] == TASKS["alt_text"].instruction
    )
    assert rows["ocr"]["task"] == "ocr" and rows["ocr"]["prompt"] == TASKS["ocr"].instruction
    assert rows["own"]["prompt"] == "Name the colours."
    assert (rows["alt"]["width"], rows["alt"]["height"]) == (640, 160)

    assert rows["bad"]["status"] == "failed" and rows["bad"]["error_kind"] == "decode_error"
    assert rows["gone"]["status"] == "failed" and rows["gone"]["error_kind"] == "not_found"
    assert "missing.png" in rows["gone"]["error"]
    assert rows["gone"]["text"] is None and rows["gone"]["shelf"] == "C2"

    summary = json.loads((output / "_summary.json").read_text())
    assert summary["rows"] == 6
    assert summary["by_status"] == {"ok": 4, "failed": 2}
    assert summary["by_error_kind"] == {"decode_error": 1, "not_found": 1}

    # Ray Data reads the folder back too: side files start with "_".
    assert ray.data.read_parquet(str(output)).count() == 6


def test_task_limits_and_limit_option(mixed_manifest, tiny_model, tmp_path):
    manifest, _ = mixed_manifest
    output = tmp_path / "out"
    code = main(
        [
            str(manifest),
            "--model",
            str(tiny_model),
            "--output",
            str(output),
            "--limit",
            "3",
            "--task",
            "alt_text",
        ]
    )
    assert code == EXIT_OK
    rows = {row["id"]: row for row in pq.read_table(output).to_pylist()}
    assert len(rows) == 3
    for row in rows.values():
        if row["status"] == "ok":
            assert row["n_output_tokens"] <= TASKS[row["task"]].max_new_tokens
    assert rows["cap"]["task"] == "alt_text"  # the job default, since the row names none
