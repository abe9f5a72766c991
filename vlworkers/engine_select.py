"""Which engine runs a model, and what the vLLM engine needs to know about its model family.

DeepSeek-VL (v1) runs on transformers; DeepSeek-VL2 and DeepSeek-OCR are not in transformers
and run on vLLM. `auto` decides from the checkpoint's config.json when it is at hand (a local
folder or the hub cache: no network) and from the model's name otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import hf_hub_download, try_to_load_from_cache

from vlworkers.config import EngineConfig
from vlworkers.engine_hf import ModelLoadError

EngineName = Literal["hf", "vllm"]


@dataclass(frozen=True)
class VLLMFamily:
    name: str
    architectures: frozenset[str]
    name_pattern: re.Pattern[str]
    prompt_template: str  # `{prompt}` is the row's instruction; `<image>` marks the image
    # Architecture handed to vLLM when the checkpoint's config names none (the hub's VL2
    # configs do not); None keeps the checkpoint's own.
    architecture_override: str | None


DEEPSEEK_VL2 = VLLMFamily(
    name="deepseek_vl2",
    architectures=frozenset({"DeepseekVLV2ForCausalLM"}),
    name_pattern=re.compile(r"deepseek[-_.]?vl[-_.]?v?2", re.IGNORECASE),
    # DeepSeek-VL2's "deepseek" conversation format, as in vLLM's vision-language example.
    prompt_template="<|User|>: <image>\n{prompt}\n\n<|Assistant|>:",
    architecture_override="DeepseekVLV2ForCausalLM",
)
DEEPSEEK_OCR = VLLMFamily(
    name="deepseek_ocr",
    architectures=frozenset({"DeepseekOCRForCausalLM", "DeepseekOCR2ForCausalLM"}),
    name_pattern=re.compile(r"deepseek[-_.]?ocr", re.IGNORECASE),
    # DeepSeek-OCR takes a plain prompt, no chat turns (vLLM's deepseek_ocr template).
    prompt_template="<image>\n{prompt}",
    architecture_override=None,
)
VLLM_FAMILIES = (DEEPSEEK_OCR, DEEPSEEK_VL2)  # OCR first: its configs say deepseek_vl_v2 too

# Longest image side shipped to the actors. VL2 tiles at 384 px over its candidate
# resolutions (up to 3x3, 1152 px, in the released checkpoints); DeepSeek-OCR's vLLM processor
# cuts 640 px tiles, at most 6, so a page gets 2x3 tiles: 1920 px on its long side.
VL2_DEFAULT_SIDE = 384  # vLLM's default candidate resolution
OCR_TARGET_SIDE = 1920


def _local_config(model: str, revision: str | None) -> dict[str, Any] | None:
    """config.json from a local folder or the hub cache; None when neither has it."""
    folder = Path(model)
    if folder.is_dir():
        path: Path | None = folder / "config.json"
    else:
        try:
            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except ValueError:  # not a hub id either: the model probe reports it
            return None
        path = Path(cached) if isinstance(cached, str) else None
    if path is None or not path.is_file():
        return None
    return _read_json(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def family_of(model: str, model_config: dict[str, Any] | None) -> VLLMFamily | None:
    """The vLLM family a checkpoint belongs to, from its config if known, else its name."""
    if model_config is not None:
        architectures = set(model_config.get("architectures") or [])
        for family in VLLM_FAMILIES:
            if architectures & family.architectures:
                return family
        if model_config.get("model_type") == "deepseek_vl_v2":
            return DEEPSEEK_VL2
        return None
    return next((f for f in VLLM_FAMILIES if f.name_pattern.search(model)), None)


def resolve_engine(config: EngineConfig) -> EngineName:
    """`auto` becomes vllm for DeepSeek-VL2 / DeepSeek-OCR checkpoints, hf for the rest."""
    if config.engine != "auto":
        return config.engine
    family = family_of(config.model, _local_config(config.model, config.revision))
    return "vllm" if family is not None else "hf"


def fetch_model_config(config: EngineConfig) -> dict[str, Any]:
    """config.json from a local folder or the hub (downloads it if needed)."""
    try:
        if Path(config.model).is_dir():
            path = Path(config.model) / "config.json"
        else:
            path = Path(hf_hub_download(config.model, "config.json", revision=config.revision))
        data = json.loads(path.read_text())
    except Exception as exc:
        raise ModelLoadError(f"cannot load model {config.model!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"cannot load model {config.model!r}: config.json is not an object")
    return data


def vllm_family(config: EngineConfig, model_config: dict[str, Any]) -> VLLMFamily:
    family = family_of(config.model, model_config)
    if family is None:
        raise ModelLoadError(
            f"model {config.model!r}: the vllm engine runs DeepSeek-VL2 and DeepSeek-OCR "
            "checkpoints; use --engine hf for DeepSeek-VL"
        )
    return family


def target_side(family: VLLMFamily, model_config: dict[str, Any]) -> int:
    """Longest image side the family's processor can use; the CPU stage shrinks to it."""
    if family is DEEPSEEK_OCR:
        return OCR_TARGET_SIDE
    resolutions = model_config.get("candidate_resolutions") or [[VL2_DEFAULT_SIDE] * 2]
    # The largest grid, the squarest among equals: 1152x1152 rather than the 384x3456 strip.
    width, height = max(resolutions, key=lambda wh: (wh[0] * wh[1], -abs(wh[0] - wh[1])))
    return int(max(width, height))
