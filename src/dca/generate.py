"""`dca generate`: novel problems with known structure, written by a frontier model.

    dca generate --reviewers models.yaml --generator gpt --domain arithmetic --count 50 --out gen.jsonl

The model (any LLM reviewer of a reviewers YAML: OpenAI-compatible, Anthropic, local hf;
called through the one LLM client, `dca.llm.LLMClient`, with its cache, retries, rate limits
and cost) writes one problem per request under a JSON schema, with its structured solution:

- **arithmetic**: the question, its facts (``id``, sentence, value), distractor facts, and
  the operations (``id``, ``op`` in + - * /, ``inputs`` = fact or earlier operation ids,
  ``value``) that form a DAG ending in the answer;
- **logic**: people, facts ("Anne is big"), one-premise rules (premise -> [not] attribute),
  the statement to judge and the claimed answer (True / False / Unknown).

The project **executes the structure** and rejects, counted by reason (an arithmetic
question is compared with known questions first: a copy is contamination whatever its
structure):

- ``call_failed``: the LLM call failed for good (after the client's retries);
- ``invalid_answer``: not JSON, or not the schema;
- ``unsolvable``: no operations, an input that names nothing earlier (a cycle or a typo), a
  division by zero, a statement about nobody in the theory;
- ``inconsistent``: a stated value that the operations do not give, an answer that is not
  the last operation's value, a fact whose value the question does not state, a theory that
  derives both ``a`` and ``not a``, a claimed logic answer that forward chaining does not give;
- ``ambiguous``: two stated numbers that are equal, or a stated number equal to an
  intermediate value (the oracle could not tell them apart), a needed fact no operation
  uses;
- ``near_duplicate``: a question within ``threshold`` (rapidfuzz ``fuzz.ratio`` on
  normalised text, 0-100) of a GSM8K train/test question, of a problem in an earlier
  generated set (``--against``), or of a problem accepted earlier in the same run.

Accepted problems are written as `Problem` records with their known structure (facts,
distractors, operations / the logic proof DAG), so the oracle reviewer labels traces on them.
``<out>.report.json`` holds the counts by reason, the LLM usage and cost, and the
contamination report: for every generated problem the closest match found (source, id,
text, score), accepted or not.

Departure: the generator is asked for logic theories as structure, and the project renders
the question text itself (`dca.problems.logic` phrasing), so that text and structure cannot
disagree.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rapidfuzz import fuzz, process

from .domains.sources import load
from .errors import UserError
from .files import read_problems_file, write_json, write_jsonl
from .llm import LLMCallFailed, LLMClient, run_sync
from .measures import numbers
from .problems.logic import forward_chain, literal_text, rule_text
from .records import Fact, Operation, Problem
from .review import ReviewCache, load_reviewers

GENERATE_PROTOCOL = "generate-v1"
DOMAINS = ("arithmetic", "logic")
REASONS = ("invalid_answer", "call_failed", "unsolvable", "inconsistent", "ambiguous", "near_duplicate")
DEFAULT_THRESHOLD = 90.0

_TOPICS = (
    "a bakery", "a school trip", "a garden", "a library", "a football team", "a farm", "a toy shop", "a birthday party",
    "a train journey", "a science fair", "a music band", "an aquarium", "a bike repair shop", "a bookstore", "a zoo",
    "a summer camp", "a flower market", "a chess club", "a fishing trip", "a recycling drive",
)  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeneratedFact(_Strict):
    id: str = Field(description="f0, f1, ... for needed facts; d0, d1, ... for distractors.")
    text: str = Field(description="The sentence of the question that states it.")
    value: float = Field(description="The number the sentence states.")


class GeneratedOperation(_Strict):
    id: str = Field(description="v0, v1, ...; the last one gives the answer.")
    op: Literal["+", "-", "*", "/"]
    inputs: list[str] = Field(min_length=2, max_length=2, description="Two ids of facts or earlier operations, in operand order.")
    value: float = Field(description="The result.")
    description: str = Field("", description="What the value means in words.")


class ArithmeticSolution(_Strict):
    """A word problem and its structured solution."""

    question: str = Field(description="The full problem text, ending with the question.")
    facts: list[GeneratedFact] = Field(min_length=1, description="Facts the solution needs.")
    distractors: list[GeneratedFact] = Field(default_factory=list, description="Facts stated in the question that the solution does not need.")
    operations: list[GeneratedOperation] = Field(min_length=1, description="The computation DAG in evaluation order.")
    answer: float = Field(description="The final answer (the last operation's value).")


class GeneratedLogicFact(_Strict):
    person: str
    attribute: str


class GeneratedRule(_Strict):
    premise: str = Field(description="If someone is <premise> ...")
    attribute: str = Field(description="... then they are [not] <attribute>.")
    negated: bool = False


class GeneratedStatement(_Strict):
    person: str
    attribute: str
    negated: bool = False


class LogicSolution(_Strict):
    """A small theory, a statement, and its answer under open-world deduction."""

    facts: list[GeneratedLogicFact] = Field(min_length=1)
    rules: list[GeneratedRule] = Field(min_length=1)
    statement: GeneratedStatement
    answer: Literal["True", "False", "Unknown"]


SCHEMAS = {"arithmetic": ArithmeticSolution, "logic": LogicSolution}

_SYSTEM = {
    "arithmetic": (
        "You write new grade-school math word problems with their exact solution structure. Each problem is "
        "original (not from a data set), has integer values, states every number once, and has one answer. "
        "Answer with JSON only, matching the schema: question, facts (needed numbers with the sentence stating "
        "each), distractors (numbers the question states but does not need), operations (each combines two facts "
        "or earlier operations with + - * /, in evaluation order, with its value), answer."
    ),
    "logic": (
        "You write small deductive logic puzzles as structure: people with attributes (facts, e.g. Anne is big), "
        "one-premise rules (if someone is big then they are [not] kind), a statement about one person, and its "
        "answer under open-world deduction: True if it follows, False if its negation follows, Unknown otherwise. "
        "Use single lowercase adjectives as attributes and capitalised first names as people. Answer with JSON "
        "only, matching the schema."
    ),
}


def request_messages(domain: str, index: int, seed: int) -> list[dict[str, str]]:
    """The request for problem `index`: a seeded topic and size keep the requests distinct."""
    rng = random.Random(f"generate-{domain}-{seed}-{index}")
    if domain == "arithmetic":
        ask = (
            f"Write problem {index}: a word problem about {rng.choice(_TOPICS)} with {rng.randint(2, 4)} operations "
            f"and {rng.randint(0, 2)} distractor facts."
        )
    else:
        ask = f"Write puzzle {index}: a theory with a proof of depth {rng.randint(1, 4)}, a few distractor rules and facts, answer {rng.choice(('True', 'False', 'Unknown'))}."
    schema = json.dumps(SCHEMAS[domain].model_json_schema())
    return [{"role": "system", "content": _SYSTEM[domain]}, {"role": "user", "content": f"{ask}\nJSON schema:\n{schema}"}]


class Rejected(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_solution(domain: str, text: str):
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    start, end = body.find("{"), body.rfind("}")
    try:
        return SCHEMAS[domain].model_validate(json.loads(body[start : end + 1] if start >= 0 and end > start else body))
    except (json.JSONDecodeError, ValidationError, TypeError) as e:
        raise Rejected("invalid_answer", f"not a valid {domain} solution: {str(e).splitlines()[0]}") from e


# ---------------------------------------------------------------------------------------------
# Executing the structure

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def parses(domain: str, text: str) -> bool:
    """Whether `text` parses as a solution of `domain` (what the cache may keep)."""
    try:
        parse_solution(domain, text)
    except Rejected:
        return False
    return True


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def execute_arithmetic(solution: ArithmeticSolution, problem_id: str, source: str) -> Problem:
    """The Problem the solution describes, or Rejected with the reason."""
    ids = [f.id for f in solution.facts] + [d.id for d in solution.distractors]
    if len(set(ids + [o.id for o in solution.operations])) != len(ids) + len(solution.operations):
        raise Rejected("unsolvable", "an id is used twice")
    values = {f.id: f.value for f in solution.facts}
    for operation in solution.operations:
        missing = [i for i in operation.inputs if i not in values]
        if missing:
            raise Rejected("unsolvable", f"operation {operation.id} uses {missing[0]!r}, which is no fact or earlier operation")
        a, b = (values[i] for i in operation.inputs)
        if operation.op == "/" and b == 0:
            raise Rejected("unsolvable", f"operation {operation.id} divides by zero")
        result = _OPS[operation.op](a, b)
        if not _close(result, operation.value):
            raise Rejected("inconsistent", f"operation {operation.id}: {_format(a)} {operation.op} {_format(b)} = {_format(result)}, not {_format(operation.value)}")
        values[operation.id] = result
    final = solution.operations[-1].value
    if not _close(final, solution.answer):
        raise Rejected("inconsistent", f"the answer {_format(solution.answer)} is not the last operation's value {_format(final)}")
    stated = numbers(solution.question)  # dca.measures: the project's one number pattern
    for fact in solution.facts + solution.distractors:
        if not any(_close(fact.value, n) for n in stated):
            raise Rejected("inconsistent", f"fact {fact.id} ({_format(fact.value)}) is not stated in the question")
    used = {i for o in solution.operations for i in o.inputs}
    unused = [f.id for f in solution.facts if f.id not in used]
    if unused:
        raise Rejected("ambiguous", f"needed fact {unused[0]} is used by no operation")
    given = [f.value for f in solution.facts + solution.distractors]
    if len({_format(v) for v in given}) < len(given):
        raise Rejected("ambiguous", "two stated numbers are equal")
    if {_format(o.value) for o in solution.operations} & {_format(v) for v in given}:
        raise Rejected("ambiguous", "a stated number equals an intermediate value")
    return Problem(
        id=problem_id,
        source=source,
        question=solution.question,
        answer=_format(final),
        facts=[Fact(id=f.id, text=f.text, value=f.value) for f in solution.facts],
        distractors=[Fact(id=d.id, text=d.text, value=d.value) for d in solution.distractors],
        operations=[Operation(id=o.id, op=o.op, inputs=list(o.inputs), value=values[o.id], description=o.description) for o in solution.operations],
        intermediate_values=[values[o.id] for o in solution.operations],
        domain="arithmetic",
        metadata={"generated": True},
    )


def execute_logic(solution: LogicSolution, problem_id: str, source: str) -> Problem:
    """A logic Problem (text rendered from the structure, proof DAG traced), or Rejected."""
    word = re.compile(r"^[a-z][a-z-]*$")
    people = sorted({f.person for f in solution.facts} | {solution.statement.person})
    attributes = [f.attribute for f in solution.facts] + [r.premise for r in solution.rules] + [r.attribute for r in solution.rules]
    if not all(word.match(a) for a in attributes + [solution.statement.attribute]) or not all(re.match(r"^[A-Z][a-z]+$", p) for p in people):
        raise Rejected("invalid_answer", "attributes must be single lowercase words and people capitalised names")
    if solution.statement.person not in {f.person for f in solution.facts}:
        raise Rejected("unsolvable", f"the statement is about {solution.statement.person}, of whom the theory says nothing")
    facts = [{"id": f"F{i}", "person": f.person, "attribute": f.attribute, "negated": False, "text": literal_text(f.person, f.attribute, False) + ".", "distractor": False}
             for i, f in enumerate(solution.facts)]  # fmt: skip
    rules = [{"id": f"R{i}", "premise": r.premise, "attribute": r.attribute, "negated": r.negated, "text": rule_text(r.premise, r.attribute, r.negated), "distractor": False}
             for i, r in enumerate(solution.rules)]  # fmt: skip
    try:
        closure = forward_chain(facts, rules, people)
    except ValueError as e:
        raise Rejected("inconsistent", str(e)) from e
    s = solution.statement
    value = closure[s.person].get(s.attribute)
    computed = "Unknown" if value is None else ("True" if value == (not s.negated) else "False")
    if computed != solution.answer:
        raise Rejected("inconsistent", f"the statement is {computed} by forward chaining, not {solution.answer}")
    proof, blocked = _trace_proof(facts, rules, s.person, s.attribute, value)
    used = {n.get("rule") for n in proof} | {n.get("fact") for n in proof} | {blocked}
    for item in facts + rules:
        item["distractor"] = item["id"] not in used
    sentences = [f["text"] for f in facts] + [r["text"] for r in rules]
    random.Random(problem_id).shuffle(sentences)
    query = {"person": s.person, "attribute": s.attribute, "negated": s.negated, "text": literal_text(s.person, s.attribute, s.negated) + "."}
    question = " ".join(sentences) + "\nBased only on these statements, is the following true, false, or unknown? " + query["text"]
    logic = {
        "people": people, "attributes": sorted(set(attributes + [s.attribute])), "facts": facts, "rules": rules, "query": query,
        "proof": proof, "blocked_rule": blocked, "closure": closure, "depth": sum("rule" in n for n in proof),
    }  # fmt: skip
    return Problem(id=problem_id, source=source, question=question, answer=computed, domain="logic", metadata={"generated": True, "logic": logic})


def _trace_proof(facts: list[dict], rules: list[dict], person: str, attribute: str, value: bool | None):
    """The proof DAG of the statement (one derivation, shortest first), or, for Unknown, the
    derivable chain the search exhausts and a rule that would decide it (blocked)."""
    nodes: dict[str, dict] = {}
    order: list[dict] = []
    frontier = []
    for f in facts:
        if f["person"] == person and f["attribute"] not in nodes:
            node = {"id": f"P{len(order)}", "person": person, "attribute": f["attribute"], "negated": False, "fact": f["id"]}
            nodes[f["attribute"]] = node
            order.append(node)
            frontier.append(f["attribute"])
    while frontier:  # breadth first: each literal by its shortest derivation
        premise = frontier.pop(0)
        for rule in rules:
            if rule["premise"] == premise and rule["attribute"] not in nodes:
                node = {"id": f"P{len(order)}", "person": person, "attribute": rule["attribute"], "negated": rule["negated"],
                        "rule": rule["id"], "premise": nodes[premise]["id"]}  # fmt: skip
                nodes[rule["attribute"]] = node
                order.append(node)
                if not rule["negated"]:
                    frontier.append(rule["attribute"])
    if value is None:
        blocked = next((r["id"] for r in rules if r["attribute"] == attribute), None)
        return order, blocked
    needed, stack = set(), [nodes[attribute]["id"]]
    by_id = {n["id"]: n for n in order}
    while stack:
        node_id = stack.pop()
        needed.add(node_id)
        if "premise" in by_id[node_id]:
            stack.append(by_id[node_id]["premise"])
    return [n for n in order if n["id"] in needed], None


# ---------------------------------------------------------------------------------------------
# Near duplicates


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass
class DuplicateIndex:
    """Questions to compare against: (source, id, normalised text)."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add(self, source: str, problem_id: str, question: str) -> None:
        text = normalise(question)
        self.entries.append((source, problem_id, question))
        self.texts.append(text)

    def closest(self, question: str) -> dict[str, Any] | None:
        if not self.texts:
            return None
        found = process.extractOne(normalise(question), self.texts, scorer=fuzz.ratio)
        if found is None:
            return None
        _, score, index = found
        source, problem_id, text = self.entries[index]
        return {"source": source, "id": problem_id, "text": text, "score": round(float(score), 1)}


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class GenerationResult:
    problems: list[Problem]
    report: dict[str, Any]


def generate_problems_with(client, domain: str, count: int, *, index: DuplicateIndex, seed: int = 0, threshold: float = DEFAULT_THRESHOLD,
                           model_name: str = "") -> GenerationResult:  # fmt: skip
    """Ask `client` (a `dca.llm.LLMClient`) for `count` problems concurrently, execute and
    deduplicate them in request order. Never raises for a bad answer: it is counted."""
    if domain not in DOMAINS:
        raise ValueError(f"dca generate writes {' or '.join(DOMAINS)} problems, not {domain!r}")

    async def ask(i: int):
        try:
            return await client.generate(request_messages(domain, i, seed), namespace=GENERATE_PROTOCOL,
                                         json_schema=SCHEMAS[domain].model_json_schema(),
                                         accept=lambda text: parses(domain, text))  # an unparsable answer is not cached  # fmt: skip
        except LLMCallFailed as e:
            return Rejected("call_failed", f"{e.kind}: {e}")

    async def every():
        return await asyncio.gather(*(ask(i) for i in range(count)))

    answers = run_sync(every())
    counts = {reason: 0 for reason in REASONS}
    items, accepted = [], []
    source = f"generated/{model_name or domain}"
    for i, answer in enumerate(answers):
        problem_id = f"gen-{domain}-s{seed}-{i:05d}"
        item: dict[str, Any] = {"id": problem_id, "accepted": False, "reason": None, "detail": None, "closest": None}
        try:
            if isinstance(answer, Rejected):
                raise answer
            solution = parse_solution(domain, answer.text)
            if domain == "arithmetic":  # a copied question is contamination whatever its structure
                _check_duplicate(index, solution.question, threshold, item)
                problem = execute_arithmetic(solution, problem_id, source)
            else:  # the question text is rendered from the structure
                problem = execute_logic(solution, problem_id, source)
                _check_duplicate(index, problem.question, threshold, item)
        except Rejected as e:
            counts[e.reason] += 1
            item.update(reason=e.reason, detail=str(e))
            items.append(item)
            continue
        problem.metadata["closest_match"] = item["closest"]
        index.add("generated (this run)", problem.id, problem.question)
        accepted.append(problem)
        item["accepted"] = True
        items.append(item)
    stats = client.stats
    report = {
        "domain": domain, "requested": count, "accepted": len(accepted), "rejected": count - len(accepted),
        "rejected_by_reason": counts, "threshold": threshold, "compared_against": len(index.texts) - len(accepted),
        "llm": stats.as_dict() if hasattr(stats, "as_dict") else {}, "problems": items,
    }  # fmt: skip
    return GenerationResult(problems=accepted, report=report)


def _check_duplicate(index: DuplicateIndex, question: str, threshold: float, item: dict[str, Any]) -> None:
    closest = index.closest(question)
    item["closest"] = closest
    if closest is not None and closest["score"] >= threshold:
        raise Rejected("near_duplicate", f"{closest['score']:.0f}% like {closest['source']} {closest['id']}")


def build_index(*, gsm8k: bool, against: list[str]) -> DuplicateIndex:
    """GSM8K train and test (when `gsm8k`) and every problems file in `against`."""
    index = DuplicateIndex()
    if gsm8k:
        for split in ("train", "test"):
            for problem in load("gsm8k", split):
                index.add(f"gsm8k-{split}", problem.id, problem.question)
    for path in against:
        for problem in read_problems_file(path):
            index.add(path, problem.id, problem.question)
    return index


def run_generate(*, reviewers: str, generator: str, domain: str, count: int, out, seed: int = 0, threshold: float = DEFAULT_THRESHOLD,
                 against: list[str] | None = None, gsm8k: bool = True, cache_path=None, log=print) -> GenerationResult:  # fmt: skip
    """`dca generate`: load the generator spec, compare against GSM8K and earlier sets, ask,
    execute, write ``out`` (accepted problems) and ``<out>.report.json``."""
    if domain not in DOMAINS:
        raise UserError(f"dca generate writes {' or '.join(DOMAINS)} problems, not {domain!r}")
    if count < 1:
        raise UserError("--count must be at least 1")
    if not 0 <= threshold <= 100:
        raise UserError(f"--threshold must lie in 0..100, got {threshold}")
    (spec,) = load_reviewers(reviewers, only=[generator])
    if not spec.is_llm:
        raise UserError(f"generator {generator!r} has backend {spec.backend!r}; problems are written by an LLM backend (openai, anthropic, hf)")
    out = Path(out)
    report_path = out.with_name(out.name + ".report.json")
    index = build_index(gsm8k=gsm8k, against=list(against or []))
    log(f"comparing against {len(index.texts)} known questions; asking {generator} for {count} {domain} problems")
    client = LLMClient.from_spec(spec, cache=ReviewCache(cache_path) if cache_path else None)
    try:
        result = generate_problems_with(client, domain, count, index=index, seed=seed, threshold=threshold, model_name=spec.model or generator)
    finally:
        client.close()
    write_jsonl(out, result.problems)
    write_json(report_path, result.report)
    return result
