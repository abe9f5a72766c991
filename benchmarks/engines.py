"""Images per second, transformers engine vs vLLM engine, on the same images.

Full-size architectures with random weights (no hub needed), fixed output lengths (each row
runs to its task's token limit: caption 96, ocr 1024), pixels prepared as the job's CPU stage
prepares them:
  hf    DeepSeek-VL 1.3B's architecture (SigLIP-L 384 px + 24-layer LLaMA 2048), random, bf16
  vllm  DeepSeek-VL2-Tiny's architecture (MoE, 64 experts), load_format="dummy"
`mixed` alternates caption and OCR rows in every batch: where continuous batching pays.

    python benchmarks/engines.py hf --record benchmarks/RESULTS.md
    python benchmarks/engines.py vllm --record benchmarks/RESULTS.md   # needs .[vllm]
    python benchmarks/engines.py hf --size tiny --images 4 --max-new-tokens 8   # CPU smoke run

Run each engine in its own process (each takes the GPU for itself).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from jobs.model_probe import probe_model
from vlworkers.config import EngineConfig
from vlworkers.engine import Engine, GenerationRequest
from vlworkers.engine_hf import HFEngine
from vlworkers.images import ImageLimits, prepare_image
from vlworkers.tasks import TASKS

# DeepSeek-VL 1.3B chat (deepseek-community/deepseek-vl-1.3b-chat config.json).
VL_1_3B_TEXT = {
    "model_type": "llama",
    "vocab_size": 102400,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 16384,
}
VL_1_3B_VISION = {
    "model_type": "siglip_vision_model",
    "image_size": 384,
    "patch_size": 16,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "vision_use_head": False,
}


def build_full_size_vl(out: Path) -> Path:
    """DeepSeek-VL 1.3B's architecture with random bf16 weights, the tiny model's tokenizer."""
    from transformers import AutoModelForImageTextToText, AutoProcessor, DeepseekVLConfig

    from vlworkers.tiny import IMAGE, build_tiny_checkpoint

    processor = AutoProcessor.from_pretrained(build_tiny_checkpoint(out / "tokenizer"))
    processor.image_processor.size = {"height": 384, "width": 384}
    processor.num_image_tokens = (384 // 16) ** 2
    config = DeepseekVLConfig(
        text_config=VL_1_3B_TEXT,
        vision_config=VL_1_3B_VISION,
        image_token_id=processor.tokenizer.convert_tokens_to_ids(IMAGE),
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out / "model")
    processor.save_pretrained(out / "model")
    return out / "model"


def build_model(engine: str, size: str, folder: Path) -> Path:
    if engine == "vllm":
        from vlworkers.tiny_vl2 import build_tiny_vl2

        return build_tiny_vl2(folder / "vl2", full_size=size == "full")
    if size == "full":
        return build_full_size_vl(folder)
    from vlworkers.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(folder / "vl")


def photo(seed: int) -> bytes:
    image = Image.new("RGB", (640, 480), (40 + seed % 200, 120, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse([100 + seed % 50, 80, 400, 380], fill=(200, 80 + seed % 100, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def page(seed: int) -> bytes:
    image = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(image)
    for line in range(40):
        draw.text(
            (80, 80 + 40 * line), f"Line {line} of page {seed}: the quick brown fox.", "black"
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def requests_for(
    task: str, n: int, target_size: int, max_new_tokens: int | None
) -> list[GenerationRequest]:
    limits = ImageLimits(target_size=target_size)
    requests = []
    for i in range(n):
        row_task = task if task != "mixed" else ("caption", "ocr")[i % 2]
        data = page(i) if row_task == "ocr" else photo(i)
        spec = TASKS[row_task]
        pixels = prepare_image(data, limits).pixels
        requests.append(
            GenerationRequest(pixels, spec.instruction, max_new_tokens or spec.max_new_tokens)
        )
    return requests


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def measure(
    engine: Engine, warm_up: list[GenerationRequest], requests: list[GenerationRequest]
) -> dict[str, Any]:
    # Other images than the measured ones: vLLM caches image encodings and prompt prefixes.
    engine.generate([GenerationRequest(r.pixels, r.prompt, 8) for r in warm_up])
    batch_size = len(warm_up)
    started = time.perf_counter()
    results = []
    for start in range(0, len(requests), batch_size):
        results += engine.generate(requests[start : start + batch_size])
    elapsed = time.perf_counter() - started
    failed = [r.error for r in results if r.error_kind is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} rows failed, e.g. {failed[0]}")
    tokens = sum(r.n_output_tokens or 0 for r in results)
    return {
        "seconds": round(elapsed, 2),
        "images_per_s": round(len(requests) / elapsed, 2),
        "output_tokens_per_s": round(tokens / elapsed, 1),
        "tokens_per_image": round(tokens / len(requests), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("hf", "vllm"))
    parser.add_argument("--tasks", nargs="+", default=["caption", "ocr", "mixed"])
    parser.add_argument("--images", type=int, default=32, help="images per task (default: 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per generate call")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--max-new-tokens", type=int, help="replaces the tasks' own limits")
    parser.add_argument("--vllm-options", type=json.loads, default={}, help="JSON, vllm only")
    parser.add_argument("--record", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(args.engine, args.size, Path(tmp))
        # Every row runs to its own limit: EOS is barred until then.
        fixed = args.max_new_tokens or max(spec.max_new_tokens for spec in TASKS.values())
        started = time.perf_counter()
        engine: Engine
        if args.engine == "vllm":
            from vlworkers.engine_vllm import VLLMEngine

            options = {"load_format": "dummy", **args.vllm_options}
            config = EngineConfig(
                model=str(model), engine="vllm", min_new_tokens=fixed, vllm_options=options
            )
            engine = VLLMEngine(config)
        else:
            config = EngineConfig(model=str(model), engine="hf", min_new_tokens=fixed)
            engine = HFEngine(config)
        load_s = time.perf_counter() - started
        target = probe_model(config).target_size
        rows = []
        for task in args.tasks:
            requests = requests_for(
                task, args.batch_size + args.images, target, args.max_new_tokens
            )
            result = {"engine": args.engine, "task": task, "images": args.images}
            result |= measure(engine, requests[: args.batch_size], requests[args.batch_size :])
            print(json.dumps(result))
            rows.append(result)

    if args.record:
        arch = {"hf": "DeepSeek-VL 1.3B", "vllm": "DeepSeek-VL2-Tiny"}[args.engine]
        arch = f"{arch}'s architecture" if args.size == "full" else f"tiny {arch}"
        lines = [
            f"\n### {args.engine}: {arch}, random weights, {machine()}, {datetime.date.today()}\n",
            f"Load {load_s:.0f} s; batch size {args.batch_size}; images at {target} px.\n",
            "| task | images | tokens/image | seconds | images/s | output tokens/s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['task']} | {r['images']} | {r['tokens_per_image']} | {r['seconds']} "
            f"| {r['images_per_s']} | {r['output_tokens_per_s']} |"
            for r in rows
        ]
        with args.record.open("a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
