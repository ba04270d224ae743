"""Dialogue reviews: the reviewer may question the assistant about numbered units before it
answers in the review protocol.

Protocol ``dca-review/2`` (`DIALOGUE_PROTOCOL_VERSION`) is ``dca-review/1`` plus questions.
The user message of `dca.review.protocol.build_messages` gains `dialogue_instructions`: the
reviewer may ask up to ``max_questions`` questions, one per message, each a single line

    QUESTION 3: why do you compute 4 x 3 here?

(unit numbers as in the prompt). The assistant's reply comes back as the next user message
(`reply_message`), which says how many questions are left; after the last one it says that
no more may be asked. A message that is not a question is the review's answer and is
validated like any one-shot answer; a question after the limit is such an answer and
fails validation, so the runner's bounded repair turns follow and the review fails as an
invalid answer if the reviewer keeps asking: a dialogue makes at most
``max_questions + 1 + repair_attempts`` reviewer calls. A question that names no valid unit
counts against the limit and is answered with a note that the unit does not exist.

Who answers (`Answerer`): the policy itself through `dca.continuation` (`PolicyAnswerer`:
its prompt, its completion, then the question, continued greedily, first paragraph kept), or
any LLM backend (`LLMAnswerer`, through the one `dca.llm.LLMClient`, so its calls are cached
and counted like any other). Every reviewer call of a dialogue goes through the reviewer's
client with the whole transcript in its messages, so it is cached like any call; a policy
reply is recomputed (greedy, deterministic) when the cache serves the reviewer's turns.

The transcript is stored in `dca.records.Review.dialogue` (`DialogueTurn`: reviewer questions
and assistant replies, each cut to a bounded length); the assistant's tokens are counted in
the review's ``usage`` as ``dialogue_input_tokens`` / ``dialogue_output_tokens`` (the
reviewer's extra turns are in its ordinary token counts), and the number of questions asked in
``metadata["questions"]``. Old records, without a transcript, load as one-shot reviews.

Departure from the seed's sketch: the assistant is never told the outcome or the reviewer's
labels, and its replies are free text that the reviewer may weigh or ignore; no reply changes
the trace or its reward.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..continuation import ContinuationRequest, ContinuationSettings, HFContinuationEngine
from ..errors import UserError
from ..llm import LLMClient
from ..model import load_model
from ..records import DialogueTurn, Problem, Trace, Unit
from ..rollout import render_prompt

__all__ = [
    "DIALOGUE_PROTOCOL_VERSION",
    "Answerer",
    "DialogueSpec",
    "make_answerer",
    "LLMAnswerer",
    "PolicyAnswerer",
    "Question",
    "Reply",
    "converse",
    "dialogue_instructions",
    "parse_question",
    "reply_message",
    "with_dialogue",
]

DIALOGUE_PROTOCOL_VERSION = "dca-review/2"
#: A question or reply is cut to this many characters (model text is untrusted).
MAX_QUESTION_CHARS = 300
MAX_REPLY_CHARS = 600
#: How a question line starts (also in the `hf` reviewer's question grammar, `dca.review.grammar`).
QUESTION_PREFIX = "QUESTION"
NO_MORE_QUESTIONS = "No more questions may be asked: answer now, in the requested format only."

_QUESTION = re.compile(rf"^\s*`*\s*{QUESTION_PREFIX}\s*\[?(\d+)\]?\s*:\s*(.*\S)", re.IGNORECASE | re.DOTALL)


class DialogueSpec(BaseModel):
    """``dialogue:`` of a reviewer in the reviewers YAML (LLM backends: openai, anthropic, hf)."""

    model_config = ConfigDict(extra="forbid")

    max_questions: int = Field(2, ge=0, le=10, description="Questions the reviewer may ask before answering.")
    answerer: str = Field("policy", min_length=1, description="'policy' (the policy model, through dca.continuation) or the name of an LLM reviewer declared in the same file, which answers as the student.")
    model: str = Field("", description="policy answerer outside training (dca review): 'embedded', a checkpoint or a hub id; in training and dca eval the policy itself when empty.")
    max_reply_tokens: int = Field(64, ge=1, le=1024, description="Longest policy reply, in tokens.")


def make_answerer(spec: DialogueSpec, context: Any, declared: dict[str, Any] | None = None) -> "Answerer":
    """The answerer a dialogue spec names: the policy (`context.engine`, or ``spec.model``
    loaded) or a declared LLM reviewer's model behind the one LLM client (sharing the cache)."""
    if spec.answerer == "policy":
        engine, render = getattr(context, "engine", None), getattr(context, "render_prompt", None)
        if spec.model or engine is None:
            if not spec.model:
                raise UserError("dialogue answerer 'policy' needs dialogue.model here (no policy model is loaded)")

            model, tokenizer = load_model(spec.model)
            engine = HFContinuationEngine(model, tokenizer, name=spec.model)
            render = lambda problem: render_prompt(tokenizer, problem)  # noqa: E731
        return PolicyAnswerer(engine, render_prompt=render, max_reply_tokens=spec.max_reply_tokens)
    other = (declared or {}).get(spec.answerer)
    if other is None:
        raise UserError(f"dialogue answerer {spec.answerer!r} is neither 'policy' nor a reviewer declared in the same file")
    if not other.is_llm:
        raise UserError(f"dialogue answerer {spec.answerer!r} must be an LLM reviewer (openai, anthropic, hf)")

    client = LLMClient.from_spec(other, cache=getattr(context, "cache", None), backend=getattr(context, "backends", {}).get(other.name))
    return LLMAnswerer(client, name=other.name)


@dataclass(kw_only=True)
class Question:
    """A reviewer message that asks about a unit."""

    unit: int | None
    """None when the named unit does not exist."""
    text: str


@dataclass(kw_only=True)
class Reply:
    """The assistant's reply to one question, with what it cost."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


def dialogue_instructions(max_questions: int) -> str:
    """The lines added to the review request in dialogue mode."""
    return (
        f"Before answering you may ask the student up to {max_questions} question(s) about specific units, "
        f"one per message, each as a single line:\n{QUESTION_PREFIX} <unit number>: <your question>\n"
        "You will get the student's reply. Ask only when a unit's purpose is unclear; "
        "when you have no more questions, answer in the format above."
    )


def with_dialogue(messages: list[dict[str, str]], max_questions: int) -> list[dict[str, str]]:
    """The protocol's request messages with `dialogue_instructions` added to the user turn."""
    out = [dict(m) for m in messages]
    user = next(m for m in out if m["role"] == "user")
    user["content"] = f"{user['content']}\n\n{dialogue_instructions(max_questions)}"
    return out


def parse_question(text: str, units: list[Unit]) -> Question | None:
    """The question in a reviewer message, or None when the message is not one."""
    match = _QUESTION.match(text)
    if match is None:
        return None
    unit = int(match.group(1))
    question = " ".join(match.group(2).split())[:MAX_QUESTION_CHARS]
    return Question(unit=unit if 0 <= unit < len(units) else None, text=question)


def reply_message(reply: str, questions_left: int) -> dict[str, str]:
    """The user turn that carries the assistant's reply back to the reviewer."""
    follow = f"You may ask {questions_left} more question(s), or answer now." if questions_left > 0 else NO_MORE_QUESTIONS
    return {"role": "user", "content": f"The student replies: {reply}\n{follow}"}


class Answerer(Protocol):
    """Who answers the reviewer's questions."""

    name: str

    async def answer(self, problem: Problem, trace: Trace, units: list[Unit], unit: int, question: str) -> Reply: ...


def _clip_reply(text: str) -> str:
    first = text.strip().split("\n\n", 1)[0]
    return " ".join(first.split())[:MAX_REPLY_CHARS] or "(no reply)"


def _question_block(units: list[Unit], unit: int, question: str) -> str:
    quoted = " ".join(units[unit].text.split())
    return f'A reviewer asks about the step "{quoted}": {question}\nReply in one or two sentences.'


class PolicyAnswerer:
    """The policy answers, through a `dca.continuation.ContinuationEngine`: its own prompt, its
    completion, then the question as a new paragraph; a greedy continuation of at most
    ``max_reply_tokens``, first paragraph kept. `render_prompt` builds the prompt for traces
    that do not carry the one the policy saw."""

    def __init__(self, engine: Any, *, render_prompt: Callable[[Problem], str] | None = None, max_reply_tokens: int = 64):
        self.engine = engine
        self.name = f"policy:{getattr(engine, 'name', 'model')}"
        self.render_prompt = render_prompt
        self.max_reply_tokens = max_reply_tokens

    async def answer(self, problem: Problem, trace: Trace, units: list[Unit], unit: int, question: str) -> Reply:
        return await asyncio.to_thread(self._answer, problem, trace, units, unit, question)

    def _answer(self, problem: Problem, trace: Trace, units: list[Unit], unit: int, question: str) -> Reply:
        prompt = self.render_prompt(problem) if self.render_prompt is not None else trace.prompt
        prefix = f"{trace.completion.rstrip()}\n\n{_question_block(units, unit, question)}\n"
        settings = ContinuationSettings(max_new_tokens=self.max_reply_tokens, batch_size=1)
        (continuation,) = self.engine.continue_batch([ContinuationRequest(id=trace.id, prompt=prompt, prefix=prefix)], settings)
        if continuation.error:
            raise RuntimeError(f"the policy could not reply: {continuation.error}")
        return Reply(text=_clip_reply(continuation.text), output_tokens=continuation.generated_tokens)


class LLMAnswerer:
    """Any LLM backend answers as the student, through its `dca.llm.LLMClient` (cached, counted)."""

    SYSTEM = "You wrote the step-by-step solution below. A reviewer asks about one of your steps; reply briefly and honestly about why you wrote it."

    def __init__(self, client: Any, *, name: str = "llm"):
        self.client = client
        self.name = name

    async def answer(self, problem: Problem, trace: Trace, units: list[Unit], unit: int, question: str) -> Reply:
        user = f"Problem:\n{problem.question.strip()}\n\nYour solution:\n{trace.completion.strip()}\n\n{_question_block(units, unit, question)}"
        messages = [{"role": "system", "content": self.SYSTEM}, {"role": "user", "content": user}]
        generation = await self.client.generate(messages, namespace="dca-dialogue-reply/1")
        return Reply(text=_clip_reply(generation.text), input_tokens=generation.input_tokens, output_tokens=generation.output_tokens, cost=generation.cost)


@dataclass(kw_only=True)
class Conversation:
    """What `converse` returns: the reviewer's last message (its answer) and the dialogue."""

    generation: Any
    messages: list[dict[str, str]]
    """The messages up to (not including) the reviewer's last message."""
    transcript: list[DialogueTurn]
    reply_input_tokens: int = 0
    reply_output_tokens: int = 0
    reply_cost: float = 0.0


async def converse(
    call: Callable[[list[dict[str, str]], bool], Awaitable[Any]],
    messages: list[dict[str, str]],
    problem: Problem,
    trace: Trace,
    units: list[Unit],
    *,
    max_questions: int,
    answerer: Answerer,
) -> Conversation:
    """Let the reviewer ask up to `max_questions` questions; `call(messages, questions)` makes
    one reviewer call (a `Generation` with ``.text``), `questions` saying whether the reviewer
    may still ask one (an ``hf`` reviewer's grammar admits a question line only then). Returns
    when the reviewer's message is not a question, or after the last question allowed has been
    answered and the reviewer has spoken again (whatever it said: the caller validates it as the
    answer)."""
    conversation = Conversation(generation=None, messages=messages, transcript=[])
    asked = 0
    while True:
        generation = await call(conversation.messages, asked < max_questions)
        conversation.generation = generation
        question = parse_question(generation.text, units) if asked < max_questions else None
        if question is None:
            return conversation
        asked += 1
        if question.unit is None:
            reply = Reply(text=f"(there is no such unit: units are 0 to {len(units) - 1})")
        else:
            reply = await answerer.answer(problem, trace, units, question.unit, question.text)
        conversation.reply_input_tokens += reply.input_tokens
        conversation.reply_output_tokens += reply.output_tokens
        conversation.reply_cost += reply.cost
        conversation.transcript += [
            DialogueTurn(role="reviewer", unit=question.unit, text=question.text),
            DialogueTurn(role="assistant", unit=question.unit, text=reply.text),
        ]
        asked_line = f"{QUESTION_PREFIX} {question.unit if question.unit is not None else '?'}: {question.text}"
        conversation.messages = [*conversation.messages, {"role": "assistant", "content": asked_line}, reply_message(reply.text, max_questions - asked)]
