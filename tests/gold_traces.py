"""Test data without a model: traces that are gold CoTs of synthetic problems (some made wrong),
and a second reviewer that labels units from the gold CoT's known step roles.

A wrong variant changes the result of the last computation (``= N`` -> ``= N + 1``) and the
answer line to match, so it holds one wrong equation followed by a wrong answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
from dca.problems.gold import GoldCoT, format_number
from dca.records import Problem, Review, Step, Trace, Unit
from dca.review import NoisyReviewer, OracleReviewer
from dca.segment import segment


@dataclass
class GoldTrace:
    problem: Problem
    trace: Trace
    cot: GoldCoT
    wrong: bool


def gold_traces(n: int, *, seed: int = 0, wrong_share: float = 0.3, irrelevant_rate: float = 0.4) -> list[GoldTrace]:
    config = SyntheticConfig(min_operations=1, max_operations=3, distractors=(1, 2), max_value=20, seed=seed)
    rng = random.Random(seed)
    result = []
    for i, problem in enumerate(generate_problems(n, config)):
        cot = render_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng)
        wrong = rng.random() < wrong_share
        answer = problem.answer
        if wrong:
            bad = format_number(float(problem.answer) + 1)
            last = max(j for j, s in enumerate(cot.steps) if s.role == "computation")
            cot.steps[last].text = cot.steps[last].text.replace(f"= {problem.answer}", f"= {bad}")
            cot.steps[-1].text = f"Answer: {bad}"
            cot.text = " ".join(s.text for s in cot.steps[:-1]) + "\n" + cot.steps[-1].text
            answer = bad
        trace = Trace(
            id=f"{problem.id}/g0",
            problem_id=problem.id,
            prompt=problem.question,
            completion=cot.text,
            answer=answer,
            outcome="wrong" if wrong else "correct",
            reward=0.0 if wrong else 1.0,
        )
        result.append(GoldTrace(problem=problem, trace=trace, cot=cot, wrong=wrong))
    return result


class GoldRoleReviewer:
    """Labels each unit by the role of the gold step it lies in; its own reading, not the oracle's.

    given_fact -> indirect, computation -> essential (the last one: solved), conclusion ->
    solved, irrelevant roles -> irrelevant; on wrong variants the changed computation and the
    answer are errors. One step per gold step, each depending on the step before it.
    """

    name = "gold-roles"

    def __init__(self, cots: dict[str, GoldTrace]):
        self.cots = cots

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        gold = self.cots[trace_id]
        spans = gold.cot.step_spans()
        last_computation = max(j for j, s in enumerate(gold.cot.steps) if s.role == "computation")
        steps: list[Step] = []
        for unit in units:
            content = unit.start + len(unit.text) - len(unit.text.lstrip())
            g = next(j for j, (s, e) in enumerate(spans) if s <= content < e or j == len(spans) - 1 and content >= s)
            role = gold.cot.steps[g].role
            contribution = {"given_fact": "indirect", "computation": "essential", "conclusion": "solved"}.get(role, "irrelevant")
            if g == last_computation:
                contribution = "error" if gold.wrong else "solved"
            if role == "conclusion" and gold.wrong:
                contribution = "error"
            if steps and steps[-1].metadata_step == g:  # type: ignore[attr-defined]
                steps[-1].last_unit = unit.index
                continue
            step = Step(
                index=len(steps), first_unit=unit.index, last_unit=unit.index, function="other",
                contribution=contribution, depends_on=[len(steps) - 1] if steps else [], reason=f"gold role {role}",
            )  # fmt: skip
            step.metadata_step = g  # type: ignore[attr-defined]
            steps.append(step)
        for step in steps:
            del step.metadata_step  # type: ignore[attr-defined]
        return Review(trace_id=trace_id, reviewer=self.name, units=units, steps=steps)


def review_all(golds: list[GoldTrace], reviewers) -> list[Review]:
    reviews = []
    for g in golds:
        units = segment(g.trace.completion)
        for reviewer in reviewers:
            reviews.append(reviewer.review(g.problem, g.trace.completion, units, trace_id=g.trace.id))
    return reviews


def three_reviewers(golds: list[GoldTrace], flip_rate: float, *, seed: int = 0):
    """The oracle, the gold-role reviewer and a noisy copy of the oracle."""
    oracle = OracleReviewer()
    return [oracle, GoldRoleReviewer({g.trace.id: g for g in golds}), NoisyReviewer(oracle, flip_rate, seed=seed, name="noisy")]
