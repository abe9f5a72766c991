"""Fetch image bytes from any URI: byte cap, deadline, retries, and typed failures.

http(s) goes through requests (streamed, so an oversized file is cut off while it
arrives; redirects followed by hand so every hop passes the address guard); everything
else through fsspec (local, s3fs, gcsfs, ...).

Retries are ours rather than botocore's or urllib3's: the output records the tries made
for every row, --retry-failed needs one transient/permanent split across every storage
backend, and a row needs one deadline however many layers retry below it. So the image
filesystems are opened with their own retries turned down to a single try.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
import urllib3

from manifests.schema import ErrorKind
from vlworkers import storage
from vlworkers.netguard import BlockedAddressError, check_public
from vlworkers.retry import Attempts, RetryPolicy, call_with_retries

_MAX_REDIRECTS = 5
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 30.0  # per request: connect, each read, and the whole body
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allow_private_addresses: bool = False


class FetchError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def transient(self) -> bool:
        return self.kind in (ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE)


def fetch_bytes(
    uri: str,
    limits: FetchLimits,
    attempts: Attempts,
    session: requests.Session | None = None,
) -> bytes:
    """The file's bytes, or FetchError. `attempts` counts the tries made."""
    if not uri or not uri.strip():
        raise FetchError(ErrorKind.INVALID_URI, "the row has no uri")
    if storage.scheme_of(uri) in ("http", "https"):
        http = session or requests.Session()
        operation = lambda: _fetch_http(uri, limits, http)  # noqa: E731
    else:
        operation = lambda: _fetch_fsspec(uri, limits)  # noqa: E731
    try:
        return call_with_retries(
            operation,
            limits.retry,
            lambda exc: isinstance(exc, FetchError) and exc.transient,
            attempts,
        )
    except FetchError as exc:
        if exc.transient and attempts.count > 1:
            exc.message = f"{exc.message} (gave up after {attempts.count} attempts)"
        raise


def _fetch_http(uri: str, limits: FetchLimits, session: requests.Session) -> bytes:
    deadline = time.monotonic() + limits.timeout_s
    url = uri
    for _ in range(_MAX_REDIRECTS + 1):
        if not limits.allow_private_addresses:
            _guard(url)
        try:
            with session.get(
                url, stream=True, timeout=limits.timeout_s, allow_redirects=False
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["Location"])
                    continue
                _check_status(response.status_code, uri)
                return _read_body(response, uri, limits, deadline)
        except FetchError:
            raise
        except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
            raise FetchError(
                ErrorKind.TIMEOUT, f"timed out fetching {storage.redact(uri)}"
            ) from exc
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,  # raised by the raw body reads below
        ) as exc:
            raise FetchError(
                ErrorKind.UNAVAILABLE, f"connection failed for {storage.redact(uri)}"
            ) from exc
        except requests.RequestException as exc:
            raise FetchError(
                ErrorKind.FETCH_ERROR, f"cannot fetch {storage.redact(uri)}: {type(exc).__name__}"
            ) from exc
    raise FetchError(ErrorKind.FETCH_ERROR, f"too many redirects for {storage.redact(uri)}")


def _guard(url: str) -> None:
    try:
        check_public(url)
    except BlockedAddressError as exc:
        raise FetchError(ErrorKind.BLOCKED_ADDRESS, str(exc)) from exc
    except OSError as exc:  # DNS failure: may pass, the name may be briefly unresolvable
        raise FetchError(ErrorKind.UNAVAILABLE, storage.redact(str(exc))) from exc


def _check_status(status: int, uri: str) -> None:
    where = storage.redact(uri)
    if status in (404, 410):
        raise FetchError(ErrorKind.NOT_FOUND, f"HTTP {status} for {where}")
    if status in (401, 403):
        raise FetchError(ErrorKind.PERMISSION_DENIED, f"HTTP {status} for {where}")
    if status in (408, 425, 429) or status >= 500:
        raise FetchError(ErrorKind.UNAVAILABLE, f"HTTP {status} for {where}")
    if status >= 400:
        raise FetchError(ErrorKind.FETCH_ERROR, f"HTTP {status} for {where}")


def _read_body(
    response: requests.Response, uri: str, limits: FetchLimits, deadline: float
) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(uri, limits)
    chunks: list[bytes] = []
    received = 0
    while True:
        # read1 returns whatever one socket read brings, so the deadline is checked even
        # when a server drips a byte at a time (each read alone beats the read timeout).
        chunk = response.raw.read1(_CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        received += len(chunk)
        if received > limits.max_bytes:
            raise _too_large(uri, limits)
        if time.monotonic() > deadline:
            raise FetchError(ErrorKind.TIMEOUT, f"timed out reading {storage.redact(uri)}")
        chunks.append(chunk)


def _too_large(uri: str, limits: FetchLimits) -> FetchError:
    return FetchError(
        ErrorKind.TOO_LARGE,
        f"{storage.redact(uri)} is larger than the {limits.max_bytes} byte limit",
    )


def _fetch_fsspec(uri: str, limits: FetchLimits) -> bytes:
    where = storage.redact(uri)
    try:
        fs, path = storage.resolve_for_fetch(uri, limits.timeout_s)
    except (ValueError, ImportError) as exc:
        raise FetchError(ErrorKind.INVALID_URI, f"cannot open {where}: {exc}") from exc
    try:
        with fs.open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError(ErrorKind.NOT_FOUND, f"not found: {where}") from exc
    except PermissionError as exc:
        raise FetchError(ErrorKind.PERMISSION_DENIED, f"access denied: {where}") from exc
    except IsADirectoryError as exc:
        raise FetchError(ErrorKind.NOT_FOUND, f"{where} is a folder, not a file") from exc
    except TimeoutError as exc:
        raise FetchError(ErrorKind.TIMEOUT, f"timed out reading {where}") from exc
    except Exception as exc:  # transport errors of any fsspec backend: worth another try
        kind = (
            ErrorKind.TIMEOUT if "timeout" in type(exc).__name__.lower() else ErrorKind.UNAVAILABLE
        )
        raise FetchError(kind, f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
    if len(data) > limits.max_bytes:
        raise _too_large(uri, limits)
    return data
