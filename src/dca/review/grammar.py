"""The review answer's grammar, for reviewers that decode locally (backend ``hf``): so that even
a random model writes an answer `dca.review.protocol.parse_answer` can read.

The LLM reviewer (`dca.review.runner.LLMReviewer`) and the `persona` reviewer build a
`dca.llm.Grammar` per request from what they know (the trace's unit count; in a dialogue review
whether a question may still be asked) and pass it to the backend (`dca.llm.hf.HFBackend`),
which only compiles and applies it:

- ``answer_format: json``: the protocol's `ReviewAnswer` JSON schema, compact (no free
  whitespace), tightened so the answer is bounded: unit numbers within the trace's units, at
  most ``max_steps`` steps, ``depends_on`` naming at most ``max_depends`` earlier steps (step i
  only steps 0 .. i-1), and reasons of at most ``max_reason_chars`` printable ASCII characters
  (no escapes). Every answer of the tightened schema is valid for the protocol's.
- ``answer_format: lines``: an EBNF grammar for exactly the current line form
  (``dca-review/4``: ``[last-unit] fc [uses ...] [| reason]``, one line per step, a reason
  only after an error or failed_attempt code) with the same bounds; the older forms the parser
  still reads (ranges, codes as two words, bracketed uses, full names) are not admitted. With
  ``one_step_per_unit`` no line has a unit number, so line i labels unit i alone, and every
  line up to the step limit is required: an answer is always in order, never overlapping (the
  `persona` reviewer).
- Dialogue reviews (`dca.review.dialogue`, line form only): while the reviewer may still ask,
  the grammar admits either an answer or one line ``QUESTION <unit>: <text>`` (unit numbers
  within the trace's units, at most 120 characters of the reason alphabet).

Where this departs from "constrain to the schema": the grammar alone does not make an answer
finish, and one cut off by ``max_new_tokens`` is not valid. Every token the grammar allows is
at least one byte, so the longest answer the grammar admits, in bytes (+1 for the stop token),
bounds its length in tokens; the step limit is lowered until that bound fits in the backend's
``max_new_tokens`` (a `UserError` when the reviewer is built says what to raise when not even
one step fits). A constrained answer therefore always ends in the protocol's format (unless the
call's ``timeout`` cuts it off: then the runner has already given up on it); it can still be
semantically wrong (a backwards or overlapping range, a wrong label), which the runner's repair
turn and failed-review path handle like any other reviewer's. Quote mode is not offered (quotes
are free text). Order and overlap of unit ranges are not in the grammar.

Parameters (an ``hf`` reviewer's ``params``, read here and never by the backend, which takes the
decoding ones: `dca.llm.hf`): ``constrained`` (true), ``max_steps`` (32), ``max_depends`` (4),
``max_reason_chars`` (40), ``one_step_per_unit`` (off). The grammar is part of each call's cache
key (`dca.llm.LLMClient.key`), so the bounds are too.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..llm import Grammar
from ..llm.hf import DEFAULTS as HF_DEFAULTS
from ..records import CONTRIBUTIONS, FUNCTIONS
from .protocol import CONTRIBUTION_CODES, FUNCTION_CODES, REASONED, answer_json_schema

__all__ = [
    "GRAMMAR_PARAMS",
    "MAX_QUESTION_CHARS",
    "REASON_CHARS",
    "ReviewGrammar",
    "answer_grammar_bound",
    "json_answer_schema",
    "lines_grammar",
    "question_grammar",
]

#: An ``hf`` reviewer's grammar parameters and their defaults (``one_step_per_unit`` is off unless set).
GRAMMAR_DEFAULTS: dict[str, Any] = {"constrained": True, "max_steps": 32, "max_depends": 4, "max_reason_chars": 40}
GRAMMAR_PARAMS = (*GRAMMAR_DEFAULTS, "one_step_per_unit")
#: Characters a constrained reason may use: printable ASCII without quotes, backslash or '|'
#: (one byte each, never escaped in JSON).
REASON_CHARS = r"[A-Za-z0-9 ,.;:'()=+*/%$!?<>_#&@\-]"
#: The build-time check that one step fits assumes unit numbers up to 999.
CHECKED_UNITS = 1000
#: Longest question a constrained reviewer may ask in a dialogue review (characters).
MAX_QUESTION_CHARS = 120


def _number_alternatives(limit: int) -> str:
    """EBNF alternatives for the integers 0 .. limit-1."""
    return " | ".join(f'"{i}"' for i in range(max(limit, 1)))


def _depends(position: int, depends: int) -> int:
    """How many earlier steps step `position` may name."""
    return min(depends, position)


def json_answer_schema(units: int, steps: int, depends: int, reason_chars: int) -> dict:
    """The protocol's unit-mode JSON schema, tightened to the given bounds; step i's
    ``depends_on`` may only name steps 0 .. i-1 (one ``prefixItems`` entry per position)."""
    schema = json.loads(json.dumps(answer_json_schema("units")))
    step = schema["$defs"].pop("StepAnswer")
    step["properties"]["units"]["items"].update({"minimum": 0, "maximum": max(units - 1, 0)})
    step["properties"]["reason"]["pattern"] = f"^{REASON_CHARS}{{0,{reason_chars}}}$"
    positions = []
    for i in range(steps):
        at = json.loads(json.dumps(step))
        uses = at["properties"]["depends_on"]
        uses["maxItems"] = _depends(i, depends)
        if i > 0:
            uses["items"].update({"minimum": 0, "maximum": i - 1})
        positions.append(at)
    schema["properties"]["steps"] = {
        **{k: v for k, v in schema["properties"]["steps"].items() if k != "items"},
        "prefixItems": positions, "items": False, "minItems": 1, "maxItems": steps,
    }  # fmt: skip
    if not schema["$defs"]:
        del schema["$defs"]
    return schema


def lines_grammar(units: int, steps: int, depends: int, reason_chars: int, *, one_step_per_unit: bool = False) -> str:
    """An xgrammar EBNF grammar for the protocol's line form (``dca-review/4``) with the given
    bounds; the line of step i may only name steps 0 .. i-1 among its uses, and only an error or
    failed_attempt code may be followed by a reason. With `one_step_per_unit` no line has a
    unit number, so line i labels unit i alone (answers then always parse: in order, no
    overlap)."""
    more = "" if one_step_per_unit else "?"  # one line per unit: every line up to `steps` is required
    reasoned = [code for code, name in CONTRIBUTION_CODES.items() if name in REASONED]
    rules = [
        "root ::= line0" + (f" rest1{more}" if steps > 1 else ""),
        f"unit ::= {_number_alternatives(units)}",
        "function ::= " + " | ".join(f'"{f}"' for f in FUNCTION_CODES),
        "plain ::= " + " | ".join(f'"{c}"' for c in CONTRIBUTION_CODES if c not in reasoned),
        "reasoned ::= " + " | ".join(f'"{c}"' for c in reasoned),
        f"reason ::= {REASON_CHARS}{{1,{reason_chars}}}",
    ]
    for i in range(steps):
        uses = ""
        if _depends(i, depends):
            uses = f' (" " dep{i}){{0,{_depends(i, depends)}}}'
            rules.append(f"dep{i} ::= {_number_alternatives(i)}")
        number = "" if one_step_per_unit else '(unit " ")? '
        rules.append(f'line{i} ::= {number}function (plain{uses} | reasoned{uses} (" | " reason)?) "\\n"')
        if i > 0:
            rules.append(f"rest{i} ::= line{i}" + (f" rest{i + 1}{more}" if i + 1 < steps else ""))
    return "\n".join(rules) + "\n"


def question_grammar(answer_grammar: str) -> str:
    """`answer_grammar` (a `lines_grammar`) widened to also admit one dialogue question line,
    ``QUESTION <unit>: <text>`` (`dca.review.dialogue`)."""
    body = answer_grammar.replace("root ::=", "answer ::=", 1)
    return (
        'root ::= answer | question\n'
        f'question ::= "QUESTION " unit ": " {REASON_CHARS}{{1,{MAX_QUESTION_CHARS}}} "\\n"\n' + body
    )


def answer_grammar_bound(answer_format: str, units: int, steps: int, depends: int, reason_chars: int, *, one_step_per_unit: bool = False) -> int:
    """The longest answer the grammar admits, in bytes, plus one for the stop token: an upper
    bound on its length in tokens (every token the grammar allows is at least one byte)."""
    unit = max(units - 1, 0)
    function, contribution = max(FUNCTIONS, key=len), max(CONTRIBUTIONS, key=len)
    reason = "x" * reason_chars
    if answer_format == "json":
        items = [
            {"units": [unit, unit], "function": function, "contribution": contribution,
             "depends_on": [max(i - 1, 0)] * _depends(i, depends), "reason": reason}
            for i in range(steps)
        ]  # fmt: skip
        text = json.dumps({"steps": items}, separators=(",", ":"))
    else:
        number = "" if one_step_per_unit else f"{unit} "
        text = ""
        for i in range(steps):
            uses = f" {max(i - 1, 0)}" * _depends(i, depends)
            text += f"{number}fw{uses} | {reason}\n"  # the two codes, then the uses and the reason
    return len(text.encode("utf-8")) + 1


@dataclass(kw_only=True)
class ReviewGrammar:
    """The grammar settings of one ``hf`` reviewer; `build` gives the `Grammar` of a request."""

    name: str
    answer_format: str
    max_new_tokens: int
    max_steps: int = GRAMMAR_DEFAULTS["max_steps"]
    max_depends: int = GRAMMAR_DEFAULTS["max_depends"]
    max_reason_chars: int = GRAMMAR_DEFAULTS["max_reason_chars"]
    one_step_per_unit: bool = False
    _built: dict[tuple[int, bool], Grammar] = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> "ReviewGrammar | None":
        """The grammar settings of reviewer `spec` (a `dca.review.config.ReviewerSpec`): None for
        a backend other than ``hf`` or with ``constrained: false``. A mistake is a `UserError`
        naming the reviewer, raised before any call."""
        if spec.backend != "hf":
            return None
        who = f"reviewer '{spec.name}'"
        if spec.mode != "units":
            raise UserError(f"{who}: backend 'hf' reviews in mode 'units' only (quotes are free text)")
        params = {**GRAMMAR_DEFAULTS, "max_new_tokens": HF_DEFAULTS["max_new_tokens"], **spec.params}
        if params.get("one_step_per_unit") and spec.answer_format != "lines":
            raise UserError(f"{who}: params.one_step_per_unit needs answer_format 'lines'")
        for name in ("max_new_tokens", "max_steps", "max_depends", "max_reason_chars"):
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_depends" else 1):
                raise UserError(f"{who}: params.{name} must be a positive integer")
        if not params["constrained"]:
            return None
        if importlib.util.find_spec("xgrammar") is None:
            raise UserError(f"{who}: constrained decoding needs xgrammar: pip install 'xgrammar>=0.2,<0.3'")
        grammar = cls(
            name=spec.name, answer_format=spec.answer_format, max_new_tokens=params["max_new_tokens"],
            max_steps=params["max_steps"], max_depends=params["max_depends"], max_reason_chars=params["max_reason_chars"],
            one_step_per_unit=bool(params.get("one_step_per_unit")),
        )  # fmt: skip
        # The smallest constrained answer (one single-unit step) must fit in max_new_tokens.
        needed = grammar.bound(units=CHECKED_UNITS, steps=1)
        if needed > grammar.max_new_tokens:
            raise UserError(
                f"{who}: max_new_tokens {grammar.max_new_tokens} cannot hold one constrained "
                f"step ({needed} tokens at most); raise it or lower max_reason_chars"
            )
        return grammar

    def bound(self, *, units: int, steps: int) -> int:
        """`answer_grammar_bound` for this reviewer's format and bounds."""
        return answer_grammar_bound(
            self.answer_format, units, steps, self.max_depends, self.max_reason_chars, one_step_per_unit=self.one_step_per_unit
        )

    def steps(self, units: int) -> int:
        """The step limit for a trace of `units` units: at most ``max_steps`` and the unit count,
        lowered until the longest answer fits in ``max_new_tokens`` (never below one)."""
        steps = min(self.max_steps, units)
        while steps > 1 and self.bound(units=units, steps=steps) > self.max_new_tokens:
            steps -= 1
        return steps

    def build(self, units: int, *, questions: bool = False) -> Grammar:
        """The grammar of an answer about `units` units (at least one), with a dialogue question
        line allowed when `questions` (line form only); built once per (units, questions)."""
        units = max(units, 1)
        key = (units, questions)
        if key not in self._built:
            steps = self.steps(units)
            if self.answer_format == "json":
                schema = json_answer_schema(units, steps, self.max_depends, self.max_reason_chars)
                self._built[key] = Grammar("json_schema", json.dumps(schema))
            else:
                text = lines_grammar(units, steps, self.max_depends, self.max_reason_chars, one_step_per_unit=self.one_step_per_unit)
                self._built[key] = Grammar("ebnf", question_grammar(text) if questions else text)
        return self._built[key]
