"""Retries for transient failures: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries, the first included
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**n)]."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**retry_number))
        return rng.uniform(0, ceiling)


class Attempts:
    """Counts the tries made for one row, whatever the outcome."""

    def __init__(self) -> None:
        self.count = 0


def call_with_retries(
    operation: Callable[[], T],
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    attempts: Attempts,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    rng = rng or random.Random()
    while True:
        attempts.count += 1
        try:
            return operation()
        except Exception as exc:
            if not is_transient(exc) or attempts.count >= policy.attempts:
                raise
            sleep(policy.delay(attempts.count - 1, rng))
