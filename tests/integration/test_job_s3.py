"""Manifest, images and output on a real S3 API server (loopback), plus http(s) images."""

from __future__ import annotations

import json

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from jobs.run import EXIT_OK, main
from tests.images import jpeg_bytes, png_bytes
from tests.servers import http_server, s3_server


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def local_ray(s3_endpoint):
    # Started after the S3 server so Ray's workers inherit AWS_ENDPOINT_URL.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture
def bucket(s3_endpoint, request) -> str:
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    name = "caption-" + request.node.name.lower().replace("_", "-")[:40]
    fs.mkdir(name)
    return name


def test_s3_manifest_images_and_output_with_http_images(bucket, tiny_model, tmp_path):
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.pipe(f"{bucket}/images/a photo.jpg", jpeg_bytes())
    fs.pipe(f"{bucket}/images/ünïcode/label.png", png_bytes())
    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.jpg").write_bytes(jpeg_bytes((200, 300), "tomato"))
    with http_server(served) as base_url:
        rows = {
            "uri": [
                f"s3://{bucket}/images/a photo.jpg",
                f"s3://{bucket}/images/ünïcode/label.png",
                f"s3://{bucket}/images/absent.jpg",
                f"{base_url}/remote.jpg",
                f"{base_url}/absent.jpg",
            ],
            "batch": ["b1"] * 5,
        }
        with fs.open(f"{bucket}/manifests/m.parquet", "wb") as handle:
            pq.write_table(pa.table(rows), handle)
        manifest = f"s3://{bucket}/manifests/m.parquet"
        # The HTTP server is on loopback, which the job refuses unless told otherwise.
        args = [manifest, "--model", str(tiny_model), "--max-new-tokens", "6"]
        assert main([*args, "--allow-private-addresses"]) == EXIT_OK

    output = f"{bucket}/manifests/m.captions"
    files = fs.ls(output, detail=False)
    assert any(f.endswith("_summary.json") for f in files)
    table = pq.read_table(output, filesystem=fs)
    by_uri = {row["uri"]: row for row in table.to_pylist()}
    assert len(by_uri) == 5
    assert by_uri[f"s3://{bucket}/images/a photo.jpg"]["status"] == "ok"
    assert by_uri[f"s3://{bucket}/images/ünïcode/label.png"]["status"] == "ok"
    assert by_uri[f"s3://{bucket}/images/absent.jpg"]["error_kind"] == "not_found"
    http_rows = [row for uri, row in by_uri.items() if uri.startswith("http")]
    assert sorted((r["status"], r["error_kind"]) for r in http_rows) == [
        ("failed", "not_found"),
        ("ok", None),
    ]
    assert {row["batch"] for row in by_uri.values()} == {"b1"}
    assert len({row["id"] for row in by_uri.values()}) == 5  # derived from the uri

    summary = json.loads(fs.cat(f"{output}/_summary.json"))
    assert summary["by_status"] == {"ok": 3, "failed": 2}


def test_local_manifest_to_s3_output(bucket, tiny_model, tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(jpeg_bytes())
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ["x"], "uri": [str(image)]}), manifest)
    output = f"s3://{bucket}/out"
    assert (
        main(
            [str(manifest), "--model", str(tiny_model), "--output", output, "--max-new-tokens", "4"]
        )
        == EXIT_OK
    )
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    rows = pq.read_table(f"{bucket}/out", filesystem=fs).to_pylist()
    assert [(r["id"], r["status"]) for r in rows] == [("x", "ok")]
