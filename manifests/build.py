"""Build a manifest from a folder or prefix of images: `python -m manifests.build SRC OUT.parquet`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from vlworkers import storage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")


def list_images(source_uri: str) -> list[str]:
    fs, path = storage.resolve(source_uri)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return sorted(
        prefix + found for found in fs.find(path) if found.lower().endswith(IMAGE_SUFFIXES)
    )


def write_manifest(uris: Iterable[str], out_uri: str, **extra_columns: list) -> int:
    uris = list(uris)
    table = pa.table({"uri": uris, **extra_columns})
    fs, path = storage.resolve(out_uri)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle)
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="Folder or prefix holding images (local, s3://, ...).")
    parser.add_argument("output", help="Manifest to write (Parquet).")
    args = parser.parse_args(argv)
    uris = list_images(args.source)
    if not uris:
        print(f"error: no images under {storage.redact(args.source)}", file=sys.stderr)
        return 2
    count = write_manifest(uris, args.output)
    print(f"wrote {count} rows to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
