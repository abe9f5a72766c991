"""Check, on the driver and before any actor starts, that the model's processor loads.

It is a few small files, so a typo in --model fails in seconds with a clear message
instead of after the actor pool has started; it also tells the CPU stage the pixel
size the model wants.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoImageProcessor

from vlworkers.config import EngineConfig
from vlworkers.device_pixels import UnsupportedImageProcessorError, towers_for
from vlworkers.engine_hf import ModelLoadError
from vlworkers.engine_select import fetch_model_config, resolve_engine, target_side, vllm_family


@dataclass(frozen=True)
class ModelInfo:
    target_size: int  # longest side the processor resizes to (the SAM side for hybrids)
    image_processor: str


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
    try:
        # The same towers the engine builds pixels for: an unsupported processor fails here,
        # before any actor starts.
        towers = towers_for(processor)
    except UnsupportedImageProcessorError as exc:
        raise ModelLoadError(f"model {config.model!r}: {exc}") from exc
    return ModelInfo(
        target_size=max(tower.side for tower in towers),
        image_processor=type(processor).__name__,
    )
