"""Hostile input, dying workers, misconfiguration and --retry-failed, on local Ray."""

from __future__ import annotations

import io
import logging
import os
import signal
import struct
import threading
import time
import zlib

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs.run import EXIT_FAILED, EXIT_OK, main
from tests.images import jpeg_bytes, png_bytes
from tests.servers import image_site

pytestmark = pytest.mark.usefixtures("local_ray")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def bomb_png() -> bytes:
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", 200_000, 200_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


HOSTILE: dict[str, tuple[bytes | None, str, str | None]] = {
    # name: (bytes, expected status, expected error_kind)
    "zero.jpg": (b"", "failed", "empty_file"),
    "truncated.jpg": (jpeg_bytes((400, 300))[:500], "failed", "decode_error"),
    "corrupt.png": (png_bytes()[:60] + b"\x00" * 64, "failed", "decode_error"),
    "random.bin": (os.urandom(3000), "failed", "decode_error"),
    "page.jpg": (b"<!DOCTYPE html><html><body>Not Found</body></html>", "failed", "decode_error"),
    "vector.svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
        "failed",
        "unsupported_format",
    ),
    "bomb.png": (bomb_png(), "failed", "too_large"),
    "pixel.gif": (encode(Image.new("RGB", (1, 1)), "GIF"), "skipped", "too_small"),
    "spacer.png": (encode(Image.new("RGBA", (300, 2)), "PNG"), "skipped", "too_small"),
    "banner.png": (encode(Image.new("RGB", (10000, 10), "navy"), "PNG"), "ok", None),
    "cmyk.jpg": (encode(Image.new("CMYK", (64, 64), (0, 50, 100, 0)), "JPEG"), "ok", None),
    "deep.png": (encode(Image.new("I;16", (32, 32)), "PNG"), "ok", None),
    "anim.gif": (animated_gif(), "ok", None),
    "naïve name ü.jpg": (jpeg_bytes(), "ok", None),
}


def test_hostile_and_odd_images_each_get_a_final_row(tmp_path, tiny_model):
    images = tmp_path / "imgs"
    images.mkdir()
    for name, (data, _, _) in HOSTILE.items():
        (images / name).write_bytes(data or b"")
    uris = [*(str(images / name) for name in HOSTILE), None, ""]
    ids = [*HOSTILE, "null-uri", "empty-uri"]
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ids, "uri": pa.array(uris, pa.string())}), manifest)

    assert main([str(manifest), "--model", str(tiny_model), "--max-new-tokens", "3"]) == EXIT_OK
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "m.captions").to_pylist()}
    assert len(rows) == len(ids)
    for name, (_, status, kind) in HOSTILE.items():
        assert (rows[name]["status"], rows[name]["error_kind"]) == (status, kind), rows[name]
    for row_id in ("null-uri", "empty-uri"):
        assert (rows[row_id]["status"], rows[row_id]["error_kind"]) == ("failed", "invalid_uri")
    assert (rows["banner.png"]["width"], rows["banner.png"]["height"]) == (10000, 10)


def test_mostly_failing_start_stops_the_job_with_one_message(tmp_path, tiny_model, caplog):
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uri": [f"s3-typo/{i}.jpg" for i in range(40)]}), manifest)
    with caplog.at_level(logging.ERROR, logger="caption"):
        code = main([str(manifest), "--model", str(tiny_model), "--failure-check-rows", "10"])
    assert code == EXIT_FAILED
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "of the first" in message and "setup problem" in message
    assert "not_found" in message


def test_retry_failed_redoes_transient_failures_only(tmp_path, tiny_model):
    with image_site(jpeg_bytes()) as site:
        manifest = tmp_path / "m.parquet"
        pq.write_table(
            pa.table(
                {
                    "id": ["flaky", "gone", "fine"],
                    "uri": [f"{site}/flaky/503/2/a.jpg", f"{site}/status/404", f"{site}/ok.jpg"],
                }
            ),
            manifest,
        )
        base = [
            str(manifest),
            "--model",
            str(tiny_model),
            "--max-new-tokens",
            "3",
            "--allow-private-addresses",
            "--retry-base-delay",
            "0.01",
            "--max-failure-rate",
            "1",
        ]
        assert main([*base, "--fetch-attempts", "1"]) == EXIT_OK
        output = tmp_path / "m.captions"
        first = {r["id"]: r for r in pq.read_table(output).to_pylist()}
        assert first["flaky"]["error_kind"] == "unavailable"
        assert first["gone"]["error_kind"] == "not_found"

        assert main([*base, "--fetch-attempts", "1"]) == EXIT_OK  # a plain rerun: all done
        assert pq.read_table(output).num_rows == 3

        assert main([*base, "--fetch-attempts", "5", "--retry-failed"]) == EXIT_OK
        rows = pq.read_table(output).to_pylist()
    assert sorted(r["id"] for r in rows) == ["fine", "flaky", "gone"]  # still one row each
    final = {r["id"]: r for r in rows}
    assert final["flaky"]["status"] == "ok" and final["flaky"]["attempts"] == 2
    assert final["gone"]["error_kind"] == "not_found"  # permanent: not retried
    assert final["fine"]["text"] == first["fine"]["text"]


def _model_actor_pids() -> list[int]:
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "CaptionActor" in cmdline and process.info["pid"] != os.getpid():
            pids.append(process.info["pid"])
    return pids


def test_killed_model_actor_is_restarted_and_no_row_is_lost_or_doubled(tmp_path, tiny_model):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(48):
        (images / f"{i}.jpg").write_bytes(jpeg_bytes((40 + i, 40)))
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uri": [str(images / f"{i}.jpg") for i in range(48)]}), manifest)

    killed: list[int] = []
    output = tmp_path / "m.captions"

    def results_landed() -> bool:
        return output.exists() and any(
            p.suffix == ".parquet" and not p.name.startswith("_") for p in output.iterdir()
        )

    def kill_an_actor_mid_run() -> None:
        # Once the first results are written (4 rows a file, 48 rows): mid-run, whatever
        # the machine's speed.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _model_actor_pids()
            if pids and results_landed():
                try:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                except ProcessLookupError:
                    pass  # gone between the listing and the kill: look again
            time.sleep(0.1)

    killer = threading.Thread(target=kill_an_actor_mid_run, daemon=True)
    killer.start()
    code = main(
        [
            str(manifest),
            "--model",
            str(tiny_model),
            "--max-new-tokens",
            "40",
            "--batch-size",
            "2",
            "--rows-per-file",
            "4",
        ]
    )
    killer.join(timeout=5)
    assert killed, "the model actor was never seen"
    assert code == EXIT_OK
    rows = pq.read_table(output).to_pylist()
    assert len(rows) == 48
    assert len({r["id"] for r in rows}) == 48
    assert {r["status"] for r in rows} == {"ok"}
