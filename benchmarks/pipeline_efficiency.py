"""Pipeline efficiency: the whole job's throughput against a bare loop of the same engine.

    python benchmarks/pipeline_efficiency.py [--size small] [--rows 256] [--batch-size 8]
    python benchmarks/pipeline_efficiency.py --model /path/to/1.3b --device cuda --rows 2048

The bare loop is `HFEngine.generate` in this process over pixels already decoded in
memory: no Ray, no I/O, same model, batch size, images and output length. The job is
`jobs/caption.py` on local Ray reading the same images from disk. The job's throughput is
marginal, (2N - N) rows over (time(2N) - time(N)), so Ray start-up and model load (paid
once per job, not per image) cancel out. Output length is fixed with --min-new-tokens,
since random weights stop at random places. Prints one JSON line for benchmarks/RESULTS.md.
Target: efficiency >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
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
from benchmarks.preprocess import corpus  # noqa: E402
from jobs.model_probe import probe_model  # noqa: E402
from vlworkers.config import EngineConfig  # noqa: E402
from vlworkers.engine import GenerationRequest  # noqa: E402
from vlworkers.engine_hf import HFEngine  # noqa: E402
from vlworkers.images import ImageLimits, prepare_image  # noqa: E402
from vlworkers.tiny import build_tiny_checkpoint  # noqa: E402

PROMPT = "Describe this image in one or two sentences."


def distinct_copies(pool: list[bytes], count: int) -> list[bytes]:
    """`count` files cycling through `pool`, each made byte-distinct by a few bytes after the
    image's end (decoders ignore them), so deduplication skips none while generating a big
    corpus stays cheap."""
    return [pool[i % len(pool)] + f"#copy{i}".encode() for i in range(count)]


def bare_loop(config: EngineConfig, files: list[bytes], batch_size: int, tokens: int) -> float:
    target = probe_model(config).target_size
    pixels = [prepare_image(data, ImageLimits(target_size=target)).pixels for data in files]
    engine = HFEngine(config)
    requests = [GenerationRequest(p, PROMPT, tokens) for p in pixels]
    engine.generate(requests[:batch_size])  # warm-up: kernels, allocator
    started = time.perf_counter()
    for start in range(0, len(requests), batch_size):
        results = engine.generate(requests[start : start + batch_size])
        assert all(r.n_output_tokens == tokens for r in results), results[0]
    return len(requests) / (time.perf_counter() - started)


def job_seconds(folder: Path, files: list[bytes], args: argparse.Namespace, model: str) -> float:
    images = folder / f"images{len(files)}"
    images.mkdir()
    for i, data in enumerate(files):
        (images / f"{i}.img").write_bytes(data)
    manifest = folder / f"m{len(files)}.parquet"
    pq.write_table(
        pa.table({"uri": [str(images / f"{i}.img") for i in range(len(files))]}), manifest
    )
    command = caption_command(
        manifest,
        model,
        "--batch-size",
        str(args.batch_size),
        "--max-new-tokens",
        str(args.tokens),
        "--min-new-tokens",
        str(args.tokens),
        "--device",
        args.device,
        "--progress-interval",
        "600",
    )
    started = time.perf_counter()
    job = subprocess.run(command, capture_output=True, text=True, env=JOB_ENV)
    if job.returncode != 0:
        sys.exit(f"the job failed ({job.returncode}):\n{job.stdout[-3000:]}\n{job.stderr[-5000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="checkpoint folder (default: build one of --size)")
    parser.add_argument("--size", default="small", choices=("tiny", "small", "1.3b"))
    parser.add_argument("--rows", type=int, default=256, help="N: the job runs N and 2N rows")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pool", type=int, default=512, help="distinct images generated")
    parser.add_argument("--tokens", type=int, default=16, help="fixed output length")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.model or str(build_tiny_checkpoint(folder / "model", size=args.size))
        files = distinct_copies(corpus(min(args.pool, 2 * args.rows), seed=1), 2 * args.rows)
        config = EngineConfig(model=model, device=args.device, min_new_tokens=args.tokens)
        bare = bare_loop(config, files[: args.rows], args.batch_size, args.tokens)
        print(json.dumps({"bare_images_per_s": round(bare, 2)}), flush=True)  # a cut run keeps it
        short = job_seconds(folder, files[: args.rows], args, model)
        print(json.dumps({"job_seconds": round(short, 1), "rows": args.rows}), flush=True)
        long = job_seconds(folder, files, args, model)
        job = args.rows / (long - short)
        print(
            json.dumps(
                {
                    "model": args.model or args.size,
                    "device": args.device,
                    "rows": [args.rows, 2 * args.rows],
                    "batch_size": args.batch_size,
                    "tokens": args.tokens,
                    "bare_images_per_s": round(bare, 2),
                    "job_marginal_images_per_s": round(job, 2),
                    "job_seconds": [round(short, 1), round(long, 1)],
                    "efficiency": round(job / bare, 3),
                    "cpus": os.cpu_count(),
                    "date": time.strftime("%Y-%m-%d"),
                }
            )
        )


if __name__ == "__main__":
    main()
