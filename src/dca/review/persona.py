"""Reviewer personas: the policy model reviews its own chains of thought after a persona token.

In the style of split-personality training, each reviewer style (``strict``, ``lenient``,
``causal``, or any declared one) is a special token added to the policy's tokenizer, e.g.
``<|review:strict|>``. Given a trace, the policy itself is prompted with

    <the policy's own chat prompt for the problem>
    [0] first unit of its completion
    [1] second unit
    ...
    <|review:strict|>

and decodes a review in the protocol's line form (`dca.review.protocol`), under the review
answer's grammar (`dca.review.grammar`, one per row) through the local ``hf`` backend
(`dca.llm.hf.HFBackend.decode_batch`) with ``one_step_per_unit``: line i labels unit i (no
unit numbers: ``gi``, ``cw 0 | reason``) and every line is required, so every answer parses,
whatever the weights, when the trace's units fit the answer budget (``max_steps``, 32 lines;
``max_new_tokens`` 1024 with 8-character reasons would hold 52 units); a longer trace is a
failed review (``uncovered_units``: the project never credits a partly reviewed trace as if
reviewed).

**Embedding initialisation** (`add_persona_tokens`). A new token's input embedding is the
mean of the input embeddings of its persona's description (``"a strict reviewer: ..."``,
tokenized without special tokens), so the token starts where the model already represents
that instruction instead of at a random point (random rows can dominate a small model's
attention and make its first reviews degenerate). Where the output embedding is not tied to
the input one, its row is the mean of the description tokens' output rows as well. Tokens
already in the tokenizer keep their trained rows (adding personas twice changes nothing).

**The reward guard.** The persona sees the problem's question and the completion's units,
nothing else: no outcome, no reward, no reference answer (`persona_prompt` takes no trace
record at all). Its review, like any reviewer's, only shapes how the sequence advantage is
spread over tokens (`dca.credit`); it never changes the reward.

A checkpoint with personas holds ``personas.json`` (names, tokens, descriptions) beside the
weights and tokenizer (`save_persona_checkpoint`, `load_personas`). Departure from the
split-personality paper: there the persona's review is free text after the model's own
answer; here it must be the project's review protocol, so that its labels can be compared
with, and trained toward, the external reviewers'.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..domains import chat_messages
from ..errors import UserError
from ..files import write_json
from ..llm.hf import HFBackend
from ..model import load_model
from ..records import Problem, Review, Trace, Unit
from .base import ReviewItem, failed_review
from .config import ReviewerSpec
from .grammar import ReviewGrammar
from .protocol import InvalidAnswer, parse_answer

__all__ = [
    "DEFAULT_PERSONAS",
    "PERSONA_FILE",
    "PERSONA_BATCH_SIZE",
    "PERSONA_PARAMS",
    "PERSONA_PROTOCOL",
    "Persona",
    "PersonaReviewer",
    "add_persona_tokens",
    "build_persona_reviewer",
    "load_personas",
    "persona_prompt",
    "policy_personas",
    "resolve_personas",
    "save_persona_checkpoint",
    "write_personas",
]

PERSONA_FILE = "personas.json"
#: Recorded in every persona review's metadata; change it when `persona_prompt` or the answer
#: form changes (2: the answer in dca-review/4's line form, no unit numbers).
PERSONA_PROTOCOL = "dca-persona/2"

#: Constrained-decoding parameters of a persona review (any `dca.review.grammar` or `dca.llm.hf`
#: parameter may be overridden): short reasons keep a review a few tokens per unit.
PERSONA_PARAMS: dict[str, Any] = {"one_step_per_unit": True, "max_reason_chars": 8, "max_new_tokens": 1024, "max_depends": 2}
#: Reviews a persona decodes in one batched ``generate`` call unless ``params.batch_size`` says
#: otherwise (`PersonaReviewer`).
PERSONA_BATCH_SIZE = 8

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(kw_only=True)
class Persona:
    """One reviewer persona."""

    name: str
    """Lower-case identifier (``strict``); the token is ``<|review:NAME|>``."""
    description: str
    """The reviewer style in words; its tokens' mean embedding initialises the token."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"persona name {self.name!r} must be lower-case letters, digits or '_' (at most 32)")
        if not self.description.strip():
            raise ValueError(f"persona {self.name!r} needs a description")

    @property
    def token(self) -> str:
        return f"<|review:{self.name}|>"


DEFAULT_PERSONAS: dict[str, str] = {
    "strict": "a strict reviewer: only steps the final answer depends on are useful; restated facts it does not use, padding and needless checks are irrelevant; every wrong statement is an error",
    "lenient": "a lenient reviewer: restating facts, planning and checking all help the solution; only clearly wrong statements are errors",
    "causal": "a causal reviewer: a step is useful exactly when removing it would change the final answer",
}


def resolve_personas(declared: Sequence[str | dict | Persona]) -> list[Persona]:
    """Personas from config entries: a built-in name (``strict``), ``{name, description}``, or
    a `Persona`. Raises `UserError` on an unknown name or a repeated one."""
    personas: list[Persona] = []
    for entry in declared:
        try:
            if isinstance(entry, Persona):
                persona = entry
            elif isinstance(entry, str):
                if entry not in DEFAULT_PERSONAS:
                    raise UserError(f"unknown persona {entry!r}: built in are {', '.join(DEFAULT_PERSONAS)}; declare others with a description")
                persona = Persona(name=entry, description=DEFAULT_PERSONAS[entry])
            elif isinstance(entry, dict):
                unknown = sorted(set(entry) - {"name", "description"})
                if unknown:
                    raise UserError(f"persona entry has unknown key(s) {unknown}; use name and description")
                name = str(entry.get("name", ""))
                persona = Persona(name=name, description=str(entry.get("description") or DEFAULT_PERSONAS.get(name, "")))
            else:
                raise UserError(f"a persona is a name or a {{name, description}} mapping, not {type(entry).__name__}")
        except ValueError as e:
            raise UserError(str(e)) from e
        if any(p.name == persona.name for p in personas):
            raise UserError(f"persona {persona.name!r} is declared twice")
        personas.append(persona)
    if not personas:
        raise UserError("declare at least one persona")
    return personas


# ---------------------------------------------------------------------------------------------
# Tokens in the model


def add_persona_tokens(model: Any, tokenizer: Any, personas: Sequence[Persona]) -> dict[str, int]:
    """Add each persona's token to `tokenizer` (as a special token) and `model`'s embeddings,
    initialised as the module docstring says; returns persona name -> token id."""
    import torch  # heavy: torch loads only when a model runs
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [p for p in personas if p.token not in vocab]
    if new:
        tokenizer.add_tokens([AddedToken(p.token, special=True, normalized=False) for p in new], special_tokens=True)
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        inputs, outputs = model.get_input_embeddings().weight, model.get_output_embeddings()
        outputs = None if outputs is None or outputs.weight is inputs else outputs.weight
        with torch.no_grad():
            for persona in new:
                token_id = tokenizer.convert_tokens_to_ids(persona.token)
                phrase = tokenizer(persona.description, add_special_tokens=False)["input_ids"]
                inputs[token_id] = inputs[phrase].mean(dim=0)
                if outputs is not None:
                    outputs[token_id] = outputs[phrase].mean(dim=0)
    return {p.name: tokenizer.convert_tokens_to_ids(p.token) for p in personas}


def save_persona_checkpoint(model: Any, tokenizer: Any, personas: Sequence[Persona], out: str | Path) -> Path:
    """Save the model, its tokenizer and ``personas.json`` to the directory `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_personas(out, personas)
    return out


def write_personas(directory: str | Path, personas: Sequence[Persona]) -> None:
    """Write ``personas.json`` into the checkpoint `directory` (the tokens are in its tokenizer)."""
    path = Path(directory) / PERSONA_FILE
    write_json(path, {"personas": [asdict(p) for p in personas]})


def policy_personas(reviewers: Sequence[Any], model: Any, start_checkpoint: str | Path | None = None) -> list[Persona]:
    """The personas a trained policy checkpoint declares: those of `start_checkpoint`'s
    ``personas.json`` plus those of the persona reviewers that reviewed with `model` itself
    (in order, each name once)."""
    found: dict[str, Persona] = {}
    if start_checkpoint is not None and Path(start_checkpoint).is_dir():
        found.update((p.name, p) for p in load_personas(start_checkpoint))
    for reviewer in reviewers:
        if isinstance(reviewer, PersonaReviewer) and reviewer.model is model:
            found.setdefault(reviewer.persona.name, reviewer.persona)
    return list(found.values())


def load_personas(directory: str | Path) -> list[Persona]:
    """The personas a checkpoint declares (empty when it has no ``personas.json``)."""
    path = Path(directory) / PERSONA_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Persona(**entry) for entry in data["personas"]]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a valid personas file ({e})") from e


# ---------------------------------------------------------------------------------------------
# Reviewing


def _one_line(text: str) -> str:
    return " ".join(text.split())


def persona_prompt(tokenizer: Any, problem: Problem, units: list[Unit], persona: Persona) -> str:
    """What the policy reads before its persona review: its own chat prompt for the problem,
    the completion's units numbered, then the persona token. Takes no trace on purpose: the
    outcome and reward cannot reach the persona."""
    prompt = tokenizer.apply_chat_template(chat_messages(problem), tokenize=False, add_generation_prompt=True)
    body = "\n".join(f"[{u.index}] {_one_line(u.text)}" for u in units)
    return f"{prompt}{body}\n{persona.token}\n"


def build_persona_reviewer(spec: Any, context: Any) -> "PersonaReviewer":
    """The `persona` backend of the reviewer registry: ``persona`` names the persona (one of
    the checkpoint's ``personas.json``, else a built-in one); the model is ``model`` when set,
    else the policy (`context.engine`: in training, the policy being trained reviews its own
    completions, and its tokenizer gains the persona token before the trainer is built)."""
    engine = getattr(context, "engine", None)
    if spec.model:
        model, tokenizer = load_model(spec.model)
        model_name = spec.model
    elif engine is not None and hasattr(engine, "model") and hasattr(engine, "tokenizer"):
        model, tokenizer, model_name = engine.model, engine.tokenizer, getattr(engine, "name", "policy")
    else:
        raise UserError(f"reviewer '{spec.name}': backend 'persona' needs a model here (no policy model is loaded)")
    declared = {p.name: p for p in (load_personas(spec.model) if spec.model and Path(spec.model).is_dir() else [])}
    name = spec.persona or "strict"
    persona = declared.get(name) or resolve_personas([name])[0]
    return PersonaReviewer(spec.name, persona, model, tokenizer, params=spec.params, model_name=model_name)


class PersonaReviewer:
    """A persona of a loaded (policy) model behind the `dca.review.base.Reviewer` interface.

    Runs inline, in the caller's thread (the model is the caller's), and decodes up to
    ``batch_size`` reviews in one batched ``generate`` call (`dca.llm.hf.HFBackend.decode_batch`,
    a review grammar per row; param ``batch_size``, default `PERSONA_BATCH_SIZE`; 1 reviews
    one trace at a time). A review whose answer does not parse (possible only with
    ``one_step_per_unit`` off) or whose generation raises is a failed review, never an
    exception. ``usage["seconds"]`` of a review is its batch's wall time divided by the batch's
    reviews.
    """

    inline = True

    def __init__(self, name: str, persona: Persona, model: Any, tokenizer: Any, *, params: dict[str, Any] | None = None, model_name: str = "policy"):
        params = {**PERSONA_PARAMS, **(params or {})}
        self.batch_size = params.pop("batch_size", PERSONA_BATCH_SIZE)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"reviewer '{name}': params.batch_size must be a positive integer (got {self.batch_size!r})")
        add_persona_tokens(model, tokenizer, [persona])  # no-op when the checkpoint has it
        self.name = name
        self.model = model
        self.persona = persona
        self.tokenizer = tokenizer
        spec = ReviewerSpec(name=name, backend="hf", model=model_name, params=params)
        self.backend = HFBackend(spec, model=model, tokenizer=tokenizer)
        self.grammar = ReviewGrammar.from_spec(spec)  # None with constrained: false

    def _metadata(self) -> dict[str, Any]:
        return {"backend": "persona", "persona": self.persona.name, "protocol": PERSONA_PROTOCOL}

    def _review_from(self, generation: Any, item: ReviewItem) -> Review:
        usage = {"input_tokens": generation.input_tokens, "output_tokens": generation.output_tokens, "cost_usd": 0.0, "requests": 1}
        try:
            # Every line up to the step cap is required, so units go uncovered only when the
            # trace is longer than the token budget allows: then the review fails (uncovered_units).
            parsed = parse_answer(generation.text, item.units)
        except InvalidAnswer as e:  # uncovered units: a trace longer than the answer budget's step limit
            kind = "uncovered_units" if str(e).startswith("uncovered units") else "invalid_answer"
            return failed_review(self.name, item, kind, str(e), usage=usage, metadata={**self._metadata(), "answer_excerpt": generation.text[:1000]})
        return Review(trace_id=item.trace.id, reviewer=self.name, units=item.units, steps=parsed.steps,
                      unreviewed_units=parsed.unreviewed_units, usage=usage, metadata=self._metadata())  # fmt: skip

    def _review_batch(self, batch: Sequence[ReviewItem]) -> list[Review]:
        """Reviews of `batch`, decoded together; any failure of the batch's generation is a
        failed review of each of its traces."""
        started = time.perf_counter()
        reviews: list[Review | None] = [None] * len(batch)
        todo = [i for i, item in enumerate(batch) if item.units]
        for i, item in enumerate(batch):
            if not item.units:
                reviews[i] = failed_review(self.name, item, "reviewer_error", "no units to review", metadata=self._metadata())
        if todo:
            try:
                prompts = [persona_prompt(self.tokenizer, batch[i].problem, batch[i].units, self.persona) for i in todo]
                grammars = [self.grammar.build(len(batch[i].units)) if self.grammar is not None else None for i in todo]
                generations = self.backend.decode_batch(prompts, grammars)
            except Exception as e:  # noqa: BLE001 - a reviewer failure is data, never a crash
                for i in todo:
                    reviews[i] = failed_review(self.name, batch[i], "reviewer_error", f"{type(e).__name__}: {e}", metadata=self._metadata())
            else:
                for i, generation in zip(todo, generations):
                    reviews[i] = self._review_from(generation, batch[i])
        seconds = round((time.perf_counter() - started) / len(batch), 4)
        for review in reviews:
            review.usage["seconds"] = seconds
        return reviews  # type: ignore[return-value]

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str, prompt: str | None = None) -> Review:
        """One review (a batch of one)."""
        trace = Trace(id=trace_id, problem_id=problem.id, prompt=prompt or "", completion=trace_completion)
        return self._review_batch([ReviewItem(problem=problem, trace=trace, units=units)])[0]

    def review_items(self, items: Sequence[ReviewItem]) -> list[Review]:
        """Reviews of `items`, in batches of ``batch_size``; a failure of one is a failed review."""
        reviews: list[Review] = []
        for start in range(0, len(items), self.batch_size):
            reviews += self._review_batch(items[start : start + self.batch_size])
        return reviews

    async def review_many(self, items: Sequence[Any]) -> list[Review]:
        return await asyncio.to_thread(self.review_items, items)

    def close(self) -> None:
        pass
