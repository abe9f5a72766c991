"""Progress while a job runs, the run report after it, and the failed rows rerun.

Three job runs share one Ray: a first run (in a thread, watched through `_progress.json`,
`jobs/status.py` and Ray's metrics), a resumed run that finishes the manifest, and a
rerun of `_failed.parquet` into S3, watched through `jobs/status.py` there.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from s3fs import S3FileSystem
from transformers import AutoProcessor

from jobs import status
from jobs.failed_manifest import FAILED_FILE
from jobs.progress_file import parse_iso, read_progress
from jobs.run import EXIT_OK, main
from manifests.validate import validate_manifest
from tests.images import jpeg_bytes, png_bytes, write_images
from tests.servers import s3_server
from vlworkers.tasks import TASKS

# Polling is how a user watches too; the deadline only stops a hung test, it asserts nothing.
_POLL_S = 0.1
_GIVE_UP_S = 300


@pytest.fixture(scope="module")
def s3_endpoint():
    # fsspec caches filesystems, endpoint included: none may outlive its server.
    S3FileSystem.clear_instance_cache()
    with s3_server() as endpoint:
        yield endpoint
    S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def local_ray(s3_endpoint):
    # After the S3 server, so Ray's workers inherit AWS_ENDPOINT_URL; metrics reported
    # every second so they reach the metrics agent while the short test job runs.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        _system_config={"metrics_report_interval_ms": 1000},
    )
    yield
    ray.shutdown()


pytestmark = pytest.mark.usefixtures("local_ray")


def write_distinct_images(images: Path, count: int) -> list[str]:
    """One image per row, so every ok row costs a generation and progress moves in steps
    (with shared images, deduplication finishes the watched run in one batch)."""
    names = []
    for i in range(count):
        names.append(f"shade{i:02d}.jpg")
        (images / names[-1]).write_bytes(jpeg_bytes(color=f"#{40 + 7 * i:02x}80c0"))
    return names


def manifest_rows(images: Path) -> list[dict]:
    """30 rows; the first 24 hold two failures, the last 6 one failure and one skip."""
    names = write_distinct_images(images, 28)
    rows = [
        {"id": f"r{i:02d}", "uri": str(images / names[i]), "task": None, "prompt": None}
        for i in range(26)
    ]
    rows[5] = {"id": "gone-ocr", "uri": str(images / "later.png"), "task": "ocr", "prompt": None}
    rows[11] = {"id": "bad", "uri": str(images / "broken.jpg"), "task": None, "prompt": None}
    rows += [
        {"id": "gone-own", "uri": str(images / "nowhere.jpg"), "task": None, "prompt": "Name it."},
        {"id": "dot", "uri": str(images / "dot.png"), "task": None, "prompt": None},
        {"id": "r26", "uri": str(images / names[26]), "task": None, "prompt": None},
        {"id": "r27", "uri": str(images / names[27]), "task": None, "prompt": None},
    ]
    return [{**row, "shelf": f"S{i}"} for i, row in enumerate(rows)]


def run_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    return thread, codes


def watch(thread: threading.Thread, look: Callable[[], None]) -> None:
    started = time.monotonic()
    while thread.is_alive() and time.monotonic() - started < _GIVE_UP_S:
        look()
        time.sleep(_POLL_S)
    thread.join(timeout=_GIVE_UP_S)


def output_counts(output: str) -> tuple[int, dict[str, int], dict[str, int]]:
    table = pq.read_table(output)
    statuses = table["status"].value_counts().to_pylist()
    kinds = table["error_kind"].drop_null().value_counts().to_pylist()
    return (
        table.num_rows,
        {item["values"]: item["counts"] for item in statuses},
        {item["values"]: item["counts"] for item in kinds},
    )


def summary_matching_output(output: str) -> tuple[dict, int, dict[str, int]]:
    """The run summary, after checking its counts equal what the output holds."""
    summary = json.loads((Path(output) / "_summary.json").read_text())
    rows, by_status, by_kind = output_counts(output)
    assert (summary["rows"], summary["by_status"], summary["by_error_kind"]) == (
        rows,
        by_status,
        by_kind,
    )
    return summary, rows, by_status


def scrape_metrics() -> str:
    port = ray.nodes()[0]["MetricsExportPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_progress_summary_resume_and_failed_rows_rerun(tiny_model, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    write_images(images)
    (images / "dot.png").write_bytes(png_bytes((4, 4)))
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(manifest_rows(images)), manifest)
    output = str(tmp_path / "out")
    common = ["--model", str(tiny_model), "--max-new-tokens", "96", "--batch-size", "2"]
    common += ["--progress-interval", "0.25", "--task", "alt_text"]

    # 1. The first 24 rows, watched while they run.
    thread, codes = run_in_thread([str(manifest), "--output", output, "--limit", "24", *common])
    seen: list = []
    watch(thread, lambda: seen.append(read_progress(output)))
    assert codes == [EXIT_OK]
    partial = [p for p in seen if p and p.state == "running" and 0 < p.rows_done < 24]
    assert partial, [(p.state, p.rows_done) for p in seen if p]
    assert partial[0].rows_total == 24 and partial[0].replicas == 1
    assert sum(partial[0].by_status.values()) == partial[0].rows_done
    # What status.py prints for it (not through stdout: the job thread prints there too).
    shown_text = status.format_status(partial[0], parse_iso(partial[0].updated_at))
    assert "state:    running" in shown_text
    assert "ETA:" in shown_text and f"{partial[0].rows_done}/24 rows" in shown_text

    summary, rows, by_status = summary_matching_output(output)
    assert rows == 24 and by_status == {"ok": 22, "failed": 2}
    assert summary["replicas"] == 1 and summary["replica_seconds"] > 0
    # Every generated row read its image's tokens and its prompt.
    image_tokens = AutoProcessor.from_pretrained(tiny_model).num_image_tokens
    assert summary["input_tokens_this_run"] > summary["images"] * image_tokens
    assert summary["images"] == 22 and summary["output_tokens"] > 0
    assert summary["config"]["progress_interval_s"] == 0.25

    final = read_progress(output)
    assert final is not None and final.state == "finished"
    assert (final.rows_done, final.by_status) == (24, by_status)
    capsys.readouterr()
    assert status.main([output, "--json"]) == status.EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["display_state"] == "finished" and shown["rows_done"] == 24

    # The model actors' counters and histograms reached Ray's metrics agent.
    def metrics_arrived() -> bool:
        text = scrape_metrics()
        return "ray_vlcaption_rows_total" in text and "ray_vlcaption_generate_latency" in text

    deadline = time.monotonic() + 60
    while not metrics_arrived() and time.monotonic() < deadline:
        time.sleep(1)
    text = scrape_metrics()
    assert 'status="ok"' in text.split("ray_vlcaption_rows_total", 1)[1]
    assert "ray_vlcaption_batch_latency_seconds_bucket" in text
    assert "ray_vlcaption_output_tokens_total" in text

    # 2. The same command without --limit resumes: the summary still equals the output.
    assert main([str(manifest), "--output", output, *common]) == EXIT_OK
    summary, rows, by_status = summary_matching_output(output)
    assert by_status == {"ok": 26, "failed": 3, "skipped": 1}
    assert (summary["rows_before"], summary["rows_this_run"]) == (24, 6)
    final = read_progress(output)
    assert final is not None and (final.rows_done, final.rows_done_before) == (30, 24)

    # 3. The failed rows are a manifest of their own; skipped rows stay out.
    failed = f"{output}/{FAILED_FILE}"
    assert summary["failed_manifest"] == failed and summary["failed_manifest_rows"] == 3
    validate_manifest(failed)
    first = {row["id"]: row for row in pq.read_table(output).to_pylist()}
    failed_rows = pq.read_table(failed).to_pylist()
    assert sorted(row["id"] for row in failed_rows) == ["bad", "gone-ocr", "gone-own"]
    for row in failed_rows:
        assert {k: row[k] for k in ("uri", "task", "prompt", "shelf")} == {
            k: first[row["id"]][k] for k in ("uri", "task", "prompt", "shelf")
        }

    # Rerun them into S3, once the missing image has turned up, without --task.
    (images / "later.png").write_bytes(png_bytes())
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("rerun")
    rerun = "s3://rerun/out"
    argv = [failed, "--output", rerun, "--model", str(tiny_model), "--max-new-tokens", "32"]
    thread, codes = run_in_thread([*argv, "--progress-interval", "0.5"])
    states: list[str] = []

    def look_s3() -> None:
        progress = read_progress(rerun)
        if progress is not None:
            states.append(json.loads(status.as_json(progress, time.time()))["display_state"])

    watch(thread, look_s3)
    assert codes == [EXIT_OK]
    assert "running" in states
    capsys.readouterr()
    assert status.main([rerun]) == status.EXIT_OK
    shown_text = capsys.readouterr().out
    assert "state:    finished" in shown_text and "3/3 rows" in shown_text

    again = {row["id"]: row for row in pq.read_table("rerun/out", filesystem=fs).to_pylist()}
    assert again["gone-ocr"]["status"] == "ok"
    assert (again["gone-ocr"]["task"], again["gone-ocr"]["prompt"]) == (
        "ocr",
        TASKS["ocr"].instruction,
    )
    assert (again["bad"]["task"], again["bad"]["error_kind"]) == ("alt_text", "decode_error")
    assert (again["gone-own"]["task"], again["gone-own"]["prompt"]) == ("alt_text", "Name it.")
    assert {row["shelf"] for row in again.values()} == {first[i]["shelf"] for i in again}
    rerun_summary = json.loads(fs.cat("rerun/out/_summary.json"))
    assert rerun_summary["by_status"] == {"ok": 1, "failed": 2}
    assert rerun_summary["failed_manifest_rows"] == 2
