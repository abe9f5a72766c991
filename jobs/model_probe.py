"""Check, on the driver and before any actor starts, that the model's processor loads.

It is a few small files, so a typo in --model fails in seconds with a clear message
instead of after the actor pool has started; it also tells the CPU stage the pixel
size the model wants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import AutoImageProcessor

from vlworkers.config import EngineConfig
from vlworkers.engine_hf import ModelLoadError
from vlworkers.engine_select import fetch_model_config, resolve_engine, target_side, vllm_family


@dataclass(frozen=True)
class ModelInfo:
    target_size: int  # longest side the processor resizes to (the SAM side for hybrids)
    image_processor: str


def _side(size: Any) -> int:
    if size is None:
        return 0
    if isinstance(size, int):
        return size
    get = (
        size.get
        if isinstance(size, dict)
        else lambda key, default=None: getattr(size, key, default)
    )
    return int(
        max(
            get("height", 0) or 0,
            get("width", 0) or 0,
            get("longest_edge", 0) or 0,
            get("shortest_edge", 0) or 0,
        )
    )


def probe_model(config: EngineConfig) -> ModelInfo:
    if resolve_engine(config) == "vllm":
        # Not in transformers: vLLM's own processors size images from config.json.
        model_config = fetch_model_config(config)
        family = vllm_family(config, model_config)
        return ModelInfo(target_side(family, model_config), image_processor=f"vLLM {family.name}")
    try:
        processor = AutoImageProcessor.from_pretrained(
            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except Exception as exc:
        raise ModelLoadError(f"cannot load model {config.model!r}: {exc}") from exc
    target = max(
        _side(getattr(processor, "size", None)), _side(getattr(processor, "high_res_size", None))
    )
    if target <= 0:
        raise ModelLoadError(
            f"model {config.model!r}: cannot tell its image size from the processor"
        )
    return ModelInfo(target_size=target, image_processor=type(processor).__name__)
