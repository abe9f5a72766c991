"""Scale: driver and worker peak memory and time to first result, by manifest size.

    python benchmarks/scale.py --rows 10000 100000 [--batch-size 64]

Builds a manifest of N rows (unique ids over a pool of small JPEGs), runs the real job
(`jobs/caption.py`, local Ray) with the tiny random model and one output token per row,
and samples the resident memory of the driver and of every Ray worker process twice a
second. Prints one JSON line per size; paste the results into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.job import JOB_ENV, caption_command  # noqa: E402
from tests.images import jpeg_bytes  # noqa: E402
from vlworkers.tiny import build_tiny_checkpoint  # noqa: E402

POOL = 256  # distinct image files the rows point at


def make_manifest(folder: Path, rows: int) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(POOL):
        (images / f"{i}.jpg").write_bytes(jpeg_bytes((120 + i % 64, 90 + i % 32)))
    manifest = folder / f"m{rows}.parquet"
    writer = None
    chunk = 100_000
    for start in range(0, rows, chunk):
        ids = range(start, min(rows, start + chunk))
        table = pa.table(
            {
                "id": [f"row-{i}" for i in ids],
                "uri": [str(images / f"{i % POOL}.jpg") for i in ids],
                "source": ["bench"] * len(ids),
            }
        )
        writer = writer or pq.ParquetWriter(manifest, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return manifest


def _title(process: psutil.Process) -> str:
    """What a Ray worker is doing, from its process title (e.g. ray::MapWorker(...))."""
    try:
        return " ".join(process.cmdline())[:80].strip()
    except psutil.Error:
        return "?"


def run(manifest: Path, model: Path, batch_size: int, log_dir: Path | None = None) -> dict:
    output = manifest.with_suffix(".captions")
    command = caption_command(
        manifest, model, "--max-new-tokens", "1", "--batch-size", str(batch_size), "--overwrite"
    )
    started = time.monotonic()
    job = subprocess.Popen(command, env=JOB_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    driver = psutil.Process(job.pid)
    peak_driver = peak_worker = peak_total = 0
    peak_worker_title = ""
    first_result = None
    while job.poll() is None:
        try:
            family = [driver, *driver.children(recursive=True)]
            rss = {p.pid: (p.memory_info().rss, p) for p in family if p.is_running()}
        except psutil.Error:
            continue
        for pid, (used, process) in rss.items():
            if pid != job.pid and used > peak_worker:
                peak_worker, peak_worker_title = used, _title(process)
        peak_driver = max(peak_driver, rss.get(job.pid, (0, None))[0])
        peak_total = max(peak_total, sum(used for used, _ in rss.values()))
        if (
            first_result is None
            and output.exists()
            and any(p.suffix == ".parquet" and not p.name.startswith("_") for p in output.iterdir())
        ):
            first_result = time.monotonic() - started
        time.sleep(0.5)
    log = job.stdout.read().decode() if job.stdout else ""
    if log_dir is not None:
        (log_dir / f"{manifest.stem}.log").write_text(log)
    assert job.returncode == 0, log[-3000:]
    written = sum(pq.ParquetFile(p).metadata.num_rows for p in output.glob("*.parquet"))
    wall = time.monotonic() - started
    return {
        "rows": written,
        "wall_s": round(wall, 1),
        "rows_per_s": round(written / wall, 1),
        "time_to_first_result_s": round(first_result or wall, 1),
        "peak_driver_rss_mb": round(peak_driver / 2**20),
        "peak_worker_rss_mb": round(peak_worker / 2**20),
        "peak_worker": peak_worker_title,
        "peak_total_rss_mb": round(peak_total / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--log-dir", type=Path, help="keep each job's log here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = build_tiny_checkpoint(folder / "model")
        for rows in args.rows:
            result = run(make_manifest(folder, rows), model, args.batch_size, args.log_dir)
            result.update(
                cpus=os.cpu_count(),
                python=platform.python_version(),
                date=time.strftime("%Y-%m-%d"),
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
