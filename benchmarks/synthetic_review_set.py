"""Write a labelled review set with a known truth: synthetic problems, gold chains of thought
(padded with irrelevant steps; a share made wrong by one planted arithmetic error that the
answer then follows), and the oracle reviewer's reviews of them.

    .venv/bin/python benchmarks/synthetic_review_set.py --n 64 --out runs/review-set
    # then, e.g. (persona agreement before/after SFT toward the oracle):
    .venv/bin/dca persona-train --labels runs/review-set/reviews.jsonl --traces runs/review-set/traces.jsonl \\
        --problems runs/review-set/problems.jsonl --personas strict --model embedded --out runs/personas

Writes ``problems.jsonl``, ``traces.jsonl`` and ``reviews.jsonl`` (reviewer ``oracle``) to --out.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
from dca.problems.gold import format_number
from dca.records import Trace, write_jsonl
from dca.review import OracleReviewer
from dca.segment import segment


def build(n: int, seed: int, wrong_share: float, irrelevant_rate: float):
    config = SyntheticConfig(min_operations=1, max_operations=3, distractors=(1, 2), max_value=20, seed=seed)
    rng = random.Random(seed)
    problems, traces = generate_problems(n, config), []
    for problem in problems:
        cot = render_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng)
        answer, wrong = problem.answer, rng.random() < wrong_share
        if wrong:  # the last computation's result is off by one, and the answer follows it
            bad = format_number(float(problem.answer) + 1)
            last = max(j for j, s in enumerate(cot.steps) if s.role == "computation")
            cot.steps[last].text = cot.steps[last].text.replace(f"= {problem.answer}", f"= {bad}")
            cot.steps[-1].text = f"Answer: {bad}"
            cot.text = " ".join(s.text for s in cot.steps[:-1]) + "\n" + cot.steps[-1].text
            answer = bad
        traces.append(Trace(id=f"{problem.id}/gold", problem_id=problem.id, prompt=problem.question, completion=cot.text,
                            answer=answer, outcome="wrong" if wrong else "correct", reward=0.0 if wrong else 1.0))  # fmt: skip
    oracle = OracleReviewer()
    by_id = {p.id: p for p in problems}
    reviews = [oracle.review(by_id[t.problem_id], t.completion, segment(t.completion), trace_id=t.id) for t in traces]
    return problems, traces, reviews


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wrong-share", type=float, default=0.3)
    parser.add_argument("--irrelevant-rate", type=float, default=0.4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems, traces, reviews = build(args.n, args.seed, args.wrong_share, args.irrelevant_rate)
    for name, records in (("problems", problems), ("traces", traces), ("reviews", reviews)):
        write_jsonl(out / f"{name}.jsonl", records)
    ok = sum(r.status == "ok" for r in reviews)
    print(f"wrote {len(problems)} problems, traces and oracle reviews ({ok} ok) to {out}")


if __name__ == "__main__":
    main()
