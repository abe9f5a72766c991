"""Fetch image bytes from any URI with a byte cap and a timeout.

http(s) goes through requests (streamed, so an oversized file is cut off while it
arrives); everything else through fsspec (local, s3fs, gcsfs, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from manifests.schema import ErrorKind
from vlworkers import storage


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 30.0


class FetchError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def fetch_bytes(uri: str, limits: FetchLimits, session: requests.Session | None = None) -> bytes:
    if not uri or not uri.strip():
        raise FetchError(ErrorKind.INVALID_URI, "the row has no uri")
    scheme = storage.scheme_of(uri)
    if scheme in ("http", "https"):
        return _fetch_http(uri, limits, session or requests.Session())
    return _fetch_fsspec(uri, limits)


def _too_large(uri: str, limits: FetchLimits) -> FetchError:
    return FetchError(
        ErrorKind.TOO_LARGE,
        f"{storage.redact(uri)} is larger than the {limits.max_bytes} byte limit",
    )


def _fetch_http(uri: str, limits: FetchLimits, session: requests.Session) -> bytes:
    try:
        with session.get(uri, stream=True, timeout=limits.timeout_s) as response:
            if response.status_code == 404 or response.status_code == 410:
                raise FetchError(
                    ErrorKind.NOT_FOUND, f"HTTP {response.status_code} for {storage.redact(uri)}"
                )
            if response.status_code in (401, 403):
                raise FetchError(
                    ErrorKind.PERMISSION_DENIED,
                    f"HTTP {response.status_code} for {storage.redact(uri)}",
                )
            if response.status_code >= 400:
                raise FetchError(
                    ErrorKind.FETCH_ERROR, f"HTTP {response.status_code} for {storage.redact(uri)}"
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limits.max_bytes:
                raise _too_large(uri, limits)
            chunks = []
            received = 0
            for chunk in response.iter_content(chunk_size=256 * 1024):
                received += len(chunk)
                if received > limits.max_bytes:
                    raise _too_large(uri, limits)
                chunks.append(chunk)
            return b"".join(chunks)
    except FetchError:
        raise
    except requests.RequestException as exc:
        raise FetchError(
            ErrorKind.FETCH_ERROR, f"cannot fetch {storage.redact(uri)}: {type(exc).__name__}"
        ) from exc


def _fetch_fsspec(uri: str, limits: FetchLimits) -> bytes:
    try:
        fs, path = storage.resolve(uri)
        with fs.open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError(ErrorKind.NOT_FOUND, f"not found: {storage.redact(uri)}") from exc
    except PermissionError as exc:
        raise FetchError(
            ErrorKind.PERMISSION_DENIED, f"access denied: {storage.redact(uri)}"
        ) from exc
    except IsADirectoryError as exc:
        raise FetchError(
            ErrorKind.NOT_FOUND, f"{storage.redact(uri)} is a folder, not a file"
        ) from exc
    except Exception as exc:  # transport errors from any fsspec backend
        raise FetchError(
            ErrorKind.FETCH_ERROR, f"cannot read {storage.redact(uri)}: {type(exc).__name__}: {exc}"
        ) from exc
    if len(data) > limits.max_bytes:
        raise _too_large(uri, limits)
    return data
