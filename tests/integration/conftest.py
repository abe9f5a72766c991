from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from tests.images import write_images


@pytest.fixture(scope="module")
def local_ray():
    """One in-process Ray per module; the job reuses it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def mixed_manifest(tmp_path) -> tuple[Path, dict[str, dict]]:
    """All three tasks, a custom prompt, a broken file and a missing one."""
    images = tmp_path / "images"
    images.mkdir()
    files = write_images(images)
    rows = [
        {
            "id": "cap",
            "uri": str(images / "photo.jpg"),
            "task": None,
            "prompt": None,
            "shelf": "A1",
        },
        {
            "id": "alt",
            "uri": str(images / "wide.jpg"),
            "task": "alt_text",
            "prompt": None,
            "shelf": "A2",
        },
        {
            "id": "ocr",
            "uri": str(images / "label.png"),
            "task": "ocr",
            "prompt": None,
            "shelf": "B1",
        },
        {
            "id": "own",
            "uri": str(images / "photo.jpg"),
            "task": None,
            "prompt": "Name the colours.",
            "shelf": "B2",
        },
        {
            "id": "bad",
            "uri": str(images / "broken.jpg"),
            "task": None,
            "prompt": None,
            "shelf": "C1",
        },
        {
            "id": "gone",
            "uri": str(images / "missing.png"),
            "task": None,
            "prompt": None,
            "shelf": "C2",
        },
    ]
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    expected = {row["id"]: {**row, "sha": sha.get(Path(row["uri"]).name)} for row in rows}
    return path, expected
