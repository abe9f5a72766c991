"""Kill the whole job (driver and its in-process Ray) at random points, rerun, repeat:
the output ends with exactly one row per manifest id, and no reader sees a partial file."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import REPO_ROOT
from tests.images import jpeg_bytes

ROWS = 60


def start_job(manifest: Path, model: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "jobs/caption.py",
        str(manifest),
        "--model",
        str(model),
        "--max-new-tokens",
        "48",
        "--batch-size",
        "2",
        "--rows-per-file",
        "4",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill_everything(job: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's GCS, raylet, workers)."""
    parent = psutil.Process(job.pid)
    family = [*parent.children(recursive=True), parent]
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=30)


def wait_for_rows(job: subprocess.Popen, output: Path, rows: int, timeout_s: float = 300) -> None:
    """Until the output holds `rows` rows or the job has ended by itself."""
    deadline = time.monotonic() + timeout_s
    while len(output_rows(output)) < rows and job.poll() is None:
        assert time.monotonic() < deadline, "timed out waiting for results"
        time.sleep(0.5)


def output_rows(output: Path) -> list[dict]:
    if not output.exists():
        return []
    return pq.read_table(output).to_pylist()  # raises on any half-written file


def test_kills_at_random_points_then_rerun_gives_exactly_one_row_per_id(tmp_path, tiny_model):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(ROWS):
        (images / f"{i}.jpg").write_bytes(jpeg_bytes((32 + i, 32)))
    manifest = tmp_path / "m.parquet"
    ids = [f"row-{i}" for i in range(ROWS)]
    pq.write_table(
        pa.table({"id": ids, "uri": [str(images / f"{i}.jpg") for i in range(ROWS)]}), manifest
    )
    output = tmp_path / "m.captions"

    rng = random.Random(2026)
    counts_after_kills = []
    # Kill once during start-up, and twice at random moments after results have landed.
    for rows_first in (0, 1, 24):
        job = start_job(manifest, tiny_model)
        if rows_first:
            wait_for_rows(job, output, rows_first)
        time.sleep(rng.uniform(0.5, 4.0) if rows_first else rng.uniform(3, 10))
        kill_everything(job)
        rows = output_rows(output)
        assert len({r["id"] for r in rows}) == len(rows)  # never a duplicate, even mid-way
        counts_after_kills.append(len(rows))

    job = start_job(manifest, tiny_model)
    _, stderr = job.communicate(timeout=400)
    assert job.returncode == 0, stderr.decode()[-3000:]

    rows = output_rows(output)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["status"] for r in rows} == {"ok"}
    assert not [p for p in output.iterdir() if p.name.startswith("_tmp.")]
    # Work done before a kill survives it: reruns pick up where the last one stopped.
    assert counts_after_kills[1] > 0 and counts_after_kills[2] >= counts_after_kills[1]
