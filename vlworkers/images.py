"""Decode, check and shrink images on CPU workers, so GPU actors get compact uint8 pixels.

Every failure is an `ImageError` carrying a stable `ErrorKind`; nothing else escapes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from manifests.schema import ErrorKind

# Decoding a truncated file must fail, not silently fill the rest with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_ORIENTATION_SWAPS_SIDES = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageLimits:
    """How big and how small an image may be; from the job config."""

    target_size: int
    max_pixels: int = 64_000_000
    min_side: int = 8


@dataclass(frozen=True)
class PreparedImage:
    pixels: np.ndarray  # uint8, (height, width, 3), longest side <= target_size
    width: int  # as displayed (EXIF orientation applied), before shrinking
    height: int


class ImageError(Exception):
    def __init__(self, kind: ErrorKind, message: str, skipped: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.skipped = skipped


def prepare_image(data: bytes, limits: ImageLimits) -> PreparedImage:
    if not data:
        raise ImageError(ErrorKind.EMPTY_FILE, "the file is empty (0 bytes)")
    image = _open(data)
    try:
        return _prepare(image, limits)
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageError(ErrorKind.DECODE_ERROR, f"cannot decode image: {exc}") from exc


def _prepare(image: Image.Image, limits: ImageLimits) -> PreparedImage:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            ErrorKind.TOO_LARGE,
            f"image declares {width}x{height} pixels, over the limit of {limits.max_pixels}",
        )
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in _ORIENTATION_SWAPS_SIDES:
        width, height = height, width
    if min(width, height) < limits.min_side:
        raise ImageError(
            ErrorKind.TOO_SMALL,
            f"image is {width}x{height}, below {limits.min_side} px on a side (spacer or tracker)",
            skipped=True,
        )
    return PreparedImage(pixels=_decode_rgb(image, limits.target_size), width=width, height=height)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(ErrorKind.TOO_LARGE, f"decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(_unreadable_kind(data), _unreadable_message(data)) from exc
        except Exception as exc:
            raise ImageError(ErrorKind.DECODE_ERROR, f"cannot read image header: {exc}") from exc


def _unreadable_kind(data: bytes) -> ErrorKind:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
        return ErrorKind.UNSUPPORTED_FORMAT
    return ErrorKind.DECODE_ERROR


def _unreadable_message(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if b"<svg" in head:
        return "SVG images are not rendered"
    if head.startswith((b"<!doctype html", b"<html")):
        return "got an HTML page, not an image"
    return "not a recognised image format"


def _decode_rgb(image: Image.Image, target_size: int) -> np.ndarray:
    if getattr(image, "is_animated", False):
        image.seek(0)  # the first frame stands for the animation
    if image.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result is still big enough.
        image.draft("RGB", (target_size, target_size))
    image.load()
    image = ImageOps.exif_transpose(image) or image
    image = _to_rgb(image)
    if max(image.size) > target_size:
        scale = target_size / max(image.size)
        new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: keep the top 8 bits instead of clipping everything to white.
        array = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((array >> 8).clip(0, 255).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
