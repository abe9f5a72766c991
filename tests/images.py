"""Fixture images written in code: ordinary ones and the odd ones web archives hold."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def jpeg_bytes(size: tuple[int, int] = (320, 240), color: str = "skyblue") -> bytes:
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).rectangle([10, 10, size[0] // 2, size[1] // 2], fill="darkgreen")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (200, 100), mode: str = "RGBA") -> bytes:
    color = (200, 30, 30, 255) if mode == "RGBA" else "orange"
    image = Image.new(mode, size, color)
    ImageDraw.Draw(image).text((10, 10), "HELLO 42", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(folder) -> dict[str, bytes]:
    """A small mixed set; returns name -> bytes as written under `folder`."""
    files = {
        "photo.jpg": jpeg_bytes(),
        "wide.jpg": jpeg_bytes((640, 160), "gold"),
        "label.png": png_bytes(),
        "broken.jpg": b"\x00\x01not an image at all" * 10,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files
