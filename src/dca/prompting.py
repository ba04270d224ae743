"""How a problem is put to the assistant, and the answer format it is asked for.

The answer format: the completion reasons step by step and ends with a last line of the form

    Answer: <number>

(other domains ask for their own value after ``Answer:``: a label, a short text; see
`dca.domains`).

`dca.problems.answer` also accepts the common forms small models write instead ("The answer
is 8.", "\\boxed{8}", "#### 8") and counts completions with none of them as format failures.
"""

from __future__ import annotations

from .records import Problem

ANSWER_PREFIX = "Answer:"

SYSTEM_PROMPT = (
    "Solve the math word problem step by step, using only the facts the question needs. "
    f"End with a last line of the form '{ANSWER_PREFIX} <number>'."
)


def user_message(problem: Problem) -> str:
    return problem.question


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    """The conversational prompt (TRL's conversational dataset format), with the system
    prompt of the problem's domain (`dca.domains`; `SYSTEM_PROMPT` for arithmetic)."""
    from .domains import system_prompt

    return [
        {"role": "system", "content": system_prompt(problem)},
        {"role": "user", "content": user_message(problem)},
    ]
