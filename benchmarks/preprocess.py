"""Preprocessing throughput against the bare Pillow floor, images per second per core.

    python benchmarks/preprocess.py [--images 400] [--target 384]

A realistic mix of web images (JPEG photos from thumbnails to 12 MP, PNG graphics with
and without alpha) is written once. Then, in the same process and on one core:
- floor: Pillow open + RGB convert + one resize to the model size, in a tight loop
  (no hashing, no checks: the least any preprocessing must do);
- ours: `vlworkers.images.prepare_image` plus the sha256 the job records, the same files.
Prints one JSON line; paste it into benchmarks/RESULTS.md. Target: ours within 1.5x.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlworkers.images import ImageLimits, prepare_image

# (width, height, format, share): the mix a web archive crawl tends to hold.
MIX = [
    (320, 240, "JPEG", 0.25),
    (800, 600, "JPEG", 0.25),
    (1920, 1080, "JPEG", 0.2),
    (4000, 3000, "JPEG", 0.05),
    (256, 256, "PNG-RGBA", 0.15),
    (1200, 800, "PNG", 0.10),
]


def make_image(width: int, height: int, fmt: str, rng: random.Random) -> bytes:
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.ellipse(
            [x, y, x + width // 5, y + height // 5],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    image = image.filter(ImageFilter.GaussianBlur(2))  # photo-like gradients, realistic JPEG sizes
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=85)
    elif fmt == "PNG-RGBA":
        image.convert("RGBA").save(buffer, format="PNG")
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def corpus(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    weights = [share for *_, share in MIX]
    return [make_image(w, h, f, rng) for w, h, f, _ in rng.choices(MIX, weights, k=count)]


def floor(data: bytes, target: int) -> None:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = target / max(image.size)
    if scale < 1:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
        )
    image.tobytes()


def ours(data: bytes, limits: ImageLimits) -> None:
    hashlib.sha256(data).hexdigest()
    prepare_image(data, limits).pixels.tobytes()


def rate(work, files: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for data in files:
        work(data)
    return len(files) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--target", type=int, default=384, help="model input size (1024 for SAM)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the numbers say
    files = corpus(args.images)
    limits = ImageLimits(target_size=args.target)
    rate(lambda d: ours(d, limits), files[:20])  # warm caches and imports
    floor_rate = rate(lambda d: floor(d, args.target), files)
    our_rate = rate(lambda d: ours(d, limits), files)
    print(
        json.dumps(
            {
                "images": len(files),
                "mb": round(sum(map(len, files)) / 2**20, 1),
                "target_px": args.target,
                "floor_images_per_s_per_core": round(floor_rate, 1),
                "ours_images_per_s_per_core": round(our_rate, 1),
                "ours_vs_floor": round(floor_rate / our_rate, 2),
                "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    )


if __name__ == "__main__":
    main()
