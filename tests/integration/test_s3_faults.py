"""A flaky object store: 503 SlowDown, 500 and dropped connections on a share of requests."""

from __future__ import annotations

import os

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from jobs.run import EXIT_OK, main
from tests.images import jpeg_bytes
from tests.servers import fault_proxy, s3_server

FAULT_RATE = 0.2
ROWS = 40


@pytest.fixture(scope="module")
def flaky_s3():
    with s3_server() as endpoint, fault_proxy(endpoint, FAULT_RATE, seed=7) as (proxy, stats):
        os.environ["AWS_ENDPOINT_URL"] = proxy  # the job and its workers see only the proxy
        yield endpoint, stats
        os.environ["AWS_ENDPOINT_URL"] = endpoint


@pytest.fixture(scope="module")
def local_ray(flaky_s3):
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def test_every_row_ends_ok_through_injected_faults(flaky_s3, local_ray, tiny_model):
    endpoint, stats = flaky_s3
    direct = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
    direct.mkdir("flaky")
    for i in range(ROWS):
        direct.pipe(f"flaky/img/{i:03d}.jpg", jpeg_bytes((64 + i, 48)))
    with direct.open("flaky/m.parquet", "wb") as handle:
        pq.write_table(
            pa.table({"uri": [f"s3://flaky/img/{i:03d}.jpg" for i in range(ROWS)]}), handle
        )

    code = main(
        [
            "s3://flaky/m.parquet",
            "--model",
            str(tiny_model),
            "--max-new-tokens",
            "3",
            "--fetch-attempts",
            "8",
            "--retry-base-delay",
            "0.05",
            "--retry-max-delay",
            "0.5",
        ]
    )
    assert code == EXIT_OK
    rows = pq.read_table("flaky/m.captions", filesystem=direct).to_pylist()
    assert len(rows) == ROWS
    assert len({r["id"] for r in rows}) == ROWS
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows if r["status"] != "ok"]
    assert max(r["attempts"] for r in rows) > 1  # some fetches really were retried
    assert all(count > 0 for count in stats.faults.values()), stats.faults
