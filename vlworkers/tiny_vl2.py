"""Build a tiny DeepSeek-VL2 (or DeepSeek-OCR) checkpoint folder for vLLM, without weights.

``python -m vlworkers.tiny_vl2 OUT_DIR [--ocr] [--full-size]`` writes ``config.json``, a tokenizer
with the real special tokens and a ``processor_config.json`` naming vLLM's own processor. It has
no weight files: load it with ``load_format="dummy"`` (``--load-format dummy``), which gives
random weights. The text model is a 2-layer MoE (4 experts, plain multi-head attention, head
dim 64: vLLM's CPU attention has no smaller head dims); the vision tower is whatever vLLM builds
for the family (for VL2 always the full SigLIP-so400m, so images stay slow on CPU).
``--full-size`` writes DeepSeek-VL2-Tiny's real text model instead, for benchmarks.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast

from vlworkers.tiny import BOS, EOS, PAD, train_tokenizer

logger = logging.getLogger(__name__)

IMAGE = "<image>"
# DeepSeek-VL2's tokenizer carries these; vLLM's processor adds any that are missing, but the
# model looks `<image>` up in the tokenizer it loads itself.
GROUNDING_TOKENS = ["<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>"]
ROLE_TOKENS = ["<|User|>", "<|Assistant|>"]
SPECIAL_TOKENS = [BOS, EOS, PAD, IMAGE, *GROUNDING_TOKENS, *ROLE_TOKENS]  # ids 0..10
VOCAB_SIZE = 640
MAX_POSITIONS = 4096

VL2_ARCHITECTURE = "DeepseekVLV2ForCausalLM"
OCR_ARCHITECTURE = "DeepseekOCRForCausalLM"

# DeepSeek-VL2-Tiny's text model (deepseek-ai/deepseek-vl2-tiny config.json), for --full-size.
FULL_TINY_TEXT: dict[str, Any] = {
    "vocab_size": 129280,
    "hidden_size": 1280,
    "intermediate_size": 6848,
    "moe_intermediate_size": 896,
    "num_hidden_layers": 12,
    "num_attention_heads": 10,
    "num_key_value_heads": 10,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
}
# DeepSeek-VL2's tiling grid: 384 px tiles, up to 3x3 (the processor picks the best fit).
FULL_CANDIDATE_RESOLUTIONS = [
    [384 * w, 384 * h] for w in range(1, 10) for h in range(1, 10) if w * h <= 9
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with DeepSeek-VL2's special tokens (the same builder as the v1 tiny)."""
    return train_tokenizer(
        SPECIAL_TOKENS,
        VOCAB_SIZE,
        MAX_POSITIONS,
        additional_special_tokens=[IMAGE, *GROUNDING_TOKENS, *ROLE_TOKENS],
    )


def _text_config(tokenizer: PreTrainedTokenizerFast, full_size: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_type": "deepseek_v2",
        "architectures": ["DeepseekV2ForCausalLM"],
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 128,
        "intermediate_size": 256,
        "moe_intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,  # head dim 64
        "num_key_value_heads": 2,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,  # layer 0 dense, layer 1 MoE, as in the real models
        "moe_layer_freq": 1,
        "n_group": 1,
        "topk_group": 1,
        "topk_method": "greedy",
        "scoring_func": "softmax",
        "norm_topk_prob": False,
        "routed_scaling_factor": 1.0,
        # DeepSeek-VL2-Tiny's attention: plain multi-head, no MLA (Small and Base use MLA).
        "use_mla": False,
        "kv_lora_rank": None,
        "q_lora_rank": None,
        "qk_nope_head_dim": 0,
        "qk_rope_head_dim": 0,
        "v_head_dim": 0,
        "max_position_embeddings": MAX_POSITIONS,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if full_size:
        config.update(FULL_TINY_TEXT)
    return config


def model_config(tokenizer: PreTrainedTokenizerFast, ocr: bool, full_size: bool) -> dict[str, Any]:
    text = _text_config(tokenizer, full_size)
    resolutions = FULL_CANDIDATE_RESOLUTIONS if full_size else [[384, 384]]
    config: dict[str, Any] = {
        "model_type": "deepseek_vl_v2",
        "architectures": [OCR_ARCHITECTURE if ocr else VL2_ARCHITECTURE],
        "language_config": text,
        # vLLM builds SigLIP-so400m/14 at 384 px whatever this says; these are its real sizes.
        "vision_config": {
            "model_name": "siglip_so400m_patch14_384",
            "image_size": 384,
            "patch_size": 14,
            "width": 1152,
            "layers": 27,
            "heads": 16,
            "mlp_ratio": 3.7362,
        },
        "projector_config": {
            "projector_type": "downsample_mlp_gelu",
            "input_dim": 1152,
            "n_embed": text["hidden_size"],
            "depth": 2,
            "mlp_ratio": 1,
            "downsample_ratio": 2,
        },
        "tile_tag": "2D",
        "global_view_pos": "head",
        "candidate_resolutions": resolutions,
        "torch_dtype": "bfloat16",
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if ocr:
        # DeepSeek-OCR's own encoders (SAM + CLIP) are fixed in vLLM's code; the projector
        # maps their concatenated 2048-wide features.
        config["projector_config"].update({"projector_type": "linear", "input_dim": 2048})
        config["vision_config"] = {"image_size": 1024}
    return config


def processor_config(ocr: bool, resolutions: list[list[int]]) -> dict[str, Any]:
    common = {
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "normalize": True,
        "image_token": IMAGE,
        "pad_token": PAD,
        "add_special_token": False,
        "sft_format": "deepseek",
        "mask_prompt": False,
        "ignore_id": -100,
    }
    if ocr:
        return {**common, "processor_class": "DeepseekOCRProcessor"}
    return {
        **common,
        "processor_class": "DeepseekVLV2Processor",
        "candidate_resolutions": resolutions,
        "patch_size": 14,
        "downsample_ratio": 2,
    }


def build_tiny_vl2(out_dir: str | Path, ocr: bool = False, full_size: bool = False) -> Path:
    """Write config, tokenizer and processor config (no weights) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out)
    config = model_config(tokenizer, ocr=ocr, full_size=full_size)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    processor = processor_config(ocr, config["candidate_resolutions"])
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2))
    generation = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    logger.info("wrote %s (%s) to %s", config["architectures"][0], len(tokenizer), out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    parser.add_argument("--ocr", action="store_true", help="DeepSeek-OCR instead of DeepSeek-VL2")
    parser.add_argument(
        "--full-size", action="store_true", help="DeepSeek-VL2-Tiny's real text model (benchmarks)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_tiny_vl2(args.out_dir, ocr=args.ocr, full_size=args.full_size)


if __name__ == "__main__":
    main()
