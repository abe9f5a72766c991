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


def resolve_for_fetch(uri: str, timeout_s: float) -> tuple[fsspec.AbstractFileSystem, str]:
    """Like `resolve`, with per-request timeouts and the backend's own retries off.

    The fetch stage retries with its own policy (see vlworkers/fetch.py); stacked retry
    loops would multiply the tries and blow through the row's deadline.
    """
    if scheme_of(uri) not in ("s3", "s3a"):
        return url_to_fs(uri)
    fs, path = url_to_fs(
        uri,
        config_kwargs={
            "connect_timeout": timeout_s,
            "read_timeout": timeout_s,
            "retries": {"max_attempts": 1, "mode": "standard"},
        },
    )
    fs.retries = 1  # s3fs's own loop around botocore
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


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@?#]*@")
_SECRET_QUERY = re.compile(
    r"(^|[?&])(x-amz-[^=]*|x-goog-[^=]*|signature|sig|token|access_token|"
    r"credential|key|apikey|api_key|password|se|sp|sv)=",
    re.IGNORECASE,
)


def redact(uri: str) -> str:
    """Drop userinfo, and the query string when it signs or authenticates the URL."""
    uri = _USERINFO.sub(r"\1", uri)
    base, separator, query = uri.partition("?")
    if separator and _SECRET_QUERY.search("?" + query):
        return base + "?<redacted>"
    return uri
