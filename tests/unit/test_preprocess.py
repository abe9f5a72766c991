"""The CPU stage's hand-off: compact uint8 pixels at model size, failures without pixels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from manifests import schema
from tests.images import jpeg_bytes, png_bytes
from vlworkers.config import PreprocessConfig
from vlworkers.preprocess import preprocess_batch


def test_pixels_leave_as_uint8_at_model_size(tmp_path):
    (tmp_path / "big.jpg").write_bytes(jpeg_bytes((1600, 1200)))
    (tmp_path / "small.png").write_bytes(png_bytes((40, 30)))
    (tmp_path / "pixel.png").write_bytes(png_bytes((1, 1)))
    batch = pa.table(
        {
            "uri": [str(tmp_path / n) for n in ("big.jpg", "small.png", "pixel.png", "nope.jpg")],
            "lot": [1, 2, 3, 4],
        }
    )
    config = PreprocessConfig(target_size=384, default_task="caption")
    out = preprocess_batch(batch, config).to_pylist()

    big, small, pixel, missing = out
    assert (big[schema.PIXELS_HEIGHT], big[schema.PIXELS_WIDTH]) == (288, 384)
    assert len(big[schema.PIXELS]) == 288 * 384 * 3  # one byte per channel: uint8
    image = np.frombuffer(big[schema.PIXELS], np.uint8).reshape(288, 384, 3)
    assert image.mean() > 10
    assert (small[schema.PIXELS_HEIGHT], small[schema.PIXELS_WIDTH]) == (30, 40)  # not upscaled
    assert big["status"] is None and small["status"] is None  # waiting for the model
    assert (pixel["status"], pixel["error_kind"], pixel[schema.PIXELS]) == (
        "skipped",
        "too_small",
        None,
    )
    assert (missing["status"], missing["error_kind"], missing[schema.PIXELS]) == (
        "failed",
        "not_found",
        None,
    )
    assert [row["lot"] for row in out] == [1, 2, 3, 4]  # carried columns ride along
    assert big[schema.MAX_NEW_TOKENS] == 96 and big["task"] == "caption"
