"""The knights-and-knaves oracle: labels a trace on a reasoning-gym ``knights_knaves`` puzzle
from the puzzle's recorded solution and statements (`dca.problems.reasoning_gym`).

reasoning-gym's metadata gives the islanders' ``names``, the ``solution`` (True for a
truth-teller) and the two role words (``knight_knave_terms``: "hero" / "villain", "knight" /
"knave", ...). The oracle reads each unit for *claims* about an islander's role: a name
followed, within a few words, by a role word or by "telling the truth" / "lying" (a "not",
"n't" or "cannot" in between negates it). Quoted text (what an islander says) is not
asserted. Each unit gets one label by the first rule that applies:

1. **Answer statement** (the ``Answer:`` line): ``conclusion/solved`` when reasoning-gym's
   scorer gives full credit, else ``conclusion/error``.
2. **Supposition** ("if", "suppose", "assume", "would", "case"): exploring a case, the
   reasoning by contradiction the puzzle needs: ``computation/essential``.
3. **Wrong claim**: an asserted role that contradicts the solution: ``computation/error``.
4. **Correct claims**: ``computation/essential``.
5. **Restating a statement** (quotes, or says / said / claims / remarked / states / told):
   ``given_fact/indirect``.
6. Anything else: ``other/irrelevant``.

Contiguous units with the same label form one step; a step depends on the latest earlier
steps that made a claim or supposition about an islander it names. Departure: every
supposition counts as essential, also one that a solver did not need; the puzzles are small
(2 to 4 islanders), so case analysis is the proof.
"""

from __future__ import annotations

import re

from ...problems.reasoning_gym import check_reasoning_gym
from ...records import Problem, Review, Unit
from .logic import _Label, group_labels

_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")
_SUPPOSE = re.compile(r"\b(?:if|suppose|supposing|assume|assuming|would|case|let's say|hypothetically)\b", re.IGNORECASE)
_SAYS = re.compile(r"\b(?:says|said|claims|claimed|remarks|remarked|states|stated|told|tells|asserts|asserted|put it|commented|mentioned|exclaimed|noted)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|cannot|can't|isn't|isnt|never|no)\b|n't\b", re.IGNORECASE)


class KnightsKnavesOracleReviewer:
    """Reviews traces on reasoning-gym knights-and-knaves puzzles (module docstring)."""

    name = "oracle"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        entry = problem.metadata.get("entry", {})
        if not entry.get("names") or "solution" not in entry:
            return Review.failed(trace_id, self.name, units, f"problem {problem.id} has no knights-and-knaves solution in its metadata")
        answer = check_reasoning_gym(problem, trace_completion)
        names = [str(n) for n in entry["names"]]
        solution = dict(zip(names, _solution(entry["solution"])))
        terms = entry.get("knight_knave_terms", {})
        knight, knave = str(terms.get("knight", "knight")), str(terms.get("knave", "knave"))
        role = rf"(?:an?\s+)?({re.escape(knight)}s?|{re.escape(knave)}s?|telling the truth|truth-teller|truthful|lying|liar)"
        claim = re.compile(rf"\b({'|'.join(re.escape(n) for n in names)})\b((?:\W+\w+){{0,4}}?)\W+{role}\b", re.IGNORECASE)
        labels = []
        for unit in units:
            is_answer = answer.span is not None and unit.start < answer.span[1] and answer.span[0] < unit.end
            text = unit.text
            mentioned = {n for n in names if re.search(rf"\b{re.escape(n)}\b", text)}
            if is_answer:
                if answer.outcome == "correct":
                    labels.append(_Label("conclusion", "solved", "the scorer gives full credit", needs=set(names)))
                else:
                    labels.append(_Label("conclusion", "error", "the scorer does not give full credit", needs=set(names)))
                continue
            asserted = _QUOTED.sub(" ", text)
            claims = []
            for match in claim.finditer(asserted):
                who = next(n for n in names if n.lower() == match.group(1).lower())
                word = match.group(3).lower()
                truthful = word.startswith(knight.lower()) or word in ("telling the truth", "truth-teller", "truthful")
                if _NEGATION.search(match.group(2) or ""):
                    truthful = not truthful
                claims.append((who, truthful))
            if _SUPPOSE.search(asserted) and (claims or mentioned):
                labels.append(_Label("computation", "essential", "a case of the case analysis",
                                     provides={n for n, _ in claims} or mentioned, needs=mentioned))  # fmt: skip
                continue
            wrong = [(n, t) for n, t in claims if solution.get(n) is not None and solution[n] != t]
            if wrong:
                who, truthful = wrong[0]
                labels.append(_Label("computation", "error", f"{who} is not a {knight if truthful else knave}", needs=mentioned))
            elif claims:
                labels.append(_Label("computation", "essential", "a role that the solution confirms",
                                     provides={n for n, _ in claims}, needs=mentioned - {n for n, _ in claims}))  # fmt: skip
            elif mentioned and (_SAYS.search(text) or _QUOTED.search(text)):
                labels.append(_Label("given_fact", "indirect", "restates what an islander says", provides=set()))
            else:
                labels.append(_Label("other", "irrelevant", "no claim about an islander's role"))
        return Review(trace_id=trace_id, reviewer=self.name, units=units, steps=group_labels(labels), metadata={"problem_id": problem.id})


def _solution(solution) -> list[bool]:
    """reasoning-gym stores the solution as a tuple of booleans (JSON: a list, or its repr)."""
    if isinstance(solution, str):
        values = [part.strip() == "True" for part in solution.strip("()[] ").split(",") if part.strip()]
    else:
        values = [bool(v) for v in solution]
    return values
