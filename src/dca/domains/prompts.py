"""The arithmetic domain's system prompt (other domains declare theirs in `dca.domains.builtin`).

The answer format: the completion reasons step by step and ends with a last line of the form

    Answer: <number>

(other domains ask for their own value after ``Answer:``: a label, a short text). The prefix
itself is `dca.problems.answer.ANSWER_PREFIX`, which also accepts the common forms small
models write instead ("The answer is 8.", "\\boxed{8}", "#### 8") and counts completions with
none of them as format failures. The chat prompt of any problem is `dca.domains.chat_messages`.
"""

from __future__ import annotations

from ..problems.answer import ANSWER_PREFIX

SYSTEM_PROMPT = (
    "Solve the math word problem step by step, using only the facts the question needs. "
    f"End with a last line of the form '{ANSWER_PREFIX} <number>'."
)
