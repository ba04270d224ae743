"""The logic oracle: labels a trace on a logic problem (`dca.problems.logic`) from its proof.

The theory's vocabulary is closed (its people and attributes), so the oracle reads each unit
for *claims*, "<person> is [not] <attribute>" (a pronoun, "they", "she", "he", "it", stands
for the last person named), and for *rule mentions*, the two attributes of a rule named in
one unit. A claim inside a hedge ("nothing says that Anne is big", "it is unknown",
"cannot tell"), right after "whether" or "if", or in a question is not asserted. Each unit gets one (function, contribution) label by the
first rule that applies:

1. **Answer statement** (``Answer: True`` and the lenient forms, `dca.problems.labels`):
   ``conclusion/solved`` when the label is right, else ``conclusion/error``.
2. **Wrong inference**: an asserted claim that the theory does not entail (forward chaining
   over every person and rule, recorded on the problem): ``computation/error``. So is a hedge
   about the statement when the statement is provable (True or False).
3. **On the proof**: an asserted claim that is a derived node of the proof DAG:
   ``computation/essential``, or ``computation/solved`` for the node that decides the
   statement (True / False); a claim that is only the proof's given fact:
   ``given_fact/indirect``. For Unknown, a hedge about the statement or the blocked rule's
   missing premise is ``computation/essential`` (it is the reason for the verdict).
4. **Off the proof**: a correct claim that is a distractor fact: ``given_fact/irrelevant``;
   another correct claim (an inference with a distractor rule, or about someone else):
   ``computation/irrelevant``.
5. **Rule mentions without claims**: a rule of the proof (or the blocked rule):
   ``given_fact/indirect``; a distractor rule: ``given_fact/irrelevant``.
6. **Verdicts and the rest**: a sentence that calls the statement true / false / unknown
   without ``Answer:`` is ``conclusion/essential`` when right and ``conclusion/error`` when
   wrong; a restatement of the task (the statement's person and attribute with "whether",
   "determine", "question"): ``task_statement/indirect``; anything else: ``other/irrelevant``.

Contiguous units with the same label form one step. Dependencies follow the proof DAG: a
step that derives node n depends on the latest earlier steps that stated n's premise node
or n's rule; a verdict or answer depends on the latest step that established the deciding
node (or, for Unknown, the hedge about it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...problems.labels import extract_label
from ...records import Problem, Review, Step, Unit

_PRONOUNS = ("they", "she", "he", "it")
_HEDGE = re.compile(
    r"\b(?:nothing (?:says|states|tells)|no (?:rule|fact|statement)|not (?:known|stated|given|determined|mentioned|say)|"
    r"unknown|cannot|can't|can not|don't know|do not know|doesn't (?:say|tell)|does not (?:say|tell|apply)|"
    r"undetermined|not enough|no way)\b",
    re.IGNORECASE,
)
_GENERIC = re.compile(r"\b(?:someone|something|anyone|anything|everyone|everything|people|things|somebody)\b", re.IGNORECASE)
_OPEN = re.compile(r"\b(?:whether|if)\s+$", re.IGNORECASE)
_VERDICT = re.compile(r"\b(?:is|be|are)\s+(true|false|unknown|uncertain)\b", re.IGNORECASE)
_TASK = re.compile(r"\b(?:whether|determine|question|we need|need to|is the following)\b", re.IGNORECASE)


@dataclass
class _Label:
    function: str
    contribution: str
    reason: str
    provides: set[str] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)


def _key(person: str, attribute: str, negated: bool) -> str:
    return f"{person}|{attribute}|{'-' if negated else '+'}"


class LogicOracleReviewer:
    """Reviews traces on logic problems from their recorded proof (module docstring)."""

    name = "oracle"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        logic = problem.metadata.get("logic")
        if not logic or not logic.get("proof"):
            return Review.failed(trace_id, self.name, units, f"problem {problem.id} has no recorded proof (not a dca.problems.logic problem)")
        labels = _LogicLabeller(problem, logic).label(trace_completion, units)
        return Review(trace_id=trace_id, reviewer=self.name, units=units, steps=group_labels(labels), metadata={"problem_id": problem.id})


class _LogicLabeller:
    def __init__(self, problem: Problem, logic: dict) -> None:
        self.problem = problem
        self.answer = problem.answer
        self.people = list(logic["people"])
        self.attributes = list(logic["attributes"])
        self.closure = logic["closure"]
        self.rules = {r["id"]: r for r in logic["rules"]}
        self.facts = {_key(f["person"], f["attribute"], f["negated"]): f for f in logic["facts"]}
        self.query = logic["query"]
        self.blocked = self.rules.get(logic.get("blocked_rule") or "")
        self.nodes = {_key(n["person"], n["attribute"], n["negated"]): n for n in logic["proof"]}
        self.node_keys = {n["id"]: _key(n["person"], n["attribute"], n["negated"]) for n in logic["proof"]}
        self.path_rules = {n["rule"] for n in logic["proof"] if "rule" in n} | ({self.blocked["id"]} if self.blocked else set())
        last = logic["proof"][-1]
        self.deciding = _key(last["person"], last["attribute"], last["negated"]) if self.answer != "Unknown" else None
        names = "|".join(re.escape(p) for p in self.people + [x.capitalize() for x in _PRONOUNS] + list(_PRONOUNS))
        attrs = "|".join(re.escape(a) for a in sorted(self.attributes, key=len, reverse=True))
        self.claim = re.compile(rf"\b({names})\s+(?:is|are)\s+(?:also\s+)?(not\s+)?(?:also\s+)?({attrs})\b")
        self.person_word = re.compile(rf"\b({'|'.join(re.escape(p) for p in self.people)})\b")
        self.attribute_word = re.compile(rf"\b({attrs})\b", re.IGNORECASE)

    def label(self, completion: str, units: list[Unit]) -> list[_Label]:
        answer = extract_label(completion, ("True", "False", "Unknown"))
        self.last_person: str | None = None
        labels = []
        for unit in units:
            is_answer = answer.span is not None and unit.start < answer.span[1] and answer.span[0] < unit.end
            labels.append(self._label_unit(unit.text, answer.answer if is_answer else None))
        return labels

    def _claims(self, text: str) -> list[tuple[str, str, bool]]:
        claims = []
        if text.rstrip().endswith("?"):
            return claims  # a question asserts nothing
        for match in self.claim.finditer(text):
            who, negated, attribute = match.group(1), bool(match.group(2)), match.group(3)
            if who.lower() in _PRONOUNS:
                named = self.person_word.findall(text, 0, match.start())
                antecedent = named[-1] if named else self.last_person
                if antecedent is None or _GENERIC.search(text, 0, match.start()):
                    continue  # "if someone is big then they are kind" speaks of anyone
                who = antecedent
            if _OPEN.search(text, 0, match.start()):
                continue  # "whether Anne is red", "if Anne is red": asked or supposed, not asserted
            claims.append((who, attribute, negated))
        return claims

    def _label_unit(self, text: str, answer: str | None) -> _Label:
        mentioned = self.person_word.findall(text)
        claims = self._claims(text)
        if mentioned:
            self.last_person = mentioned[-1]
        decided_by = {self.deciding} if self.deciding else {"unknown"}
        if answer is not None:
            if answer.lower() == self.answer.lower():
                return _Label("conclusion", "solved", f"answers {answer}, which is right", needs=decided_by)
            return _Label("conclusion", "error", f"answers {answer}; the statement is {self.answer}", needs=decided_by)

        attributes = {a.lower() for a in self.attribute_word.findall(text)}
        hedged = bool(_HEDGE.search(text))
        about_query = self.query["attribute"] in attributes and self.query["person"] in (mentioned or [self.last_person])
        if hedged:
            blocked_premise = self.blocked["premise"] if self.blocked else None
            if self.answer == "Unknown" and (about_query or (blocked_premise in attributes)):
                return _Label("computation", "essential", "no rule decides the statement: the reason it is unknown",
                              provides={"unknown"}, needs=set(self._premise_keys()))  # fmt: skip
            if about_query and self.answer != "Unknown":
                return _Label("computation", "error", f"the statement is provable ({self.answer}), not undecided")
            claims = []  # other hedges assert nothing
        verdict = _VERDICT.search(text)
        if verdict and not claims:
            said = {"uncertain": "unknown"}.get(verdict.group(1).lower(), verdict.group(1).lower())
            if said == self.answer.lower():
                return _Label("conclusion", "essential", f"calls the statement {said}, which is right", needs=decided_by)
            if about_query or self.query["person"] in mentioned:
                return _Label("conclusion", "error", f"calls the statement {said}; it is {self.answer}", needs=decided_by)

        if claims:
            wrong = [c for c in claims if self.closure.get(c[0], {}).get(c[1]) is not (not c[2])]
            if wrong:
                who, attribute, negated = wrong[0]
                return _Label("computation", "error", f"'{who} is {'not ' if negated else ''}{attribute}' does not follow")
            # The last claim is what the unit concludes ("Because Anne is big and big people
            # are kind, Anne is kind."); earlier claims restate its premises.
            keys = {_key(*c) for c in claims}
            conclusion = _key(*claims[-1])
            node = self.nodes.get(conclusion)
            if node is not None and "rule" in node:
                needs = {self.node_keys[node["premise"]], node["rule"]} - keys
                rules = self._mentioned_rules(attributes)
                if conclusion == self.deciding:
                    return _Label("computation", "solved", "derives the literal that decides the statement", provides=keys | rules, needs=needs)
                return _Label("computation", "essential", "a rule application on the proof", provides=keys | rules, needs=needs)
            if node is not None:
                return _Label("given_fact", "indirect", "states the fact the proof starts from", provides=keys)
            if conclusion in self.facts and len(keys) == 1:
                return _Label("given_fact", "irrelevant", "a distractor fact", provides=keys)
            return _Label("computation", "irrelevant", "a correct inference off the proof", provides=keys)

        rules = self._mentioned_rules(attributes)
        if rules:
            if rules & self.path_rules:
                return _Label("given_fact", "indirect", "states a rule of the proof", provides=rules)
            return _Label("given_fact", "irrelevant", "states a distractor rule", provides=rules)
        if about_query and _TASK.search(text) or (self.query["attribute"] in attributes and "?" in text):
            return _Label("task_statement", "indirect", "restates the statement to judge")
        return _Label("other", "irrelevant", "no claim, rule or verdict")

    def _mentioned_rules(self, attributes: set[str]) -> set[str]:
        return {r["id"] for r in self.rules.values() if r["premise"] in attributes and r["attribute"] in attributes}

    def _premise_keys(self) -> list[str]:
        return list(self.node_keys.values())[-1:]


def group_labels(labels: list) -> list[Step]:
    """Contiguous units with the same (function, contribution) as steps; each step depends
    on the latest earlier steps that provided what its units need."""
    steps: list[Step] = []
    spans: list[tuple[int, int, object]] = []
    for i, label in enumerate(labels):
        if spans and (labels[spans[-1][0]].function, labels[spans[-1][0]].contribution) == (label.function, label.contribution):
            spans[-1] = (spans[-1][0], i, None)
        else:
            spans.append((i, i, None))
    provider: dict[str, int] = {}
    for index, (first, last, _) in enumerate(spans):
        needs = set().union(*(labels[i].needs for i in range(first, last + 1)))
        depends = sorted({provider[n] for n in needs if n in provider})
        head = labels[first]
        steps.append(Step(index=index, first_unit=first, last_unit=last, function=head.function,
                          contribution=head.contribution, depends_on=depends, reason=head.reason))  # fmt: skip
        for i in range(first, last + 1):
            for p in labels[i].provides:
                provider[p] = index
    return steps
