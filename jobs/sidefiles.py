"""Small text side files in the output folder, rewritten whole while others may read them.

A reader sees the old content or the new, never half: local files are written beside
and renamed over (`os.replace` is atomic); on object stores a single PUT is atomic
already, and a rename would be a copy.
"""

from __future__ import annotations

import os

from fsspec.implementations.local import LocalFileSystem

from vlworkers import storage
from vlworkers.atomic_write import temp_path


def write_text(uri: str, text: str) -> None:
    fs, path = storage.resolve(uri)
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = temp_path(path)  # a `_tmp.` name: ignored by readers, swept by the next run
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    else:
        fs.pipe_file(path, text.encode("utf-8"))


def read_text(uri: str) -> str | None:
    """The file's text, or None when there is no such file."""
    fs, path = storage.resolve(uri)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return bytes(data).decode("utf-8")
