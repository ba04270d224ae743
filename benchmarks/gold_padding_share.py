"""The share of irrelevant padding in the warm start's gold CoTs, as the oracle labels it.

    PYTHONPATH=src python benchmarks/gold_padding_share.py --irrelevant-rate 0.3 --count 400

``irrelevant_rate`` is a rendering setting of `render_gold_cot`, not the share of padding the
CoTs end up with; this prints the measured share of steps and of characters the oracle labels
irrelevant, for the demo's problems (1 operation) and the warm start's default (1-2 operations),
both with 1-2 distractors (README figures name this command).
"""

from __future__ import annotations

import argparse
import random

from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
from dca.review import OracleReviewer
from dca.segment import segment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--irrelevant-rate", type=float, default=0.3)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    oracle = OracleReviewer()
    for label, ops in (("demo (1 operation)", (1, 1)), ("warm start default (1-2 operations)", (1, 2))):
        problems = generate_problems(args.count, SyntheticConfig(min_operations=ops[0], max_operations=ops[1], distractors=(1, 2), seed=args.seed))
        rng = random.Random(0)
        steps = irrelevant_steps = chars = irrelevant_chars = 0
        for i, problem in enumerate(problems):
            text = render_gold_cot(problem, irrelevant_rate=args.irrelevant_rate, rng=rng).text
            units = segment(text)
            review = oracle.review(problem, text, units, trace_id=str(i))
            steps += len(review.steps)
            irrelevant_steps += sum(s.contribution == "irrelevant" for s in review.steps)
            for unit, contribution in zip(units, review.unit_contributions()):
                chars += unit.end - unit.start
                irrelevant_chars += (unit.end - unit.start) * (contribution == "irrelevant")
        print(f"{label}: irrelevant_rate {args.irrelevant_rate} -> {irrelevant_steps / steps:.1%} of steps, {irrelevant_chars / chars:.1%} of characters labelled irrelevant ({args.count} CoTs)")


if __name__ == "__main__":
    main()
