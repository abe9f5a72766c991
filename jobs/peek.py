"""Print a few rows of a job's output: `python -m jobs.peek OUTPUT_URI [-n 5]`."""

from __future__ import annotations

import argparse
import sys
import textwrap

import pyarrow.dataset as pads

from vlworkers import storage

_SHOWN = ("id", "task", "status", "error_kind", "text", "error")


def peek(output_uri: str, rows: int) -> str:
    fs, path = storage.resolve(output_uri)
    dataset = pads.dataset(path, filesystem=storage.arrow_filesystem(fs), format="parquet")
    table = dataset.head(rows, columns=list(_SHOWN))
    lines = []
    for row in table.to_pylist():
        detail = row["text"] if row["status"] == "ok" else f"[{row['error_kind']}] {row['error']}"
        detail = textwrap.shorten(detail or "", width=90, placeholder=" …")
        lines.append(f"{row['id']:<12} {row['task'] or '-':<9} {row['status']:<8} {detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", help="The job's output folder (local or s3://...).")
    parser.add_argument("-n", "--rows", type=int, default=10, help="How many rows to show.")
    args = parser.parse_args(argv)
    print(peek(args.output, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
