from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.ids import derive_id
from manifests.validate import ManifestError, validate_manifest


def write(tmp_path, table: pa.Table, name: str = "m.parquet") -> str:
    path = tmp_path / name
    pq.write_table(table, path)
    return str(path)


def test_valid_manifest_reports_rows_and_schema(tmp_path):
    uri = write(tmp_path, pa.table({"uri": ["a.jpg", "b.jpg"], "source": ["x", "y"]}))
    info = validate_manifest(uri)
    assert info.num_rows == 2
    assert not info.has_id
    assert info.schema.names == ["uri", "source"]


def test_folder_of_parquet_files_is_one_manifest(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder, pa.table({"uri": ["a.jpg"], "id": ["1"]}), "p0.parquet")
    write(folder, pa.table({"uri": ["b.jpg"], "id": ["2"]}), "p1.parquet")
    assert validate_manifest(str(folder)).num_rows == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"path": ["a.jpg"]}), "no 'uri' column"),
        (pa.table({"uri": pa.array([], pa.string())}), "has no rows"),
        (pa.table({"uri": ["a", "b"], "id": ["1", "1"]}), "duplicated 'id'"),
        (pa.table({"uri": ["a", "a"]}), "add an 'id' column"),
        (pa.table({"uri": ["a"], "status": ["x"]}), "clash with output columns"),
        (pa.table({"uri": [1, 2]}), "must hold strings"),
        (pa.table({"uri": ["a", "b"], "id": ["1", None]}), "empty 'id'"),
    ],
)
def test_bad_manifests_get_one_clear_message(tmp_path, table, message):
    with pytest.raises(ManifestError, match=message):
        validate_manifest(write(tmp_path, table))


def test_not_parquet(tmp_path):
    path = tmp_path / "m.parquet"
    path.write_text("uri\na.jpg\n")
    with pytest.raises(ManifestError, match="not a readable Parquet"):
        validate_manifest(str(path))


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        validate_manifest(str(tmp_path / "nope.parquet"))


def test_derived_ids_are_stable_and_distinct():
    assert derive_id("s3://b/a.jpg") == derive_id("s3://b/a.jpg")
    assert derive_id("s3://b/a.jpg") != derive_id("s3://b/b.jpg")
