"""The tiny DeepSeek-VL checkpoints load and generate like the real hub ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlworkers.tiny import BOS, EOS, IMAGE, PAD, build_tiny_checkpoint, main

CAPTION_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using natural "
    "language.\n\nUser: <image_placeholder>Describe this image.\n\nAssistant:"
)
MESSAGES = [
    {
        "role": "user",
        "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}],
    }
]
EXPECTED = {
    False: (
        "DeepseekVLForConditionalGeneration",
        "DeepseekVLProcessor",
        "DeepseekVLImageProcessorPil",
    ),
    True: (
        "DeepseekVLHybridForConditionalGeneration",
        "DeepseekVLHybridProcessor",
        "DeepseekVLHybridImageProcessorPil",
    ),
}


@pytest.fixture(scope="module", params=[False, True], ids=["siglip", "hybrid"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    hybrid: bool = request.param
    out = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), hybrid=hybrid)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(out)
    return hybrid, model, processor


def _images() -> list[Image.Image]:
    # Different sizes and aspect ratios exercise resize + pad-to-square.
    return [Image.new("RGB", (120, 48), (200, 30, 30)), Image.new("RGB", (40, 90), (20, 60, 220))]


def test_classes_and_special_tokens(tiny: Any) -> None:
    hybrid, model, processor = tiny
    model_cls, processor_cls, image_processor_cls = EXPECTED[hybrid]
    assert type(model).__name__ == model_cls
    assert type(processor).__name__ == processor_cls
    assert type(processor.image_processor).__name__ == image_processor_cls

    tok = processor.tokenizer
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.image_token) == (BOS, EOS, PAD, IMAGE)
    image_id = tok.convert_tokens_to_ids(IMAGE)
    assert model.config.image_token_id == image_id == processor.image_token_id
    assert len(tok) <= model.config.text_config.vocab_size
    text_cfg, gen_cfg = model.config.text_config, model.generation_config
    assert text_cfg.bos_token_id == gen_cfg.bos_token_id == tok.bos_token_id
    assert text_cfg.eos_token_id == gen_cfg.eos_token_id == tok.eos_token_id
    assert text_cfg.pad_token_id == gen_cfg.pad_token_id == tok.pad_token_id
    # BOS is prepended and the image placeholder is never split.
    ids = tok(f"Hi {IMAGE}{IMAGE}").input_ids
    assert ids[0] == tok.bos_token_id
    assert ids.count(image_id) == 2


def test_chat_template(tiny: Any) -> None:
    _, _, processor = tiny
    assert processor.apply_chat_template(MESSAGES, add_generation_prompt=True) == CAPTION_PROMPT
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "Colour?"}]},
    ]
    assert processor.apply_chat_template(conversation, add_generation_prompt=True) == (
        f"Be brief.\n\nUser: {IMAGE}What is it?\n\nAssistant: A cat.{EOS}"
        "User: Colour?\n\nAssistant:"
    )


def test_image_token_count_matches_features(tiny: Any) -> None:
    hybrid, model, processor = tiny
    inputs = processor(images=_images()[:1], text=[CAPTION_PROMPT], return_tensors="pt")
    n_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_tokens == processor.num_image_tokens == 16
    size = processor.image_processor.size
    assert inputs["pixel_values"].shape == (1, 3, size["height"], size["width"])
    pixels = {"pixel_values": inputs["pixel_values"]}
    if hybrid:
        high = processor.image_processor.high_res_size
        assert inputs["high_res_pixel_values"].shape == (1, 3, high["height"], high["width"])
        pixels["high_res_pixel_values"] = inputs["high_res_pixel_values"]
    else:
        assert "high_res_pixel_values" not in inputs
    with torch.no_grad():
        features = model.model.get_image_features(**pixels).pooler_output
    assert features.shape == (1, n_tokens, model.config.text_config.hidden_size)


def test_batched_generate_left_padding(tiny: Any) -> None:
    _, model, processor = tiny
    processor.tokenizer.padding_side = "left"
    images = _images()
    prompts = [CAPTION_PROMPT, CAPTION_PROMPT.replace("Describe", "Briefly describe")]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True)
    prompt_len = inputs["input_ids"].shape[1]
    assert inputs["attention_mask"][0, 0] == 0  # the shorter prompt is left-padded
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape == (2, prompt_len + 8)
    captions = processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
    assert all(isinstance(c, str) and c.strip() for c in captions)

    # Left padding must not change what each row generates.
    for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        single = processor(images=[image], text=[prompt], return_tensors="pt")
        one = model.generate(**single, max_new_tokens=8, do_sample=False)
        assert torch.equal(one[0, single["input_ids"].shape[1] :], out[i, prompt_len:])


def test_cli_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "a")])
    assert str(tmp_path / "a") in capsys.readouterr().out
    build_tiny_checkpoint(tmp_path / "b")
    build_tiny_checkpoint(tmp_path / "c", seed=1)
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in "abc"]
    assert weights[0] == weights[1] != weights[2]
    tokenizers = [(tmp_path / d / "tokenizer.json").read_bytes() for d in "abc"]
    assert tokenizers[0] == tokenizers[1] == tokenizers[2]
