"""How the benchmarks start the real job: `jobs/caption.py` in a child process, local Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Token auth turns on by itself when ~/.ray/auth_token exists; local runs choose explicitly.
JOB_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def caption_command(manifest: Path, model: str | Path, *options: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "jobs" / "caption.py"),
        str(manifest),
        "--model",
        str(model),
        *options,
    ]
