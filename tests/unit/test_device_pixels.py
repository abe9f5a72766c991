"""Normalisation on the model's device matches the checkpoint's own image processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor
from transformers.models.deepseek_vl.image_processing_pil_deepseek_vl import (
    DeepseekVLImageProcessorPil,
)
from transformers.models.deepseek_vl_hybrid.image_processing_pil_deepseek_vl_hybrid import (
    DeepseekVLHybridImageProcessorPil,
)

from vlworkers.device_pixels import UnsupportedImageProcessorError, model_pixels, towers_for

# One uint8 level is 1/255/std, about 0.015 after CLIP normalisation.
_LEVEL = 1 / 255 / 0.26


def _real_size_processors():
    return [
        DeepseekVLImageProcessorPil(size={"height": 384, "width": 384}),  # 1.3B
        DeepseekVLHybridImageProcessorPil(  # 7B: SigLIP 384 + SAM 1024
            size={"height": 384, "width": 384}, high_res_size={"height": 1024, "width": 1024}
        ),
    ]


def _images(shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]


@pytest.mark.parametrize("processor", _real_size_processors(), ids=["siglip", "hybrid"])
def test_matches_the_processor_for_images_the_cpu_stage_hands_over(processor):
    # The CPU stage never hands over more than the largest tower's side.
    largest = max(tower.side for tower in towers_for(processor))
    shapes = [(largest, 300), (200, largest), (largest, largest), (120, 80), (20, largest)]
    images = _images(shapes)
    expected = processor([Image.fromarray(a) for a in images], return_tensors="pt")
    got = model_pixels(images, towers_for(processor), torch.device("cpu"), torch.float32)
    assert set(got) == set(expected.keys())
    for key, tensor in got.items():
        assert tensor.shape == expected[key].shape and tensor.dtype == torch.float32
        difference = (tensor - expected[key]).abs()
        # Pillow's and torch's bicubic differ only where an image is rescaled, by a level
        # or two on average; pads and already-sized images match exactly.
        assert difference.mean() < 0.5 * _LEVEL, key
        assert difference.quantile(0.99) < 3 * _LEVEL, key


def test_an_image_at_model_size_is_normalised_exactly():
    processor = _real_size_processors()[0]
    images = _images([(384, 250), (250, 384)])
    expected = processor([Image.fromarray(a) for a in images], return_tensors="pt")
    got = model_pixels(images, towers_for(processor), torch.device("cpu"), torch.float32)
    torch.testing.assert_close(got["pixel_values"], expected["pixel_values"])


def test_the_tiny_checkpoints_processors_are_supported(tiny_model, tiny_hybrid_model):
    plain = towers_for(AutoImageProcessor.from_pretrained(tiny_model))
    hybrid = towers_for(AutoImageProcessor.from_pretrained(tiny_hybrid_model))
    assert [t.key for t in plain] == ["pixel_values"]
    assert [t.key for t in hybrid] == ["high_res_pixel_values", "pixel_values"]
    assert hybrid[0].side > hybrid[1].side


def test_output_takes_the_model_dtype():
    processor = _real_size_processors()[0]
    got = model_pixels(
        _images([(64, 48)]), towers_for(processor), torch.device("cpu"), torch.bfloat16
    )
    assert got["pixel_values"].dtype == torch.bfloat16
    assert got["pixel_values"].shape == (1, 3, 384, 384)


def test_an_unknown_processor_is_refused():
    class SomeOtherImageProcessor:
        pass

    with pytest.raises(UnsupportedImageProcessorError, match="SomeOtherImageProcessor"):
        towers_for(SomeOtherImageProcessor())
