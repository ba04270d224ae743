"""Persona reviews one at a time against batched, on the same model and traces.

    .venv/bin/python benchmarks/persona_batch.py                       # embedded SmolLM2-135M
    .venv/bin/python benchmarks/persona_batch.py --model runs/personas # a persona-trained checkpoint

On synthetic gold chains of thought (`synthetic_review_set.py`: padded, a share with a planted
error), the `strict` persona reviews every trace with ``batch_size`` 1 and with ``--batch-size``
(one batched, left-padded ``generate`` per batch, one grammar per row), in alternating rounds so
that a noisy machine slows both alike. Prints seconds per review of each, the share of units
whose label is the same in both (greedy decoding: padding changes the float arithmetic, so rare
near-ties may flip), failed reviews, and last ``ratio=`` (seconds per review unbatched /
batched). Goal: >= 2 on 2 CPU cores with batches of 8.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_review_set import build  # noqa: E402

from dca.model import load_model  # noqa: E402
from dca.review import ReviewItem  # noqa: E402
from dca.review.persona import PersonaReviewer, load_personas, resolve_personas  # noqa: E402
from dca.segment import segment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="'embedded' or a checkpoint directory (with personas.json or not)")
    parser.add_argument("--persona", default="strict")
    parser.add_argument("--n", type=int, default=16, help="traces per round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (unbatched, batched, ...)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    problems, traces, _ = build(args.n, args.seed, 0.3, 0.4)
    by_id = {p.id: p for p in problems}
    items = [ReviewItem(problem=by_id[t.problem_id], trace=t, units=segment(t.completion)) for t in traces]
    model, tokenizer = load_model(args.model)
    declared = {p.name: p for p in (load_personas(args.model) if Path(args.model).is_dir() else [])}
    persona = declared.get(args.persona) or resolve_personas([args.persona])[0]
    reviewers = {
        1: PersonaReviewer("unbatched", persona, model, tokenizer, params={"batch_size": 1}),
        args.batch_size: PersonaReviewer("batched", persona, model, tokenizer, params={"batch_size": args.batch_size}),
    }
    reviewers[1].review_items(items[:1])  # warm-up: grammar compilation, first-call allocations
    seconds: dict[int, list[float]] = {size: [] for size in reviewers}
    reviews: dict[int, list] = {}
    for _ in range(args.rounds):
        for size, reviewer in reviewers.items():
            started = time.perf_counter()
            reviews[size] = reviewer.review_items(items)
            seconds[size].append((time.perf_counter() - started) / len(items))
    one, many = reviews[1], reviews[args.batch_size]
    same = total = 0
    for a, b in zip(one, many):
        if a.status == "ok" and b.status == "ok":
            for x, y in zip(a.unit_contributions(), b.unit_contributions()):
                same += x == y
                total += 1
    print(f"{len(items)} traces, persona {persona.name}, model {args.model}, {args.rounds} rounds")
    for size in reviewers:
        failed = sum(r.status != "ok" for r in reviews[size])
        print(f"batch_size {size:2d}: {statistics.median(seconds[size]):.2f} s per review (rounds: "
              f"{', '.join(f'{s:.2f}' for s in seconds[size])}), {failed} failed")  # fmt: skip
    print(f"same label on {same}/{total} units ({same / total:.1%})" if total else "no unit reviewed by both")
    ratios = [a / b for a, b in zip(seconds[1], seconds[args.batch_size])]
    print(f"ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
