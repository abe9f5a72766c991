"""The task registry: each task's instruction and generation limit, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    max_new_tokens: int
    description: str


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="caption",
            instruction="Describe this image in one or two sentences.",
            max_new_tokens=96,
            description="one or two descriptive sentences",
        ),
        TaskSpec(
            name="alt_text",
            instruction=(
                "Write alt text for this image for a screen reader user: one short, "
                "concrete sentence. Do not begin with 'image of' or 'picture of'."
            ),
            max_new_tokens=48,
            description="short, screen-reader friendly alt text",
        ),
        TaskSpec(
            name="ocr",
            instruction=(
                "Transcribe all the text in this image exactly as written, keeping the "
                "reading order and line breaks. Output only the text."
            ),
            max_new_tokens=1024,
            description="verbatim transcript, reading order kept",
        ),
        TaskSpec(
            name="custom",
            instruction="",
            max_new_tokens=256,
            description="your own instruction, given with --prompt or a 'prompt' column",
        ),
    )
}
TASK_NAMES = tuple(TASKS)


class UnknownTaskError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedTask:
    task: str
    prompt: str
    max_new_tokens: int


def resolve_task(
    row_task: str | None,
    row_prompt: str | None,
    default_task: str,
    default_prompt: str | None,
    max_new_tokens: int | None,
) -> ResolvedTask:
    """Per-row `task`/`prompt` override the job's; a prompt replaces the instruction.

    The job's `--prompt` applies only to rows that do not name their own task.
    """
    task = (row_task or "").strip() or default_task
    spec = TASKS.get(task)
    if spec is None:
        raise UnknownTaskError(f"unknown task {task!r}; expected one of {', '.join(TASK_NAMES)}")
    prompt = (row_prompt or "").strip()
    if not prompt and not (row_task or "").strip():
        prompt = (default_prompt or "").strip()
    prompt = prompt or spec.instruction
    if not prompt:
        raise UnknownTaskError("task 'custom' needs a prompt (--prompt or a 'prompt' column)")
    # The job's --max-new-tokens, when given, replaces every task's own limit.
    return ResolvedTask(
        task=task, prompt=prompt, max_new_tokens=max_new_tokens or spec.max_new_tokens
    )
