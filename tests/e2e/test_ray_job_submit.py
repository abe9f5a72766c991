"""`ray job submit` to a real local Ray head, through the runtime_env we ship in infra/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.images import jpeg_bytes

pytestmark = pytest.mark.e2e

RAY = str(Path(sys.executable).with_name("ray"))
RUNTIME_ENV = REPO_ROOT / "infra" / "runtime_env.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env() -> dict[str, str]:
    # `python` in the job's entrypoint must be this environment's, as with an activated venv.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_head():
    dashboard_port = free_port()
    start = [
        RAY,
        "start",
        "--head",
        "--num-cpus=2",
        f"--port={free_port()}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        "--disable-usage-stats",
    ]
    subprocess.run(start, check=True, env=ray_env(), capture_output=True, timeout=180)
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        subprocess.run([RAY, "stop"], env=ray_env(), capture_output=True, timeout=120)


def submit(address: str, *job_args: str) -> subprocess.CompletedProcess:
    command = [
        RAY,
        "job",
        "submit",
        "--address",
        address,
        "--runtime-env",
        str(RUNTIME_ENV),
        "--working-dir",
        ".",
        "--",
        "python",
        "jobs/caption.py",
        *job_args,
    ]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=ray_env(), capture_output=True, text=True, timeout=480
    )


def test_job_submit_writes_results(ray_head, tiny_model, tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    manifest = tmp_path / "batch.parquet"
    pq.write_table(
        pa.table({"uri": [str(tmp_path / "a.jpg"), str(tmp_path / "gone.jpg")], "lot": [1, 2]}),
        manifest,
    )
    result = submit(ray_head, str(manifest), "--model", str(tiny_model), "--max-new-tokens", "5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    rows = pq.read_table(tmp_path / "batch.captions").to_pylist()
    assert sorted((r["lot"], r["status"]) for r in rows) == [(1, "ok"), (2, "failed")]
    assert (tmp_path / "batch.captions" / "_summary.json").exists()


def test_bad_manifest_fails_the_submitted_job_clearly(ray_head, tmp_path):
    manifest = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"url": ["x.jpg"]}), manifest)
    result = submit(ray_head, str(manifest))
    assert result.returncode != 0
    assert "no 'uri' column" in result.stdout + result.stderr


def test_kuberay_rayjob_ships_the_tested_runtime_env():
    rayjob = yaml.safe_load((REPO_ROOT / "infra" / "rayjob.yaml").read_text())
    shipped = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    assert shipped == yaml.safe_load(RUNTIME_ENV.read_text())
    assert rayjob["spec"]["entrypoint"].startswith("python jobs/caption.py ")
