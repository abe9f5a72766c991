from __future__ import annotations

import pytest

from vlworkers.tasks import TASKS, UnknownTaskError, resolve_task


def test_job_default_task_applies_to_rows_without_one():
    resolved = resolve_task(None, None, "alt_text", None, None)
    assert resolved.task == "alt_text"
    assert resolved.prompt == TASKS["alt_text"].instruction
    assert resolved.max_new_tokens == TASKS["alt_text"].max_new_tokens


def test_each_task_has_its_own_prompt_and_limit():
    prompts = {name: spec.instruction for name, spec in TASKS.items() if name != "custom"}
    assert len(set(prompts.values())) == len(prompts)
    assert (
        TASKS["alt_text"].max_new_tokens
        < TASKS["caption"].max_new_tokens
        < TASKS["ocr"].max_new_tokens
    )


def test_row_task_and_prompt_override_the_job():
    resolved = resolve_task("ocr", None, "caption", "job prompt", None)
    assert resolved.task == "ocr"
    # The job's prompt belongs to the job's task, not to rows naming another task.
    assert resolved.prompt == TASKS["ocr"].instruction
    assert resolve_task("ocr", "Read the sign.", "caption", None, None).prompt == "Read the sign."


def test_job_prompt_replaces_instruction_for_default_rows():
    resolved = resolve_task(None, None, "custom", "Count the cats.", None)
    assert (resolved.task, resolved.prompt) == ("custom", "Count the cats.")


def test_max_new_tokens_override():
    assert resolve_task("ocr", None, "caption", None, 12).max_new_tokens == 12


@pytest.mark.parametrize(("task", "prompt"), [("poem", None), ("custom", None), ("custom", "  ")])
def test_invalid_tasks(task, prompt):
    with pytest.raises(UnknownTaskError):
        resolve_task(task, prompt, "caption", None, None)
