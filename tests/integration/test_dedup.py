"""Identical images are generated once per job; copies say where their text came from."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from jobs.run import EXIT_OK, main
from tests.images import jpeg_bytes
from vlworkers.dedup import HIT, MINE, WAIT, CachedResult, Deduplicator, KeyedRequest, ResultCache
from vlworkers.engine import GenerationRequest, GenerationResult

pytestmark = pytest.mark.usefixtures("local_ray")


def write_manifest(tmp_path, copies_of_logo: int, unique: int):
    images = tmp_path / "imgs"
    images.mkdir()
    uris, ids = [], []
    for i in range(copies_of_logo):  # one logo under many names, as archives hold it
        (images / f"logo-{i}.png").write_bytes(jpeg_bytes((64, 64), "red"))
        uris.append(str(images / f"logo-{i}.png"))
        ids.append(f"logo-{i}")
    for i in range(unique):
        (images / f"photo-{i}.jpg").write_bytes(jpeg_bytes((60 + i, 40)))
        uris.append(str(images / f"photo-{i}.jpg"))
        ids.append(f"photo-{i}")
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ids, "uri": uris}), manifest)
    return manifest


def test_duplicates_cost_no_model_time_within_a_job(tmp_path, tiny_model):
    manifest = write_manifest(tmp_path, copies_of_logo=9, unique=3)
    args = [str(manifest), "--model", str(tiny_model), "--max-new-tokens", "5", "--batch-size", "2"]
    assert main(args) == EXIT_OK
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "m.captions").to_pylist()}
    logos = [rows[f"logo-{i}"] for i in range(9)]
    generated = [r for r in logos if r["copied_from"] is None]
    assert len(generated) == 1  # one generation for nine identical images
    source = generated[0]["id"]
    assert all(r["copied_from"] == source for r in logos if r["id"] != source)
    assert len({r["text"] for r in logos}) == 1
    assert all(rows[f"photo-{i}"]["copied_from"] is None for i in range(3))
    summary = json.loads((tmp_path / "m.captions" / "_summary.json").read_text())
    assert summary["rows"] == 12


def test_cross_run_cache_reuses_earlier_results(tmp_path, tiny_model):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    cache = tmp_path / "cache"
    common = ["--model", str(tiny_model), "--max-new-tokens", "5", "--cache", str(cache)]
    assert main([str(write_manifest(first_dir, 1, 2)), *common]) == EXIT_OK
    # A new manifest, new file names, the same images: nothing needs the model.
    assert main([str(write_manifest(second_dir, 1, 2)), *common]) == EXIT_OK
    first = {r["id"]: r for r in pq.read_table(first_dir / "m.captions").to_pylist()}
    second = {r["id"]: r for r in pq.read_table(second_dir / "m.captions").to_pylist()}
    for row_id, row in second.items():
        assert row["copied_from"] == row_id  # generated for the same id in the first run
        assert row["text"] == first[row_id]["text"]
    # Another prompt is another result: the cache must not answer it.
    third_dir = tmp_path / "c"
    third_dir.mkdir()
    assert main([str(write_manifest(third_dir, 1, 2)), *common, "--task", "alt_text"]) == EXIT_OK
    third = pq.read_table(third_dir / "m.captions").to_pylist()
    assert all(r["copied_from"] is None for r in third)


def test_no_dedup_generates_every_row(tmp_path, tiny_model):
    manifest = write_manifest(tmp_path, copies_of_logo=4, unique=0)
    assert (
        main([str(manifest), "--model", str(tiny_model), "--max-new-tokens", "3", "--no-dedup"])
        == EXIT_OK
    )
    rows = pq.read_table(tmp_path / "m.captions").to_pylist()
    assert [r["copied_from"] for r in rows] == [None] * 4


def _request() -> GenerationRequest:
    import numpy as np

    return GenerationRequest(np.zeros((8, 8, 3), np.uint8), "p", 4)


def test_two_actors_racing_for_one_image_generate_it_once():
    cache = ray.remote(num_cpus=0)(ResultCache).remote()
    calls: list[int] = []

    def generate(requests):
        calls.append(len(requests))
        return [
            GenerationResult(text="a cat", n_output_tokens=2, finish_reason="stop")
            for _ in requests
        ]

    # Actor A claims the key first; actor B arrives while A is still generating.
    assert ray.get(cache.claim.remote(["k"])) == [(MINE, None)]
    assert ray.get(cache.claim.remote(["k"])) == [(WAIT, None)]
    cache.publish.remote({"k": CachedResult("a cat", 2, "stop", "row-a")})
    results = Deduplicator(cache, poll_s=0.01).run(
        [KeyedRequest("row-b", "k", _request())], generate
    )
    assert calls == []  # B never generated
    assert results[0][0].text == "a cat" and results[0][1] == "row-a"
    answer, cached = ray.get(cache.claim.remote(["k"]))[0]
    assert answer == HIT and cached.source_id == "row-a"


def test_a_failed_generation_releases_the_claim():
    cache = ray.remote(num_cpus=0)(ResultCache).remote()

    def failing(requests):
        return [GenerationResult(error_kind="oom", error="CUDA out of memory") for _ in requests]

    results = Deduplicator(cache).run([KeyedRequest("r1", "k", _request())], failing)
    assert results[0][0].error_kind == "oom"
    ray.get(cache.stats.remote())  # the release has landed
    assert ray.get(cache.claim.remote(["k"])) == [(MINE, None)]  # free to try again


def test_cache_is_bounded():
    cache = ResultCache(max_entries=3)
    cache.publish({f"k{i}": CachedResult("t", 1, "stop", f"r{i}") for i in range(10)})
    assert cache.stats()["entries"] == 3
    assert cache.claim(["k9"])[0][0] == HIT and cache.claim(["k0"])[0][0] == MINE
