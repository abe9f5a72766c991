from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from manifests.schema import ErrorKind
from tests.images import jpeg_bytes, png_bytes
from vlworkers.images import ImageError, ImageLimits, prepare_image

LIMITS = ImageLimits(target_size=64, max_pixels=10_000_000, min_side=8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def error_of(data: bytes, limits: ImageLimits = LIMITS) -> ImageError:
    with pytest.raises(ImageError) as caught:
        prepare_image(data, limits)
    return caught.value


def test_jpeg_is_shrunk_to_target_keeping_aspect():
    prepared = prepare_image(jpeg_bytes((320, 160)), LIMITS)
    assert prepared.pixels.dtype == np.uint8
    assert prepared.pixels.shape == (32, 64, 3)
    assert (prepared.width, prepared.height) == (320, 160)


def test_small_images_are_not_upscaled():
    prepared = prepare_image(jpeg_bytes((40, 20)), LIMITS)
    assert prepared.pixels.shape == (20, 40, 3)


def test_transparent_areas_become_white():
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    prepared = prepare_image(encode(image, "PNG"), LIMITS)
    assert (prepared.pixels == 255).all()


@pytest.mark.parametrize("mode", ["LA", "1", "L", "P", "CMYK", "I;16"])
def test_odd_modes_convert_to_rgb(mode):
    image = Image.new("RGB", (32, 32), (120, 60, 30)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        array = np.full((32, 32), 40000, dtype=np.uint16)
        image = Image.fromarray(array)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    prepared = prepare_image(encode(image, fmt), LIMITS)
    assert prepared.pixels.shape == (32, 32, 3)
    if mode == "I;16":
        # 40000/65535 of full scale, not clipped to white
        assert 150 < prepared.pixels.mean() < 160


def test_palette_with_transparency_on_white():
    image = Image.new("P", (16, 16), 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    data = encode(image, "PNG", transparency=0)
    assert (prepare_image(data, LIMITS).pixels == 255).all()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    prepared = prepare_image(encode(image, "JPEG", exif=exif), LIMITS)
    assert prepared.pixels.shape[:2] == (40, 20)
    assert (prepared.width, prepared.height) == (20, 40)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    pixels = prepare_image(buffer.getvalue(), LIMITS).pixels
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", ErrorKind.EMPTY_FILE),
        (jpeg_bytes()[:400], ErrorKind.DECODE_ERROR),
        (np.random.default_rng(0).bytes(2000), ErrorKind.DECODE_ERROR),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", ErrorKind.DECODE_ERROR),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>',
            ErrorKind.UNSUPPORTED_FORMAT,
        ),
        (png_bytes()[:60] + b"\x00" * 50, ErrorKind.DECODE_ERROR),
    ],
)
def test_broken_files_fail_with_stable_kinds(data, kind):
    assert error_of(data).kind == kind


def test_html_error_page_says_so():
    assert "HTML" in error_of(b"<html><body>503</body></html>").message


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A valid PNG header declaring a huge size, without the pixels (a bomb)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bomb_rejected_from_header():
    error = error_of(_png_with_declared_size(100_000, 100_000))
    assert error.kind == ErrorKind.TOO_LARGE


def test_tracking_pixel_is_skipped():
    error = error_of(encode(Image.new("RGB", (1, 1)), "GIF"))
    assert error.kind == ErrorKind.TOO_SMALL
    assert error.skipped


def test_extreme_aspect_ratio_is_kept():
    prepared = prepare_image(encode(Image.new("RGB", (10000, 10), "white"), "PNG"), LIMITS)
    assert prepared.pixels.shape[1] == 64
    assert prepared.pixels.shape[0] >= 1
