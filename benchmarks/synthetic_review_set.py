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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the gold traces shared with the tests

from gold_traces import gold_traces, review_all  # noqa: E402

from dca.files import write_jsonl  # noqa: E402
from dca.review import OracleReviewer  # noqa: E402


def build(n: int, seed: int, wrong_share: float, irrelevant_rate: float):
    """Problems, gold traces (a share made wrong) and the oracle's reviews of them."""
    golds = gold_traces(n, seed=seed, wrong_share=wrong_share, irrelevant_rate=irrelevant_rate)
    reviews = review_all(golds, [OracleReviewer()])
    return [g.problem for g in golds], [g.trace for g in golds], reviews


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
