"""Dialogue vs one-shot reviews by the same local reviewer, scored against the oracle.

On synthetic problems' gold chains of thought (padded with irrelevant steps, a share with a
planted arithmetic error; `synthetic_review_set.py`), one `hf` reviewer (grammar-constrained)
reviews every trace twice: one-shot, and in dialogue mode (up to --questions questions,
answered by the policy model through dca.continuation). Both are scored against the oracle's
reviews (`dca.agreement.reviewer_quality`: useful- and error-unit F1, first-error accuracy),
and the extra tokens of the dialogue are counted (the reviewer's and the answerer's).

    .venv/bin/python benchmarks/dialogue_review.py --n 12 --reviewer-model embedded --policy-model embedded

Prints one table and ``ratio=`` (dialogue tokens / one-shot tokens per review).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_review_set import build  # noqa: E402

from dca.agreement import project_traces, reviewer_quality  # noqa: E402
from dca.review import BuildContext, ReviewCache, ReviewItem, ReviewerSpec, build_reviewers, close_reviewers, review_batch  # noqa: E402
from dca.segment import segment  # noqa: E402


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--reviewer-model", default="embedded")
    parser.add_argument("--policy-model", default="embedded", help="who answers the questions (the policy)")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--free-ranges", action="store_true", help="let the reviewer group units into steps (small models then often write overlapping ranges)")
    parser.add_argument("--cache", default=None, help="review cache (SQLite); none by default")
    args = parser.parse_args()

    problems, traces, oracle = build(args.n, args.seed, 0.3, 0.4)
    by_id = {p.id: p for p in problems}
    items = [ReviewItem(problem=by_id[t.problem_id], trace=t, units=segment(t.completion)) for t in traces]
    params = {"max_new_tokens": args.max_new_tokens, "max_reason_chars": 8}
    if not args.free_ranges:  # one line per unit: every answer parses, even from a small model
        params["one_step_per_unit"] = True
    specs = [
        ReviewerSpec(name="one-shot", backend="hf", model=args.reviewer_model, params=params, repair_attempts=1),
        ReviewerSpec(name="dialogue", backend="hf", model=args.reviewer_model, params=params, repair_attempts=1,
                     dialogue={"max_questions": args.questions, "answerer": "policy", "model": args.policy_model}),
    ]  # fmt: skip
    context = BuildContext(cache=ReviewCache(args.cache) if args.cache else None)
    reviewers = build_reviewers(specs, context)
    rows = {}
    try:
        for reviewer in reviewers:
            started = time.perf_counter()
            (reviews,) = review_batch([reviewer], items)
            seconds = time.perf_counter() - started
            quality = reviewer_quality(project_traces([r for r in oracle] + reviews), "oracle")["reviewers"][reviewer.name]
            tokens = sum(r.usage.get("input_tokens", 0) + r.usage.get("output_tokens", 0) for r in reviews)
            answer_tokens = sum(r.usage.get("dialogue_input_tokens", 0) + r.usage.get("dialogue_output_tokens", 0) for r in reviews)
            rows[reviewer.name] = {
                "failed": sum(r.status != "ok" for r in reviews),
                "questions": sum(len(r.dialogue) // 2 for r in reviews),
                "useful_f1": quality["useful"]["f1"],
                "error_f1": quality["error"]["f1"],
                "first_error_erroneous": quality["first_error"]["erroneous_accuracy"],
                "first_error_f1": quality["first_error"]["f1"],
                "tokens_per_review": (tokens + answer_tokens) / len(reviews),
                "seconds_per_review": seconds / len(reviews),
            }
    finally:
        close_reviewers(reviewers)
    names = list(rows)
    print(f"{len(items)} synthetic traces ({sum(t.outcome != 'correct' for t in traces)} with a planted error), reviewer {args.reviewer_model}, answerer {args.policy_model}")
    print(f"{'figure':28s}" + "".join(f"{n:>12s}" for n in names))
    for key in rows[names[0]]:
        print(f"{key:28s}" + "".join(f"{rows[n][key] if isinstance(rows[n][key], int) else _fmt(rows[n][key]):>12}" for n in names))
    print(f"ratio={rows['dialogue']['tokens_per_review'] / rows['one-shot']['tokens_per_review']:.2f}")


if __name__ == "__main__":
    main()
