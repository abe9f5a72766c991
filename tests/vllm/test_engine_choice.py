"""Engine choice, vLLM prompts, options and result mapping: no vLLM needed, so these also
run in the main test suite."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from jobs.cli import parse_config
from jobs.model_probe import probe_model
from vlworkers.config import EngineConfig
from vlworkers.engine_hf import ModelLoadError
from vlworkers.engine_select import (
    DEEPSEEK_OCR,
    DEEPSEEK_VL2,
    OCR_TARGET_SIDE,
    resolve_engine,
    target_side,
)
from vlworkers.engine_vllm import chat_prompt, llm_kwargs, to_result
from vlworkers.tiny_vl2 import FULL_CANDIDATE_RESOLUTIONS, SPECIAL_TOKENS, build_tokenizer


@pytest.mark.parametrize(
    ("model", "engine"),
    [
        ("deepseek-ai/deepseek-vl2-tiny", "vllm"),
        ("deepseek-ai/deepseek-vl2-small", "vllm"),
        ("deepseek-ai/deepseek-vl2", "vllm"),
        ("deepseek-ai/DeepSeek-OCR", "vllm"),
        ("deepseek-community/deepseek-vl-1.3b-chat", "hf"),
        ("deepseek-community/deepseek-vl-7b-chat", "hf"),
        ("/no/such/folder", "hf"),  # neither a folder nor a hub id: the model probe says so
    ],
)
def test_auto_picks_the_engine_by_model_name(model, engine):
    assert resolve_engine(EngineConfig(model=model)) == engine


def test_a_local_config_outweighs_the_name(tmp_path, tiny_vl2, tiny_model):
    assert resolve_engine(EngineConfig(model=str(tiny_vl2))) == "vllm"
    # A DeepSeek-VL (v1) checkpoint stays on transformers, whatever its folder is called.
    lookalike = tmp_path / "deepseek-vl2-finetune"
    lookalike.mkdir()
    (lookalike / "config.json").write_text((tiny_model / "config.json").read_text())
    assert resolve_engine(EngineConfig(model=str(lookalike))) == "hf"
    assert resolve_engine(EngineConfig(model=str(lookalike), engine="vllm")) == "vllm"


def test_prompt_formats_follow_each_family():
    assert chat_prompt(DEEPSEEK_VL2, "Describe {this}.") == (
        "<|User|>: <image>\nDescribe {this}.\n\n<|Assistant|>:"
    )
    assert chat_prompt(DEEPSEEK_OCR, "Free OCR.") == "<image>\nFree OCR."


def test_image_sizes_follow_each_family():
    assert target_side(DEEPSEEK_VL2, {"candidate_resolutions": FULL_CANDIDATE_RESOLUTIONS}) == 1152
    assert target_side(DEEPSEEK_VL2, {"candidate_resolutions": [[384, 384]]}) == 384
    assert target_side(DEEPSEEK_VL2, {}) == 384
    assert target_side(DEEPSEEK_OCR, {}) == OCR_TARGET_SIDE


def test_probe_sizes_vl2_from_its_config(tiny_vl2, tiny_model):
    info = probe_model(EngineConfig(model=str(tiny_vl2), engine="vllm"))
    assert (info.target_size, info.image_processor) == (384, "vLLM deepseek_vl2")
    with pytest.raises(ModelLoadError, match="--engine hf"):
        probe_model(EngineConfig(model=str(tiny_model), engine="vllm"))


def test_llm_arguments():
    config = EngineConfig(
        model="deepseek-ai/deepseek-vl2-tiny",
        revision="abc",
        engine="vllm",
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        max_model_len=4096,
        vllm_options={"max_num_seqs": 64},
    )
    kwargs = llm_kwargs(config, DEEPSEEK_VL2)
    assert kwargs["hf_overrides"] == {"architectures": ["DeepseekVLV2ForCausalLM"]}
    assert (kwargs["revision"], kwargs["tokenizer_revision"]) == ("abc", "abc")
    assert (kwargs["tensor_parallel_size"], kwargs["distributed_executor_backend"]) == (2, "mp")
    assert (kwargs["gpu_memory_utilization"], kwargs["max_model_len"]) == (0.5, 4096)
    assert kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert kwargs["max_num_seqs"] == 64
    ocr = llm_kwargs(EngineConfig(model="deepseek-ai/DeepSeek-OCR"), DEEPSEEK_OCR)
    assert "hf_overrides" not in ocr and "distributed_executor_backend" not in ocr
    assert ocr["gpu_memory_utilization"] == 0.9


def test_replicas_sharing_a_gpu_split_its_memory_unless_told_otherwise():
    half = EngineConfig(model="deepseek-ai/DeepSeek-OCR", gpu_share=0.5)
    assert llm_kwargs(half, DEEPSEEK_OCR)["gpu_memory_utilization"] == 0.45
    told = half.model_copy(update={"gpu_memory_utilization": 0.3})
    assert llm_kwargs(told, DEEPSEEK_OCR)["gpu_memory_utilization"] == 0.3


def _output(token_ids, finish_reason, stop_reason=None, text=" a cat "):
    completion = SimpleNamespace(
        token_ids=token_ids, finish_reason=finish_reason, stop_reason=stop_reason, text=text
    )
    return SimpleNamespace(outputs=[completion], prompt_token_ids=list(range(40)))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (_output([7, 8, 1], "stop"), (2, "stop")),  # ended by EOS (id 1): not counted
        (_output([7, 8, 9], "stop", stop_reason=9), (2, "stop")),  # a stop token id
        (_output([7, 8, 9], "stop", stop_reason="cat"), (3, "stop")),  # a stop string
        (_output([7, 8, 1], "length"), (3, "length")),  # limit reached: every token counts
    ],
)
def test_results_count_tokens_without_the_end_of_sequence(output, expected):
    result = to_result(output, eos_token_id=1)
    assert (result.n_output_tokens, result.finish_reason) == expected
    assert result.text == "a cat" and result.error_kind is None
    assert result.n_input_tokens == 40


def test_an_aborted_request_is_a_generation_error():
    result = to_result(_output([7], "abort"), eos_token_id=1)
    assert result.error_kind == "generation_error" and "abort" in (result.error or "")
    assert result.text is None


@pytest.fixture
def manifest(tmp_path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "batch.parquet"
    pq.write_table(pa.table({"uri": [str(tmp_path / "a.jpg")]}), path)
    return str(path)


def test_cli_resolves_and_records_the_engine(manifest, tiny_vl2):
    config = parse_config([manifest, "--model", str(tiny_vl2), "--max-model-len", "2048"])
    assert config.engine.engine == "vllm" and config.engine.max_model_len == 2048
    assert parse_config([manifest]).engine.engine == "hf"  # the default DeepSeek-VL model


def test_cli_tensor_parallel_replicas_reserve_every_shard(manifest):
    argv = [manifest, "--model", "deepseek-ai/deepseek-vl2", "--tensor-parallel-size", "2"]
    config = parse_config(argv)
    assert (config.engine.tensor_parallel_size, config.gpus_per_replica) == (2, 2.0)
    options = json.dumps({"max_num_seqs": 32})
    config = parse_config([*argv, "--gpus-per-replica", "4", "--vllm-options", options])
    assert config.gpus_per_replica == 4.0 and config.engine.vllm_options == {"max_num_seqs": 32}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tensor-parallel-size", "2"], "vllm engine only"),
        (["--engine", "hf", "--max-model-len", "512"], "vllm engine only"),
        (["--engine", "vllm", "--vllm-options", '{"model": "x"}'], "may not set model"),
        (["--engine", "vllm", "--vllm-options", "[1]"], "JSON object"),
        (["--engine", "vllm", "--gpu-memory-utilization", "0"], "more than 0"),
        (
            ["--engine", "vllm", "--tensor-parallel-size", "4", "--gpus-per-replica", "2"],
            "at least --tensor-parallel-size",
        ),
    ],
)
def test_cli_refuses_options_that_cannot_apply(manifest, argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_config([manifest, *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_tiny_vl2_has_the_real_special_tokens(tiny_vl2):
    tokenizer = build_tokenizer()
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(len(SPECIAL_TOKENS)))
    assert tokenizer("Hi").input_ids[0] == tokenizer.bos_token_id  # BOS first, like DeepSeek's
    processor = json.loads((tiny_vl2 / "processor_config.json").read_text())
    assert processor["processor_class"] == "DeepseekVLV2Processor"
    config = json.loads((tiny_vl2 / "config.json").read_text())
    text = config["language_config"]
    assert text["hidden_size"] // text["num_attention_heads"] == 64  # vLLM CPU's smallest
    assert not list(tiny_vl2.glob("*.safetensors"))  # weightless: load_format="dummy"
