"""Bad command lines and manifests stop the job before Ray starts or a model loads."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from jobs.cli import parse_config
from jobs.run import EXIT_BAD_INPUT, main


@pytest.fixture
def manifest(tmp_path) -> str:
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.table({"uri": [str(tmp_path / "a.jpg")]}), path)
    return str(path)


def test_defaults(manifest):
    config = parse_config([manifest])
    assert config.output.endswith("batch.captions")
    assert config.preprocess.default_task == "caption"
    assert config.engine.model == "deepseek-community/deepseek-vl-1.3b-chat"
    assert not config.engine.trust_remote_code
    assert (config.min_replicas, config.max_replicas) == (1, 1)


def test_prompt_alone_means_custom_task(manifest):
    config = parse_config([manifest, "--prompt", "Count the birds."])
    assert config.preprocess.default_task == "custom"


def test_replica_range_and_fractional_gpus(manifest):
    config = parse_config([manifest, "--replicas", "2-6", "--gpus-per-replica", "0.25"])
    assert (config.min_replicas, config.max_replicas, config.gpus_per_replica) == (2, 6, 0.25)


@pytest.mark.parametrize(
    "argv",
    [["--task", "poem"], ["--batch-size", "0"], ["--replicas", "4-2"], ["--limit", "x"]],
)
def test_bad_options_exit_2(manifest, argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main([manifest, *argv])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_bad_manifest_exits_before_ray(tmp_path, capsys):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"path": ["a.jpg"]}), path)
    assert main([str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no 'uri' column" in err
    assert err.count("\n") == 1  # one clear line, no traceback
    assert not ray.is_initialized()


def test_unloadable_model_exits_before_ray(manifest, tmp_path, capsys):
    assert main([manifest, "--model", str(tmp_path / "no-such-model")]) == EXIT_BAD_INPUT
    assert "cannot load model" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_output_holding_other_files_is_refused(manifest, tmp_path, tiny_model, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "part.parquet").write_bytes(b"x")
    assert main([manifest, "--output", str(output), "--model", str(tiny_model)]) == EXIT_BAD_INPUT
    assert "choose another --output, or --overwrite" in capsys.readouterr().err
    assert (output / "part.parquet").exists()  # nothing of the user's is touched
