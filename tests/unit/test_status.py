"""`_progress.json` and `jobs/status.py`: running, stale, finished; local and S3; script and -m."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import fsspec
import pytest
from s3fs import S3FileSystem

from jobs import status
from jobs.progress_file import (
    PROGRESS_FILE,
    Progress,
    Rates,
    display_state,
    progress_line,
    read_progress,
    utc_iso,
    write_progress,
)
from tests.conftest import REPO_ROOT
from tests.servers import s3_server

NOW = 1_800_000_000.0


def running(updated: float = NOW, **changes) -> Progress:
    progress = Progress(
        state="running",
        started_at=utc_iso(updated - 600),
        updated_at=utc_iso(updated),
        interval_s=30.0,
        output="s3://bucket/out",
        model="deepseek-community/deepseek-vl-1.3b-chat",
        rows_total=40,
        rows_done=12,
        rows_done_before=0,
        by_status={"ok": 9, "failed": 2, "skipped": 1},
        by_error_kind={"not_found": 2, "too_small": 1},
        images=9,
        output_tokens=400,
        rates=Rates(images_per_s=0.5, images_per_s_recent=0.8, output_tokens_per_s_recent=20.0),
        eta_s=35.0,
        elapsed_s=600.0,
        replicas=2,
        driver={"pid": 4242, "host": "head-0"},
    )
    return replace(progress, **changes)


def test_running_job_shows_counts_rates_eta_and_errors():
    text = status.format_status(running(), now=NOW + 5)
    assert "state:    running" in text
    assert "12/40 rows (30.0%)" in text
    assert "ok 9, failed 2, skipped 1" in text
    assert "0.80 images/s now, 0.50 overall" in text
    assert "ETA:      35s (about " in text
    assert "not_found" in text and "too_small" in text
    assert "pid 4242 on head-0" in text

    line = progress_line(running())
    assert line.startswith("running: 12/40 rows (30.0%) | ok 9, failed 2, skipped 1 |")
    assert "ETA 35s" in line and "errors: not_found 2, too_small 1" in line


def test_running_job_silent_for_several_intervals_is_stale():
    progress = running(updated=NOW - 600)
    assert display_state(progress, NOW) == "stale"
    assert "stale (driver may have died)" in status.format_status(progress, NOW)
    assert json.loads(status.as_json(progress, NOW))["display_state"] == "stale"
    # One missed interval is not stale; an ended job never is.
    assert display_state(running(updated=NOW - 45), NOW) == "running"
    assert display_state(replace(progress, state="finished"), NOW) == "finished"


def test_failed_job_shows_its_error():
    progress = running(state="failed", error="TooManyFailuresError: 190 of the first 200")
    text = status.format_status(progress, NOW)
    assert "state:    failed" in text and "TooManyFailuresError" in text
    assert "ETA" not in text


def test_progress_json_round_trip_keeps_values_and_ignores_unknown_keys():
    progress = running()
    data = json.loads(progress.to_json())
    data["added_later"] = {"x": 1}
    data["rates"]["also_later"] = 2
    assert Progress.from_json(json.dumps(data)) == progress


def test_rewrites_are_whole_files_with_no_temp_files_left(tmp_path):
    output = str(tmp_path / "out")
    write_progress(output, running())
    write_progress(output, running(rows_done=20))
    assert [p.name for p in (tmp_path / "out").iterdir()] == [PROGRESS_FILE]
    progress = read_progress(output)
    assert progress is not None and progress.rows_done == 20


def test_script_from_repo_root_and_module(tmp_path):
    output = tmp_path / "out"
    write_progress(str(output), running(updated=time.time(), state="finished", eta_s=0.0))
    script = subprocess.run(
        [sys.executable, "jobs/status.py", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert script.returncode == status.EXIT_OK, script.stderr
    assert "state:    finished" in script.stdout
    module = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(output), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == status.EXIT_OK, module.stderr
    assert json.loads(module.stdout)["display_state"] == "finished"


def test_no_progress_file_is_a_clear_error(tmp_path, capsys):
    assert status.main([str(tmp_path / "nothing")]) == status.EXIT_NO_PROGRESS
    assert "no progress file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def s3_bucket():
    # fsspec caches filesystems, endpoint included: none may outlive its server.
    S3FileSystem.clear_instance_cache()
    with s3_server():
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("progress")
        yield "progress"
    S3FileSystem.clear_instance_cache()


def test_status_of_a_job_on_s3(s3_bucket, capsys):
    output = f"s3://{s3_bucket}/out"
    write_progress(output, running(updated=time.time()))
    assert status.main([output]) == status.EXIT_OK
    assert "state:    running" in capsys.readouterr().out
    write_progress(output, running(updated=time.time(), state="finished", rows_done=40))
    assert status.main([output, "--json"]) == status.EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert (shown["display_state"], shown["rows_done"]) == ("finished", 40)
