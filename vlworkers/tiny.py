"""Build tiny random-weight DeepSeek-VL checkpoints for tests and local smoke runs.

``python -m vlworkers.tiny OUT_DIR [--hybrid] [--seed N]`` writes a directory that loads with
``AutoModelForImageTextToText`` / ``AutoProcessor`` just like the hub checkpoint
``deepseek-community/deepseek-vl-1.3b-chat`` (SigLIP only) or, with ``--hybrid``, like
``deepseek-community/deepseek-vl-7b-chat`` (SigLIP low-res + SAM high-res). Everything, tokenizer
included, is built in code: no hub access is needed.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForImageTextToText,
    DeepseekVLConfig,
    DeepseekVLHybridConfig,
    DeepseekVLHybridImageProcessorPil,
    DeepseekVLHybridProcessor,
    DeepseekVLImageProcessorPil,
    DeepseekVLProcessor,
    GenerationConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
)
from transformers.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PILImageResampling,
)

logger = logging.getLogger(__name__)

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image_placeholder>"
SPECIAL_TOKENS = [BOS, EOS, PAD, IMAGE]  # trained first, so ids 0..3
VOCAB_SIZE = 512
MAX_POSITIONS = 2048

SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using natural "
    "language."
)

# DeepSeek-VL "deepseek" sft format (deepseek_vl/utils/conversation.py), as in the converted hub
# checkpoints, except that a leading `system` message replaces the default system prompt and an
# assistant turn always ends in EOS (as the original get_prompt does).
CHAT_TEMPLATE = (
    # Separators go through expressions: HF renders with trim_blocks, which would eat a literal
    # newline right after a block tag.
    "{% set seps = ['\n\n', '" + EOS + "'] %}"
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}{% else %}"
    "{% for item in content %}"
    "{% if item['type'] == 'image' %}" + IMAGE + "{% elif item['type'] == 'text' %}"
    "{% set text = item['text'] %}"
    "{% if loop.first %}{% set text = text.lstrip() %}{% endif %}"
    "{% if loop.last %}{% set text = text.rstrip() %}{% endif %}"
    "{% if not loop.first and content[loop.index0 - 1]['type'] == 'text' %} {% endif %}"
    "{{ text }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endmacro %}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = render(messages[0]['content']) %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '" + SYSTEM_PROMPT + "' %}{% set turns = messages %}{% endif %}"
    "{% if system %}{{ system }}{{ seps[0] }}{% endif %}"
    "{% for message in turns %}"
    "{% if message['role'] == 'assistant' %}"
    "Assistant: {{ render(message['content']) }}{{ seps[1] }}"
    "{% else %}"
    "{{ 'User' if message['role'] == 'user' else message['role'].capitalize() }}: "
    "{{ render(message['content']) }}"
    "{% if not loop.last or add_generation_prompt %}{{ seps[0] }}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# Small built-in corpus so the BPE merges cover the prompt and typical caption words.
CORPUS = [
    SYSTEM_PROMPT,
    "User: Describe this image. Assistant: The image shows a cat on a red sofa next to a window.",
    "A dog runs across a green field under a blue sky with white clouds. Two people walk along the "
    "beach at sunset. A bowl of fruit with apples, bananas and oranges sits on a wooden table.",
    "The photo shows a city street with cars, buses and tall buildings. A small boat floats on a "
    "calm lake surrounded by mountains and trees. There is a plate of rice and vegetables.",
    "A child is playing with a yellow ball in the park on a sunny day. The picture contains a "
    "black and white drawing of a house with a garden. A close-up of a flower with pink petals.",
    "An old man reads a newspaper on a bench in the morning. The screenshot shows a web page with "
    "a title, a menu and some text. A chart with blue bars compares the sales of three products.",
]


def train_tokenizer(
    special_tokens: list[str], vocab_size: int, max_positions: int, **special: Any
) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on CORPUS with `special_tokens` first (ids 0..n-1); BOS is
    prepended like the real DeepSeek tokenizers do. Deterministic for fixed arguments.
    `special` names further special tokens the way the model's processor expects them."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=max_positions,
        **special,
    )


def _build_tokenizer() -> PreTrainedTokenizerFast:
    # `extra_special_tokens` gives `tokenizer.image_token`, which DeepseekVLProcessor reads.
    return train_tokenizer(
        SPECIAL_TOKENS, VOCAB_SIZE, MAX_POSITIONS, extra_special_tokens={"image_token": IMAGE}
    )


def _printable(tokenizer: PreTrainedTokenizerFast, token_id: int) -> bool:
    text = tokenizer.decode([token_id])
    return isinstance(text, str) and text.isascii() and text.isprintable()


@dataclass(frozen=True)
class Size:
    """Layer sizes: `tiny` for tests, `small` for CPU benchmarks where the model's time
    dominates, `1.3b` for the real DeepSeek-VL 1.3B shapes (GPU benchmarks)."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    image_size: int
    patch: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int
    vision_heads: int
    # Wider than the usual 0.02 for `tiny` (it also initialises the aligner and lm_head): at
    # 0.02 the tiny model mostly echoes the last prompt token, whatever the image.
    init_range: float


SIZES = {
    "tiny": Size(VOCAB_SIZE, 64, 128, 2, 4, 32, 8, 32, 64, 1, 2, 0.2),
    "small": Size(VOCAB_SIZE, 512, 1376, 4, 8, 192, 16, 384, 1536, 4, 6, 0.02),
    "1.3b": Size(102400, 2048, 5632, 24, 16, 384, 16, 1024, 4096, 24, 16, 0.02),
}


def _text_config(tokenizer: PreTrainedTokenizerFast, size: Size) -> dict:
    return {
        "model_type": "llama",
        "vocab_size": size.vocab,
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.heads,
        "max_position_embeddings": MAX_POSITIONS,
        "initializer_range": size.init_range,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _siglip_config(size: Size) -> dict:
    # No attention-pool head: DeepSeek-VL consumes the patch tokens (vision_use_head=False).
    return {
        "model_type": "siglip_vision_model",
        "image_size": size.image_size,
        "patch_size": size.patch,
        "hidden_size": size.vision_hidden,
        "intermediate_size": size.vision_intermediate,
        "num_hidden_layers": size.vision_layers,
        "num_attention_heads": size.vision_heads,
        "vision_use_head": False,
    }


def _sam_config(image_size: int) -> dict:
    # 8x8 patch grid; layer 0 windowed (4x4 windows), layer 1 global (its output feeds the HD neck).
    return {
        "model_type": "sam_vision_model",
        "image_size": image_size,
        "patch_size": 8,
        "hidden_size": 32,
        "output_channels": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "window_size": 4,
        "global_attn_indexes": [1],
        "mlp_dim": 64,
        # SAM's default 1e-10 init makes the high-res branch output a constant.
        "initializer_range": 0.02,
    }


def build_tiny_checkpoint(
    out_dir: str | Path, hybrid: bool = False, seed: int = 0, size: str = "tiny"
) -> Path:
    """Build and save a random DeepSeek-VL (or hybrid) model + processor into ``out_dir``."""
    if hybrid and size != "tiny":
        raise ValueError("the hybrid checkpoint comes in the tiny size only")
    dims = SIZES[size]
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _build_tokenizer()
    if len(tokenizer) > VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens > vocab_size {VOCAB_SIZE}")
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE)
    low_res, high_res = dims.image_size, 2 * dims.image_size
    vision = _siglip_config(dims)
    # SigLIP has no CLS token, and the SAM branch is resampled onto the same grid.
    num_image_tokens = (low_res // vision["patch_size"]) ** 2

    # Untied lm_head like the DeepSeek LLM backbones.
    common: dict[str, Any] = {
        "text_config": _text_config(tokenizer, dims),
        "vision_config": vision,
        "image_token_id": image_token_id,
        "tie_word_embeddings": False,
    }
    config: PreTrainedConfig
    image_processor: DeepseekVLImageProcessorPil | DeepseekVLHybridImageProcessorPil
    processor_cls: type[ProcessorMixin]
    if hybrid:
        config = DeepseekVLHybridConfig(**common, high_res_vision_config=_sam_config(high_res))
        # Same normalisation/resampling as the converted deepseek-vl-7b-chat processor.
        image_processor = DeepseekVLHybridImageProcessorPil(
            size={"height": low_res, "width": low_res},
            high_res_size={"height": high_res, "width": high_res},
            image_mean=IMAGENET_STANDARD_MEAN,
            image_std=IMAGENET_STANDARD_STD,
            high_res_image_mean=OPENAI_CLIP_MEAN,
            high_res_image_std=OPENAI_CLIP_STD,
            resample=PILImageResampling.BILINEAR,
        )
        processor_cls = DeepseekVLHybridProcessor
    else:
        config = DeepseekVLConfig(**common)
        image_processor = DeepseekVLImageProcessorPil(
            size={"height": low_res, "width": low_res},
            image_mean=IMAGENET_STANDARD_MEAN,
            image_std=IMAGENET_STANDARD_STD,
        )
        processor_cls = DeepseekVLProcessor
    processor = processor_cls(
        image_processor, tokenizer, chat_template=CHAT_TEMPLATE, num_image_tokens=num_image_tokens
    )

    # Zero the lm_head rows of special tokens and of non-printable byte tokens: their logits are
    # exactly 0 while ordinary tokens get random +/- logits, so greedy decoding yields readable
    # text rather than EOS/pad/U+FFFD (EOS stays reachable, e.g. when sampling).
    special = set(tokenizer.all_special_ids)
    hidden = [i for i in range(len(tokenizer)) if i in special or not _printable(tokenizer, i)]
    hidden += list(range(len(tokenizer), dims.vocab))  # ids the small tokenizer cannot decode
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        # Resolves to Deepseek-VL(Hybrid)ForConditionalGeneration from the config's model_type.
        model: PreTrainedModel = AutoModelForImageTextToText.from_config(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[hidden] = 0.0

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if size != "tiny":
        model.bfloat16()  # how the real checkpoints ship; halves the files
    model.save_pretrained(out)
    processor.save_pretrained(out)
    logger.info(
        "built tiny %s (%d params, %d image tokens) in %.1fs",
        type(model).__name__,
        sum(p.numel() for p in model.parameters()),
        num_image_tokens,
        time.perf_counter() - start,
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    parser.add_argument("--hybrid", action="store_true", help="SigLIP + SAM (deepseek-vl-7b style)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        choices=tuple(SIZES),
        default="tiny",
        help="tiny: tests; small: CPU benchmarks; 1.3b: the real 1.3B shapes (GPU benchmarks)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = build_tiny_checkpoint(args.out_dir, hybrid=args.hybrid, seed=args.seed, size=args.size)
    print(f"wrote tiny {'hybrid ' if args.hybrid else ''}DeepSeek-VL checkpoint to {out}")


if __name__ == "__main__":
    main()
