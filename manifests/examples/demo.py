"""Make the bundled demo: a few generated images and a manifest naming them.

`python -m manifests.examples.demo OUT_DIR` writes OUT_DIR/images/* and
OUT_DIR/manifest.parquet. Two rows are broken on purpose (a missing file and a file
that is not an image) to show failed rows in the output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw


def _scene(size: tuple[int, int], sky: str, ground: str, sun: str) -> Image.Image:
    image = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle([0, height * 2 // 3, width, height], fill=ground)
    draw.ellipse(
        [width * 3 // 4, height // 10, width * 3 // 4 + height // 5, height // 10 + height // 5],
        fill=sun,
    )
    return image


def _sign(text: str) -> Image.Image:
    image = Image.new("RGB", (320, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([4, 4, 315, 115], outline="black", width=3)
    draw.text((20, 45), text, fill="black")
    return image


def _logo() -> Image.Image:
    image = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse([8, 8, 88, 88], fill=(200, 30, 30, 255))
    return image


def make_demo(out_dir: Path) -> Path:
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    _scene((640, 480), "skyblue", "forestgreen", "gold").save(images / "meadow.jpg", quality=90)
    _scene((800, 300), "midnightblue", "black", "white").save(images / "night.jpg", quality=90)
    _sign("OPENING HOURS 9-17").save(images / "sign.png")
    _logo().save(images / "logo.png")
    (images / "not-an-image.jpg").write_text("<html><body>404 Not Found</body></html>")
    rows = [
        ("meadow", "meadow.jpg", "caption", "archive-a"),
        ("night", "night.jpg", "alt_text", "archive-a"),
        ("sign", "sign.png", "ocr", "archive-b"),
        ("logo", "logo.png", None, "archive-b"),
        ("broken", "not-an-image.jpg", None, "archive-c"),
        ("missing", "does-not-exist.png", None, "archive-c"),
    ]
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "uri": [str((images / r[1]).resolve()) for r in rows],
            "task": [r[2] for r in rows],
            "collection": [r[3] for r in rows],
        }
    )
    manifest = out_dir / "manifest.parquet"
    pq.write_table(table, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    print(make_demo(args.out_dir))


if __name__ == "__main__":
    main()
