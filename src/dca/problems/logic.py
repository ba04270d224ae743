"""Seeded deductive-logic problems with a recorded proof, in the style of ProofWriter and
ProntoQA, and their gold chains of thought.

A problem is a small theory (facts "Anne is big." and rules "If someone is big then they
are kind.", "Kind people are not red.") and a statement about one person, the *subject*,
to be judged True, False or Unknown. As in ProofWriter's open-world setting, False means
that the negation is provable and Unknown that neither the statement nor its negation is.

Construction, for a depth d in ``[min_depth, max_depth]`` (1 to 5):

- a chain of attributes c0 ... cd; the fact "S is c0"; rules c0 -> c1, ..., c(d-2) -> c(d-1);
- **True / False**: a last rule c(d-1) -> cd or c(d-1) -> not cd, and a statement "S is
  cd" or "S is not cd"; the proof derives cd (or not cd) in d rule applications;
- **Unknown**: a last rule b -> cd (or not cd) whose premise b nothing gives the subject
  (a *blocked* rule); the proof records the derivable chain c0 ... c(d-1) and the blocked
  rule, as a reasoner must exhaust it to answer Unknown;
- **distractors**: rules between other attributes (some of them applying to the subject,
  so that they derive true but irrelevant conclusions), and facts about other people or
  about the subject's other attributes. They never touch cd or b.

The generator checks its own result by forward chaining over the whole theory (every
person, every rule): the subject's derivable literals must decide the statement exactly as
constructed, and no person may be derivably both ``a`` and ``not a`` (else it retries).
The theory's sentences are shuffled.

`Problem.metadata["logic"]` records the structure the oracle reviewer
(`dca.domains.oracles.logic`) and the gold-CoT renderer read:

- ``people`` and ``attributes``: the closed vocabulary of the theory;
- ``facts``: ``{id, person, attribute, negated, text, distractor}``;
- ``rules``: ``{id, premise, attribute, negated, text, distractor}``;
- ``query``: ``{person, attribute, negated, text}``;
- ``proof``: the proof DAG in derivation order, ``{id, person, attribute, negated, fact}``
  for a given fact and ``{id, ..., rule, premise}`` for a rule application (``premise`` is
  the id of the proof node it uses);
- ``blocked_rule``: the rule id whose premise is missing (Unknown), else None;
- ``closure``: person -> attribute -> True / False, every derivable literal;
- ``depth``: d.

Departures from ProofWriter: one-premise rules only (no conjunctions), attributes only
(no relations), no negated facts; these keep the oracle's reading of a chain of thought
unambiguous.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from .answer import ANSWER_PREFIX
from ..records import Problem
from .gold import GoldCoT, GoldStep

PEOPLE = ("Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona", "Gary", "Harry", "Iris", "Jack")
ATTRIBUTES = (
    "big", "blue", "cold", "furry", "green", "kind", "nice", "quiet", "red", "rough",
    "round", "smart", "white", "young", "happy", "tall", "shy", "loud", "calm", "brave",
)  # fmt: skip
LABELS = ("True", "False", "Unknown")

_RULE_FORMS = (
    "If someone is {p} then they are {n}{c}.",
    "{P} people are {n}{c}.",
    "All {p} people are {n}{c}.",
)
_MAX_TRIES = 50


@dataclass
class LogicConfig:
    """Settings of the logic problem generator."""

    min_depth: int = 1
    """Fewest rule applications on the proof."""
    max_depth: int = 5
    """Most rule applications on the proof (at most 5)."""
    distractor_rules: tuple[int, int] = (1, 3)
    """Inclusive range of distractor rules."""
    distractor_facts: tuple[int, int] = (1, 3)
    """Inclusive range of distractor facts."""
    answers: tuple[str, ...] = LABELS
    """The answers drawn from (uniformly), a subset of True, False, Unknown."""
    seed: int = 0

    def __post_init__(self) -> None:
        self.distractor_rules = tuple(self.distractor_rules)
        self.distractor_facts = tuple(self.distractor_facts)
        self.answers = tuple(self.answers)
        if not 1 <= self.min_depth <= self.max_depth <= 5:
            raise ValueError(f"LogicConfig needs 1 <= min_depth <= max_depth <= 5, got {self.min_depth}, {self.max_depth}")
        for name in ("distractor_rules", "distractor_facts"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not 0 <= low_high[0] <= low_high[1] <= 6:
                raise ValueError(f"LogicConfig.{name} must be a range (low, high) with 0 <= low <= high <= 6, got {low_high!r}")
        if not self.answers or set(self.answers) - set(LABELS):
            raise ValueError(f"LogicConfig.answers must be a non-empty subset of {LABELS}, got {self.answers!r}")


def generate_logic_problems(n: int, config: LogicConfig) -> list[Problem]:
    """`n` problems with ids ``logic-s{seed}-{i:05d}``; problem i depends only on the seed
    and i."""
    if n < 0:
        raise ValueError(f"generate_logic_problems needs n >= 0, got {n}")
    return [_generate_one(i, config) for i in range(n)]


def rule_text(premise: str, attribute: str, negated: bool, form: int = 0) -> str:
    return _RULE_FORMS[form].format(p=premise, P=premise.capitalize(), c=attribute, n="not " if negated else "")


def literal_text(person: str, attribute: str, negated: bool) -> str:
    return f"{person} is {'not ' if negated else ''}{attribute}"


def forward_chain(facts: list[dict], rules: list[dict], people: list[str]) -> dict[str, dict[str, bool]]:
    """Every derivable literal: person -> attribute -> True (is) / False (is not).
    Raises ValueError on a contradiction."""
    known: dict[str, dict[str, bool]] = {p: {} for p in people}
    for f in facts:
        known[f["person"]][f["attribute"]] = not f["negated"]
    changed = True
    while changed:
        changed = False
        for person in people:
            for rule in rules:
                if known[person].get(rule["premise"]) is True:
                    value = not rule["negated"]
                    current = known[person].get(rule["attribute"])
                    if current is None:
                        known[person][rule["attribute"]] = value
                        changed = True
                    elif current != value:
                        raise ValueError(f"contradiction: {person} is both {rule['attribute']} and not")
    return known


def _generate_one(index: int, config: LogicConfig) -> Problem:
    rng = random.Random(f"logic-{config.seed}-{index}")
    depth = rng.randint(config.min_depth, config.max_depth)
    answer = rng.choice(config.answers)
    n_rules = rng.randint(*config.distractor_rules)
    n_facts = rng.randint(*config.distractor_facts)
    for _ in range(_MAX_TRIES):
        try:
            theory = _theory(rng, depth, answer, n_rules, n_facts)
        except ValueError:  # a contradiction among distractors: draw again
            continue
        return _to_problem(f"logic-s{config.seed}-{index:05d}", theory, config, rng)
    raise RuntimeError(f"no consistent logic problem after {_MAX_TRIES} tries (seed {config.seed}, index {index})")


def _theory(rng: random.Random, depth: int, answer: str, n_rules: int, n_facts: int) -> dict[str, Any]:
    people = rng.sample(PEOPLE, 4)
    subject = people[0]
    attributes = rng.sample(ATTRIBUTES, len(ATTRIBUTES))
    chain, blocked_premise = attributes[: depth + 1], attributes[depth + 1]
    spare = attributes[depth + 2 :]
    facts: list[dict] = []
    rules: list[dict] = []

    def add_fact(person: str, attribute: str, distractor: bool) -> dict:
        fact = {"id": f"F{len(facts)}", "person": person, "attribute": attribute, "negated": False,
                "text": literal_text(person, attribute, False) + ".", "distractor": distractor}  # fmt: skip
        facts.append(fact)
        return fact

    def add_rule(premise: str, attribute: str, negated: bool, distractor: bool) -> dict:
        rule = {"id": f"R{len(rules)}", "premise": premise, "attribute": attribute, "negated": negated,
                "text": rule_text(premise, attribute, negated, rng.randrange(len(_RULE_FORMS))), "distractor": distractor}  # fmt: skip
        rules.append(rule)
        return rule

    start = add_fact(subject, chain[0], False)
    proof = [{"id": "P0", "person": subject, "attribute": chain[0], "negated": False, "fact": start["id"]}]
    for i in range(depth - 1):
        rule = add_rule(chain[i], chain[i + 1], False, False)
        proof.append({"id": f"P{len(proof)}", "person": subject, "attribute": chain[i + 1], "negated": False,
                      "rule": rule["id"], "premise": proof[-1]["id"]})  # fmt: skip
    last_negated = rng.random() < 0.5
    blocked_rule = None
    if answer == "Unknown":
        blocked_rule = add_rule(blocked_premise, chain[depth], last_negated, False)["id"]
        query_negated = rng.random() < 0.5
    else:
        rule = add_rule(chain[depth - 1], chain[depth], last_negated, False)
        proof.append({"id": f"P{len(proof)}", "person": subject, "attribute": chain[depth], "negated": last_negated,
                      "rule": rule["id"], "premise": proof[-1]["id"]})  # fmt: skip
        query_negated = last_negated if answer == "True" else not last_negated

    # Distractor rules: premises among the spare attributes or the chain before its last
    # link (so some apply to the subject); conclusions among the spare attributes only.
    premises = spare + chain[: max(1, depth - 1)]
    for _ in range(n_rules):
        premise = rng.choice(premises)
        conclusion = rng.choice([a for a in spare if a != premise])
        add_rule(premise, conclusion, rng.random() < 0.3, True)
    for _ in range(n_facts):
        if rng.random() < 0.7:
            add_fact(rng.choice(people[1:]), rng.choice(chain + [blocked_premise] + spare), True)
        else:
            add_fact(subject, rng.choice(spare), True)
    closure = forward_chain(facts, rules, people)
    decided = closure[subject].get(chain[depth])
    expected = None if answer == "Unknown" else not last_negated
    if decided != expected or closure[subject].get(blocked_premise) is not None:
        raise ValueError("a distractor decided the statement")
    sentences = [f["text"] for f in facts] + [r["text"] for r in rules]
    rng.shuffle(sentences)
    return {
        "people": people, "attributes": chain + [blocked_premise] + spare, "facts": facts, "rules": rules,
        "query": {"person": subject, "attribute": chain[depth], "negated": query_negated,
                  "text": literal_text(subject, chain[depth], query_negated) + "."},
        "proof": proof, "blocked_rule": blocked_rule, "closure": closure, "depth": depth,
        "answer": answer, "sentences": sentences,
    }  # fmt: skip


def _to_problem(problem_id: str, theory: dict[str, Any], config: LogicConfig, rng: random.Random) -> Problem:
    sentences = theory.pop("sentences")
    answer = theory.pop("answer")
    question = (
        " ".join(sentences)
        + "\nBased only on these statements, is the following true, false, or unknown? "
        + theory["query"]["text"]
    )
    return Problem(
        id=problem_id,
        source="logic",
        question=question,
        answer=answer,
        domain="logic",
        metadata={
            "config": dataclasses.asdict(config),
            "difficulty": {"depth": theory["depth"], "distractor_rules": sum(r["distractor"] for r in theory["rules"]),
                           "distractor_facts": sum(f["distractor"] for f in theory["facts"])},  # fmt: skip
            "logic": theory,
        },
    )


# ---------------------------------------------------------------------------------------------
# Gold chains of thought

#: Roles of logic gold steps (`GoldStep.role`); the first three are useful.
ROLES = ("given_fact", "computation", "conclusion", "irrelevant_fact", "irrelevant_rule", "irrelevant_computation")


def _application(person: str, premise: str, attribute: str, negated: bool) -> str:
    n = "not " if negated else ""
    return f"Because {person} is {premise} and {premise} people are {n}{attribute}, {person} is {n}{attribute}."


def render_logic_gold_cot(problem: Problem, *, irrelevant_rate: float = 0.0, rng: random.Random) -> GoldCoT:
    """A correct chain of thought for a logic problem: the subject's fact, each rule
    application of the proof (one sentence each), for Unknown a sentence saying why the
    blocked rule does not apply, a verdict sentence, then ``Answer: <label>``. Between two
    useful steps, with probability `irrelevant_rate`, one irrelevant step: a distractor
    fact, a distractor rule, or a correct inference with a distractor rule."""
    if not 0.0 <= irrelevant_rate <= 1.0:
        raise ValueError(f"irrelevant_rate must lie in [0, 1], got {irrelevant_rate}")
    logic = problem.metadata.get("logic")
    if not logic:
        raise ValueError(f"problem {problem.id} is not a logic problem from dca.problems.logic")
    rules = {r["id"]: r for r in logic["rules"]}
    nodes = {p["id"]: p for p in logic["proof"]}
    useful: list[GoldStep] = []
    for node in logic["proof"]:
        if "fact" in node:
            useful.append(GoldStep(text=literal_text(node["person"], node["attribute"], node["negated"]) + ".", role="given_fact"))
        else:
            premise = nodes[node["premise"]]
            useful.append(GoldStep(text=_application(node["person"], premise["attribute"], node["attribute"], node["negated"]), role="computation"))
    query = logic["query"]
    if problem.answer == "Unknown":
        blocked = rules[logic["blocked_rule"]]
        useful.append(GoldStep(
            text=f"Nothing says whether {query['person']} is {blocked['premise']}, so no rule decides whether {query['person']} is {query['attribute']}.",
            role="computation",
        ))  # fmt: skip
    verdict = {"True": "true", "False": "false", "Unknown": "unknown"}[problem.answer]
    n = "not " if query["negated"] else ""
    useful.append(GoldStep(text=f"So the claim of {query['person']} being {n}{query['attribute']} is {verdict}.", role="conclusion"))

    steps: list[GoldStep] = []
    for step in useful:
        if steps and rng.random() < irrelevant_rate:
            irrelevant = _irrelevant_step(logic, rng)
            if irrelevant is not None:
                steps.append(irrelevant)
        steps.append(step)
    steps.append(GoldStep(text=f"{ANSWER_PREFIX} {problem.answer}", role="conclusion"))
    text = " ".join(s.text for s in steps[:-1]) + "\n" + steps[-1].text
    return GoldCoT(text=text, steps=steps)


def _irrelevant_step(logic: dict[str, Any], rng: random.Random) -> GoldStep | None:
    facts = [f for f in logic["facts"] if f["distractor"]]
    rules = [r for r in logic["rules"] if r["distractor"]]
    inferences = [
        (person, rule) for rule in rules for person, known in logic["closure"].items()
        if known.get(rule["premise"]) is True
    ]  # fmt: skip
    kinds = (["irrelevant_fact"] if facts else []) + (["irrelevant_rule"] if rules else []) + (["irrelevant_computation"] if inferences else [])
    if not kinds:
        return None
    kind = rng.choice(kinds)
    if kind == "irrelevant_fact":
        return GoldStep(text=rng.choice(facts)["text"], role=kind)
    if kind == "irrelevant_rule":
        rule = rng.choice(rules)
        return GoldStep(text=rule_text(rule["premise"], rule["attribute"], rule["negated"], 0), role=kind)
    person, rule = rng.choice(inferences)
    return GoldStep(text=_application(person, rule["premise"], rule["attribute"], rule["negated"]), role=kind)
