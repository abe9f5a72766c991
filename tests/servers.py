"""Real servers on loopback for tests: an S3 API (moto server mode) and a plain HTTP server."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler


@contextmanager
def s3_server() -> Iterator[str]:
    """An S3 API over HTTP on 127.0.0.1; s3fs finds it through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    # Dummy credentials for the local mock server only.
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@contextmanager
def _serving(handler: Callable[..., BaseRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True  # a stalled test client never blocks the shutdown
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def http_server(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1; yields the base URL."""
    with _serving(functools.partial(_QuietHandler, directory=str(root))) as base_url:
        yield base_url


class _ImageSiteHandler(SimpleHTTPRequestHandler):
    """Routes with the behaviours of real web archives' hosts."""

    failures: dict[str, int]  # path -> failures left, shared by the server
    lock: threading.Lock
    payload: bytes

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if parts[0] == "flaky":  # /flaky/<status>/<n>/<name>: fail n times, then serve
            with self.lock:
                left = self.failures.setdefault(path, int(parts[2]))
                self.failures[path] = left - 1
            if left > 0:
                self.send_error(int(parts[1]))
                return
            self._send(self.payload)
        elif parts[0] == "status":
            self.send_error(int(parts[1]))
        elif parts[0] == "redirect":  # /redirect/<target path...>
            self.send_response(302)
            self.send_header("Location", "/" + "/".join(parts[1:]))
            self.end_headers()
        elif parts[0] == "slow":  # drips a byte a second: every read succeeds, the body never ends
            self.send_response(200)
            self.end_headers()
            for _ in range(60):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
        elif parts[0] == "endless":  # chunked, no Content-Length: only a streaming cap stops it
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\xff" * 65536
            try:
                for _ in range(10_000):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                return
        elif parts[0] == "html":
            self._send(b"<!DOCTYPE html><html><body>Error 500</body></html>", "text/html")
        else:
            self._send(self.payload)

    def _send(self, body: bytes, content_type: str = "image/jpeg") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def image_site(payload: bytes) -> Iterator[str]:
    """An HTTP server on loopback with flaky, redirecting, slow and endless routes."""
    handler = type(
        "Handler",
        (_ImageSiteHandler,),
        {"failures": {}, "lock": threading.Lock(), "payload": payload},
    )
    with _serving(handler) as base_url:
        yield base_url


class FaultStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.faults: dict[str, int] = {"slowdown_503": 0, "internal_500": 0, "dropped": 0}


_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@contextmanager
def fault_proxy(upstream: str, rate: float, seed: int = 0) -> Iterator[tuple[str, FaultStats]]:
    """An HTTP proxy on loopback in front of `upstream` that fails `rate` of requests:
    S3 503 SlowDown, 500 InternalError, or a connection dropped without a response."""
    import http.client
    import random
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import urlsplit

    target = urlsplit(upstream)
    stats = FaultStats()
    rng = random.Random(seed)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with stats.lock:
                stats.requests += 1
                draw = rng.random()
            if draw < rate / 3:
                self._fault("slowdown_503", 503, _SLOWDOWN)
            elif draw < 2 * rate / 3:
                self._fault("internal_500", 500, _INTERNAL)
            elif draw < rate:
                with stats.lock:
                    stats.faults["dropped"] += 1
                self.close_connection = True  # hang up with no response at all
            else:
                self._forward(body)

        def _fault(self, name: str, status: int, body: bytes) -> None:
            with stats.lock:
                stats.faults[name] += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, body: bytes | None) -> None:
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            self.send_response(response.status)
            skipped = {"transfer-encoding", "connection"}
            if self.command != "HEAD":  # HEAD keeps the object's own length
                skipped.add("content-length")
                self.send_header("Content-Length", str(len(payload)))
            for key, value in response.getheaders():
                if key.lower() not in skipped:
                    self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            connection.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    with _serving(Handler) as base_url:
        yield base_url, stats
