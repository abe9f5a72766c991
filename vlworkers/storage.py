"""Filesystems for URIs: local paths, s3:// (s3fs), gs://, http(s):// and any fsspec URL.

s3fs goes through botocore, which honours AWS_ENDPOINT_URL for S3-compatible stores.
Ray Data gets the same fsspec filesystem wrapped for pyarrow, because pyarrow's own
S3FileSystem ignores AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import posixpath
import re

import fsspec
import pyarrow.fs as pafs
from fsspec.core import url_to_fs

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else "file"


def resolve(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for `uri` and the path within it."""
    fs, path = url_to_fs(uri)
    return fs, path


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def join(base_uri: str, *parts: str) -> str:
    return posixpath.join(base_uri.rstrip("/"), *parts)


def default_output_uri(manifest_uri: str) -> str:
    """`…/manifest.parquet` → `…/manifest.captions` (a folder beside the manifest)."""
    trimmed = manifest_uri.rstrip("/")
    stem = trimmed[: -len(".parquet")] if trimmed.endswith(".parquet") else trimmed
    return stem + ".captions"


def redact(uri: str) -> str:
    """Drop userinfo and query strings (signed URLs carry credentials there)."""
    uri = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", uri)
    return uri.split("?", 1)[0]
