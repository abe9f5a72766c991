"""Shared fixtures: tiny checkpoints built once per session, manifests, Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Ray 2.60 turns token auth on when ~/.ray/auth_token exists; the tests choose explicitly.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from vlworkers.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-vl"), hybrid=False)


@pytest.fixture(scope="session")
def tiny_hybrid_model(tmp_path_factory) -> Path:
    from vlworkers.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-vl-hybrid"), hybrid=True)
