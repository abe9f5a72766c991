"""Duplicates: model work done against unique images, on a manifest with 30% duplicates.

    python benchmarks/duplicates.py [--rows 200] [--duplicate-share 0.3]

Unique images are written once each; the duplicate rows point at byte-identical copies under
other names (as archives hold logos). The job runs twice, with and without --no-dedup, with
the tiny random model. Prints one JSON line for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.job import JOB_ENV, caption_command  # noqa: E402
from tests.images import jpeg_bytes  # noqa: E402
from vlworkers.tiny import build_tiny_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--duplicate-share", type=float, default=0.3)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = build_tiny_checkpoint(folder / "model")
        images = folder / "images"
        images.mkdir()
        unique = round(args.rows * (1 - args.duplicate_share))
        payloads = [jpeg_bytes((64 + i % 97, 48 + i % 31), "teal") for i in range(unique)]
        uris = []
        for i, data in enumerate(payloads):
            (images / f"u{i}.jpg").write_bytes(data)
            uris.append(str(images / f"u{i}.jpg"))
        for j in range(args.rows - unique):
            (images / f"d{j}.jpg").write_bytes(rng.choice(payloads))
            uris.append(str(images / f"d{j}.jpg"))
        manifest = folder / "m.parquet"
        pq.write_table(pa.table({"uri": uris}), manifest)
        results = {}
        for mode, extra in (("dedup", []), ("no_dedup", ["--no-dedup"])):
            output = folder / mode
            started = time.perf_counter()
            subprocess.run(
                caption_command(
                    manifest, model, "--max-new-tokens", "32", "--output", str(output), *extra
                ),
                check=True,
                capture_output=True,
                env=JOB_ENV,
            )
            rows = pq.read_table(output).to_pylist()
            results[mode] = {
                "wall_s": round(time.perf_counter() - started, 1),
                "generated": sum(
                    1 for r in rows if r["status"] == "ok" and r["copied_from"] is None
                ),
                "copied": sum(1 for r in rows if r["copied_from"] is not None),
            }
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "unique_images": unique,
                    **results,
                    "date": time.strftime("%Y-%m-%d"),
                }
            )
        )


if __name__ == "__main__":
    main()
