"""uint8 pixels to the model's normalised pixel tensors, on the model's own device.

The CPU stage hands the actors compact uint8 images already at (or under) the model's
side; what is left (pad to square, resize for a second tower, rescale, normalise) is
cheap elementwise work that takes a GPU microseconds and a CPU core milliseconds per
image (the processor's own numpy path: 1.2 ms an image for DeepSeek-VL 1.3B on an H100
host's core, 7 ms on a small dev box, 100 ms there for the 7B hybrid's 1024 px tower;
0.12 ms on the GPU: benchmarks/RESULTS.md).

It follows DeepSeek-VL's image processors step for step: resize the longest side to
the tower's size, pad to a centred square with the background colour, rescale,
normalise; the hybrid's low-resolution tower starts from the padded high-resolution
square. Resizing uses torch's antialiased bicubic, the kernel that matches Pillow's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class UnsupportedImageProcessorError(ValueError):
    """The checkpoint's image processor is not one whose steps this module reproduces."""


@dataclass(frozen=True)
class Tower:
    """One pixel input of the model: the key `generate` takes and how to build it."""

    key: str
    side: int
    min_side: int
    background: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float


def _side(size: Any) -> int:
    height = size["height"] if isinstance(size, dict) else getattr(size, "height", None)
    width = size["width"] if isinstance(size, dict) else getattr(size, "width", None)
    if not height or height != width:
        raise UnsupportedImageProcessorError(f"expected a square size, got {size!r}")
    return int(height)


def towers_for(image_processor: Any) -> list[Tower]:
    """The towers, in the order they are built; the first is built from the input image."""
    name = type(image_processor).__name__
    if not name.startswith("DeepseekVL"):
        raise UnsupportedImageProcessorError(f"no device preprocessing for {name}")
    if not (image_processor.do_resize and image_processor.do_pad and image_processor.do_normalize):
        raise UnsupportedImageProcessorError(f"{name}: resize, pad and normalise must all be on")
    rescale = float(image_processor.rescale_factor) if image_processor.do_rescale else 1.0
    low = Tower(
        key="pixel_values",
        side=_side(image_processor.size),
        min_side=int(image_processor.min_size),
        background=tuple(image_processor.background_color),
        mean=tuple(image_processor.image_mean),
        std=tuple(image_processor.image_std),
        rescale=rescale,
    )
    if getattr(image_processor, "high_res_size", None) is None:
        return [low]
    high = Tower(
        key="high_res_pixel_values",
        side=_side(image_processor.high_res_size),
        min_side=low.min_side,
        background=tuple(image_processor.high_res_background_color),
        mean=tuple(image_processor.high_res_image_mean),
        std=tuple(image_processor.high_res_image_std),
        rescale=rescale,
    )
    return [high, low]


def _resize_longest(image: torch.Tensor, tower: Tower) -> torch.Tensor:
    """(3, H, W) float in 0..255 -> longest side `tower.side`, rounded like Pillow's uint8."""
    height, width = image.shape[-2:]
    scale = tower.side / max(height, width)
    size = (max(round(height * scale), tower.min_side), max(round(width * scale), tower.min_side))
    if size == (height, width):
        return image
    resized = F.interpolate(image[None], size=size, mode="bicubic", antialias=True)[0]
    return resized.round_().clamp_(0, 255)


def _pad_square(image: torch.Tensor, background: tuple[int, int, int]) -> torch.Tensor:
    height, width = image.shape[-2:]
    side = max(height, width)
    if height == width:
        return image
    fill = torch.tensor(background, dtype=image.dtype, device=image.device)
    square = fill[:, None, None].expand(3, side, side).clone()
    top, left = (side - height) // 2, (side - width) // 2
    square[:, top : top + height, left : left + width] = image
    return square


def _normalise(images: torch.Tensor, tower: Tower, dtype: torch.dtype) -> torch.Tensor:
    mean = torch.tensor(tower.mean, device=images.device)[:, None, None]
    std = torch.tensor(tower.std, device=images.device)[:, None, None]
    return ((images * tower.rescale - mean) / std).to(dtype)


def model_pixels(
    images: Sequence[np.ndarray],
    towers: Sequence[Tower],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """uint8 (H, W, 3) arrays -> {tower key: (N, 3, side, side) tensor of `dtype` on `device`}.

    Only the uint8 bytes cross to the device; everything after runs there in float32
    (bf16 would round pixel values) and is cast to the model's dtype at the end.
    """
    stacks: dict[str, list[torch.Tensor]] = {tower.key: [] for tower in towers}
    for array in images:
        # A copy: arrays viewed from Arrow buffers are read-only, which torch warns about.
        image = torch.from_numpy(np.array(array, copy=True)).to(device).permute(2, 0, 1)
        image = image.to(torch.float32)
        for tower in towers:  # each tower starts from the one before (hybrid: low from high)
            image = _pad_square(_resize_longest(image, tower), tower.background)
            stacks[tower.key].append(image)
    return {tower.key: _normalise(torch.stack(stacks[tower.key]), tower, dtype) for tower in towers}
