"""How is a job doing? `python jobs/status.py OUTPUT_URI [--json]`

Reads OUTPUT_URI/_progress.json, which the job's driver rewrites at every progress
interval, so it works from any machine that can read the output folder (local or
s3://...), for a job that is running, finished or failed. A job whose file says running
but has stopped updating is shown as stale: its driver may have died.
"""

import sys
from pathlib import Path

# Runnable as a script from the repository root, like jobs/caption.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import time
from dataclasses import asdict

from jobs.progress_file import (
    STALE,
    Progress,
    State,
    age_s,
    display_state,
    duration,
    read_progress,
    rows_part,
    status_part,
    utc_iso,
)
from vlworkers import storage

EXIT_OK = 0
EXIT_NO_PROGRESS = 2


def format_status(progress: Progress, now: float) -> str:
    state = display_state(progress, now)
    age = age_s(progress, now)
    rates = progress.rates
    if state == STALE:
        state = f"stale (driver may have died): says running, but silent for {duration(age)}"
    lines = [
        f"state:    {state}",
        f"output:   {progress.output}",
        f"model:    {progress.model}",
        f"started:  {progress.started_at}   updated: {progress.updated_at} ({duration(age)} ago)",
        f"rows:     {rows_part(progress)}",
        f"status:   {status_part(progress)}",
    ]
    if progress.state == State.RUNNING.value:
        lines.append(
            f"rate:     {rates.images_per_s_recent:.2f} images/s now, "
            f"{rates.images_per_s:.2f} overall; {rates.output_tokens_per_s_recent:.1f} "
            f"output tokens/s; model replicas: {progress.replicas}"
        )
        eta = progress.eta_s
        until = "" if eta is None else f" (about {utc_iso(now + eta)})"
        lines.append(f"ETA:      {duration(eta)}{until}")
    else:
        lines.append(
            f"rate:     {rates.images_per_s:.2f} images/s, {rates.output_tokens_per_s:.1f} "
            f"output tokens/s over {duration(progress.elapsed_s)}"
        )
    kinds = sorted(progress.by_error_kind.items(), key=lambda item: (-item[1], item[0]))
    lines.append("errors:" + ("   none" if not kinds else ""))
    lines += [f"  {kind:<20} {count:>10,}" for kind, count in kinds]
    if progress.error:
        lines.append(f"error:    {progress.error}")
    if progress.summary:
        lines.append(f"summary:  {progress.summary}")
    if progress.failed_manifest:
        lines.append(f"failed rows, as a manifest to rerun: {progress.failed_manifest}")
    if progress.driver:
        lines.append(f"driver:   pid {progress.driver.get('pid')} on {progress.driver.get('host')}")
    return "\n".join(lines)


def as_json(progress: Progress, now: float) -> str:
    data = asdict(progress)
    data.update(display_state=display_state(progress, now), age_s=round(age_s(progress, now), 1))
    return json.dumps(data, indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="status.py", description="Show a caption job's progress from its output folder."
    )
    parser.add_argument("output", help="The job's output folder (local path, s3://, ...).")
    parser.add_argument("--json", action="store_true", help="Print JSON, for machines.")
    args = parser.parse_args(argv)
    try:
        progress = read_progress(args.output)
    except (OSError, ValueError, TypeError) as exc:  # unreachable store, bad URI, corrupt file
        print(
            f"error: cannot read the progress of {storage.redact(args.output)}: {exc}",
            file=sys.stderr,
        )
        return EXIT_NO_PROGRESS
    if progress is None:
        print(
            f"error: no progress file in {storage.redact(args.output)}: not a job's output "
            "folder, or its job has not started yet",
            file=sys.stderr,
        )
        return EXIT_NO_PROGRESS
    now = time.time()
    print(as_json(progress, now) if args.json else format_status(progress, now))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
