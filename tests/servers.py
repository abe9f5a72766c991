"""Real servers on loopback for tests: an S3 API (moto server mode) and a plain HTTP server."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def http_server(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
