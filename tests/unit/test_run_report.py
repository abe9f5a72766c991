"""The pieces of the run report without Ray: per-batch counts, the tracker's sums, rates,
the summary's counts and the failed-rows manifest, on a hand-made output folder."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import parse_config
from jobs.failed_manifest import FAILED_FILE, rerun_command, write_failed_manifest
from jobs.progress import ProgressTracker, RateWindow
from jobs.summary import count_output
from manifests import schema
from manifests.validate import validate_manifest
from vlworkers.batch_stats import count_batch
from vlworkers.metrics import ActorMetrics

MANIFEST_SCHEMA = pa.schema([("id", pa.string()), ("uri", pa.string()), ("shelf", pa.string())])


def output_row(row_id: str, status: str, kind: str | None = None, **values) -> dict:
    row = dict.fromkeys(schema.output_schema(MANIFEST_SCHEMA).names)
    row.update(id=row_id, uri=f"/img/{row_id}.jpg", task="caption", prompt="Describe.")
    row.update(status=status, error_kind=kind, shelf=f"S-{row_id}", **values)
    if kind:
        row["error"] = f"{kind} at {row_id}"
    return row


def write_output(folder, rows: list[dict]) -> None:
    folder.mkdir(exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema.output_schema(MANIFEST_SCHEMA))
    pq.write_table(table, folder / "part-0.parquet")


ROWS = [
    output_row("a", "ok", model="m", n_output_tokens=7),
    output_row("b", "ok", model="m", n_output_tokens=5),
    output_row("c", "failed", "not_found"),
    output_row("d", "failed", "oom", model="m", task="ocr", prompt="Transcribe."),
    output_row("e", "skipped", "too_small"),
]


def test_batch_counts_and_tracker_sums():
    table = pa.Table.from_pylist(ROWS, schema=schema.output_schema(MANIFEST_SCHEMA))
    stats = count_batch(table, "replica-1", images=3, busy_s=2.0, generate_s=1.5, input_tokens=1800)
    assert stats.by_outcome == {
        ("ok", ""): 2,
        ("failed", "not_found"): 1,
        ("failed", "oom"): 1,
        ("skipped", "too_small"): 1,
    }
    assert (stats.rows, stats.output_tokens) == (5, 12)
    ActorMetrics("m").record(stats)  # Ray's metric objects accept it outside a cluster too

    tracker = ProgressTracker()
    tracker.replica_started("replica-1", started_at=100.0, ready_at=110.0)
    tracker.record(stats)
    tracker.record(stats)
    totals = tracker.snapshot()
    assert (totals.rows, totals.images, totals.output_tokens) == (10, 6, 24)
    assert totals.by_status == {"ok": 4, "failed": 4, "skipped": 2}
    assert totals.by_error_kind == {"not_found": 2, "oom": 2, "too_small": 2}
    usage = totals.usage(until=160.0)
    assert (usage.replicas, usage.replica_seconds, usage.busy_seconds) == (1, 60.0, 4.0)
    assert usage.input_tokens == 3600


def test_recent_rates_cover_the_window_only():
    window = RateWindow(span_s=10)
    assert window.add(0, 0, 0, 0) == (0, 0, 0)
    window.add(5, 100, 50, 1000)
    window.add(10, 100, 50, 1000)  # stalled for 5 s
    rows_per_s, _, _ = window.add(20, 110, 55, 1100)
    assert rows_per_s == pytest.approx(10 / 10)  # the stall and the burst before it aged out


def test_summary_counts_come_from_the_output(tmp_path):
    write_output(tmp_path / "out", ROWS)
    counts = count_output(str(tmp_path / "out"))
    assert counts.rows == 5
    assert counts.by_status == {"ok": 2, "failed": 2, "skipped": 1}
    assert counts.by_error_kind == {"not_found": 1, "oom": 1, "too_small": 1}
    assert counts.error_examples["oom"] == ["oom at d"]
    assert (counts.images, counts.output_tokens) == (3, 12)


def test_failed_rows_manifest_is_a_valid_manifest_of_failed_rows_only(tmp_path):
    output = tmp_path / "out dir"
    write_output(output, ROWS)
    config = parse_config(
        ["m.parquet", "--output", str(output), "--model", "org/my-model", "--revision", "v2"]
    )
    failed = write_failed_manifest(config)
    assert (failed.uri, failed.rows) == (str(output / FAILED_FILE), 2)
    info = validate_manifest(failed.uri)
    assert info.schema.names == ["id", "uri", "task", "prompt", "shelf"]
    rows = {row["id"]: row for row in pq.read_table(failed.uri).to_pylist()}
    assert sorted(rows) == ["c", "d"]  # the skipped row was deliberate: not redone
    assert rows["d"] == {
        "id": "d",
        "uri": "/img/d.jpg",
        "task": "ocr",
        "prompt": "Transcribe.",
        "shelf": "S-d",
    }
    assert failed.rerun_command == (
        f"python jobs/caption.py '{failed.uri}' --output '{output}.retry' "
        "--model org/my-model --revision v2"
    )

    # Once those rows succeed (a resumed run), the old manifest of failures goes away.
    write_output(output, [r for r in ROWS if r["status"] != "failed"])
    assert write_failed_manifest(config).uri is None
    assert not (output / FAILED_FILE).exists()


def test_rerun_command_repeats_the_token_limit(tmp_path):
    config = parse_config(["m.parquet", "--output", "s3://b/out/", "--max-new-tokens", "40"])
    command = rerun_command(config, "s3://b/out/_failed.parquet")
    assert "--output s3://b/out.retry" in command and command.endswith("--max-new-tokens 40")


def test_progress_interval_option():
    assert parse_config(["m.parquet"]).progress_interval_s == 30
    assert parse_config(["m.parquet", "--progress-interval", "0.5"]).progress_interval_s == 0.5
    with pytest.raises(SystemExit):
        parse_config(["m.parquet", "--progress-interval", "0"])
