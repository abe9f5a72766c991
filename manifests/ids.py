"""Row ids: derived from the uri when the manifest has none, and hashed for set lookups."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def derive_id(uri: str) -> str:
    """A stable id for rows without one: the same uri always gets the same id."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:24]


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """64-bit hashes, so a million ids cost 8 MB (a false match is ~1e-8 at 1M rows)."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
    )
