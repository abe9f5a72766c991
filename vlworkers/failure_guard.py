"""Stop a misconfigured job early instead of failing a million rows one by one.

When most of the first rows a model actor sees have failed (wrong bucket, missing
credentials, a firewall), the cause is the setup, not the data: raising here fails the
whole dataset with one clear message.
"""

from __future__ import annotations

from collections import Counter

from manifests.schema import Status


class TooManyFailuresError(RuntimeError):
    pass


class FailureGuard:
    def __init__(self, max_failure_rate: float, check_rows: int) -> None:
        self.max_failure_rate = max_failure_rate
        self.check_rows = check_rows
        self.seen = 0
        self.failed = 0
        self.kinds: Counter[str] = Counter()

    def observe(self, statuses: list[str | None], error_kinds: list[str | None]) -> None:
        if self.seen >= self.check_rows or self.max_failure_rate >= 1.0:
            return  # only the first rows judge the setup; later failures are data
        for status, kind in zip(statuses, error_kinds, strict=True):
            self.seen += 1
            if status == Status.FAILED.value:
                self.failed += 1
                self.kinds[kind or "unknown"] += 1
        if self.seen >= self.check_rows and self.failed / self.seen > self.max_failure_rate:
            common = ", ".join(f"{k} x{n}" for k, n in self.kinds.most_common(3))
            raise TooManyFailuresError(
                f"{self.failed} of the first {self.seen} rows failed ({common}): this looks like "
                "a setup problem (bucket, credentials, network), so the job stopped. Fix it and "
                "rerun, or raise --max-failure-rate."
            )
