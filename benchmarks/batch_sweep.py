"""Batch-size sweep on a GPU: images per second and peak memory per batch size.

    python benchmarks/batch_sweep.py [--model DIR] [--batch-sizes 1 8 16 32 64 128] [--tokens 48]

Uses the transformers engine the job's actors run (`HFEngine`, bf16, SDPA) on the real
DeepSeek-VL 1.3B architecture with random weights (`vlworkers.tiny --size 1.3b`), images
already decoded to 384 px, output length fixed with min_new_tokens. Prints one JSON line
per batch size for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlworkers.config import EngineConfig
from vlworkers.device_pixels import model_pixels
from vlworkers.engine import GenerationRequest
from vlworkers.engine_hf import HFEngine
from vlworkers.tiny import build_tiny_checkpoint

PROMPT = "Describe this image in one or two sentences."


def requests(count: int, tokens: int, seed: int = 0) -> list[GenerationRequest]:
    rng = np.random.default_rng(seed)
    shapes = [(384, 384), (288, 384), (384, 256), (216, 384)]  # photos, portraits, banners
    return [
        GenerationRequest(rng.integers(0, 255, (*shapes[i % 4], 3), dtype=np.uint8), PROMPT, tokens)
        for i in range(count)
    ]


def pixel_preparation_ms(engine: HFEngine, count: int = 64) -> dict[str, float]:
    """Per image: the processor's own numpy path on one CPU core against `model_pixels` on
    the engine's device (what the actor did before, and what it does now)."""
    arrays = [r.pixels for r in requests(count, 1)]
    images = [Image.fromarray(a) for a in arrays]
    started = time.perf_counter()
    engine.processor.image_processor(images, return_tensors="pt")
    cpu_s = time.perf_counter() - started
    model_pixels(arrays, engine.towers, engine.device, engine.dtype)  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    model_pixels(arrays, engine.towers, engine.device, engine.dtype)
    torch.cuda.synchronize()
    device_s = time.perf_counter() - started
    return {
        "processor_cpu_ms_per_image": round(1000 * cpu_s / count, 2),
        "device_pixels_ms_per_image": round(1000 * device_s / count, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="checkpoint folder (default: build the 1.3b shapes)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16, 32, 64, 128])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--images", type=int, default=128, help="images per batch size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = args.model or str(build_tiny_checkpoint(Path(tmp) / "m", size="1.3b"))
        built = time.perf_counter() - started
        engine = HFEngine(EngineConfig(model=model, device="cuda", min_new_tokens=args.tokens))
        loaded = time.perf_counter() - started - built
        print(
            json.dumps(
                {
                    "build_s": round(built, 1),
                    "load_s": round(loaded, 1),
                    "gpu": torch.cuda.get_device_name(),
                    "dtype": str(engine.dtype),
                    "params_b": round(sum(p.numel() for p in engine.model.parameters()) / 1e9, 3),
                    "batch_limit_from_memory": engine.sizer.describe([48, 96, 1024]),
                    **pixel_preparation_ms(engine),
                }
            ),
            flush=True,
        )
        for batch_size in args.batch_sizes:
            work = requests(max(args.images, 2 * batch_size), args.tokens)
            engine.generate(work[:batch_size])  # warm-up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for start in range(0, len(work), batch_size):
                results = engine.generate(work[start : start + batch_size])
                assert all(r.error_kind is None for r in results), results[0]
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            print(
                json.dumps(
                    {
                        "batch_size": batch_size,
                        "images": len(work),
                        "tokens": args.tokens,
                        "images_per_s": round(len(work) / elapsed, 2),
                        "output_tokens_per_s": round(len(work) * args.tokens / elapsed, 1),
                        "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                        "date": time.strftime("%Y-%m-%d"),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
