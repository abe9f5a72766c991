"""`_progress.json`: what a running (or ended) job last said about itself.

The driver rewrites it at every progress interval; `jobs/status.py` reads it, from any
machine that can read the output folder. No Ray here: reading it must stay cheap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from jobs import sidefiles
from vlworkers import storage

PROGRESS_FILE = "_progress.json"
_TOP_ERRORS = 3


class State(str, Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


STALE = "stale"


@dataclass(frozen=True)
class Rates:
    """Per second, this run only; `_recent` over the last few intervals."""

    rows_per_s: float = 0.0
    rows_per_s_recent: float = 0.0
    images_per_s: float = 0.0
    images_per_s_recent: float = 0.0
    output_tokens_per_s: float = 0.0
    output_tokens_per_s_recent: float = 0.0


@dataclass(frozen=True)
class Progress:
    """Counts describe the output as it will be: rows from earlier runs included.

    While running they are what the model actors reported; once finished, they are
    counted from the output files themselves.
    """

    state: str
    started_at: str  # ISO 8601, UTC
    updated_at: str
    interval_s: float
    output: str  # redacted
    model: str
    rows_total: int
    rows_done: int
    rows_done_before: int  # already in the output when this run started (resume)
    by_status: dict[str, int] = field(default_factory=dict)
    by_error_kind: dict[str, int] = field(default_factory=dict)
    images: int = 0
    output_tokens: int = 0
    rates: Rates = field(default_factory=Rates)
    eta_s: float | None = None
    elapsed_s: float = 0.0
    replicas: int = 0  # model actors that started in this run
    driver: dict[str, Any] = field(default_factory=dict)  # pid and host, to find its logs
    error: str | None = None
    summary: str | None = None
    failed_manifest: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Progress:
        data = json.loads(text)
        # Newer writers may add keys; an older reader keeps working.
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        rate_keys = {f.name for f in fields(Rates)}
        values["rates"] = Rates(
            **{k: v for k, v in data.get("rates", {}).items() if k in rate_keys}
        )
        return cls(**values)


def progress_uri(output_uri: str) -> str:
    return storage.join(output_uri, PROGRESS_FILE)


def write_progress(output_uri: str, progress: Progress) -> None:
    sidefiles.write_text(progress_uri(output_uri), progress.to_json())


def read_progress(output_uri: str) -> Progress | None:
    text = sidefiles.read_text(progress_uri(output_uri))
    return None if text is None else Progress.from_json(text)


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def stale_after_s(interval_s: float) -> float:
    """Several missed intervals, with room for a slow object store or a busy driver."""
    return max(3 * interval_s, interval_s + 30)


def age_s(progress: Progress, now: float) -> float:
    return max(0.0, now - parse_iso(progress.updated_at))


def display_state(progress: Progress, now: float) -> str:
    if progress.state == State.RUNNING.value and age_s(progress, now) > stale_after_s(
        progress.interval_s
    ):
        return STALE
    return progress.state


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def top_errors(progress: Progress, count: int = _TOP_ERRORS) -> str:
    kinds = sorted(progress.by_error_kind.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{kind} {n:,}" for kind, n in kinds[:count])
    more = len(kinds) - count
    return shown + (f", +{more} more kinds" if more > 0 else "") if shown else "none"


def rows_part(progress: Progress) -> str:
    share = progress.rows_done / progress.rows_total if progress.rows_total else 1.0
    text = f"{progress.rows_done:,}/{progress.rows_total:,} rows ({share:.1%})"
    if progress.rows_done_before:
        text += f" incl. {progress.rows_done_before:,} from earlier runs"
    return text


def status_part(progress: Progress) -> str:
    return ", ".join(
        f"{status} {progress.by_status.get(status, 0):,}" for status in ("ok", "failed", "skipped")
    )


def progress_line(progress: Progress) -> str:
    """The one line the driver logs at every interval (`ray job logs --follow` shows it)."""
    rates = progress.rates
    if progress.state == State.RUNNING.value:
        speed = (
            f"{rates.images_per_s_recent:.2f} images/s now, {rates.images_per_s:.2f} overall | "
            f"{rates.output_tokens_per_s_recent:.1f} tokens/s | ETA {duration(progress.eta_s)}"
        )
    else:
        speed = (
            f"{rates.images_per_s:.2f} images/s | {rates.output_tokens_per_s:.1f} tokens/s | "
            f"{duration(progress.elapsed_s)}"
        )
    return (
        f"{progress.state}: {rows_part(progress)} | {status_part(progress)} | {speed} | "
        f"errors: {top_errors(progress)}"
    )
