"""Dialogue vs one-shot reviews by the same local reviewer, scored against the oracle.

On synthetic problems' gold chains of thought (padded with irrelevant steps, a share with a
planted arithmetic error; `synthetic_review_set.py`), one `hf` reviewer (grammar-constrained)
reviews every trace twice: one-shot, and in dialogue mode (up to --questions questions,
answered by the policy model through dca.continuation). Both are scored against the oracle's
reviews (`dca.agreement.reviewer_quality`: useful- and error-unit F1, first-error accuracy),
and the extra tokens of the dialogue are counted (the reviewer's and the answerer's).

    .venv/bin/python benchmarks/dialogue_review.py --n 12 --reviewer-model embedded --policy-model embedded

Prints one table; what labelling every unit alike would score (a reviewer near these figures
has shifted its labels wholesale, not read the trace better) and each mode's label shares; the
paired differences dialogue - one-shot with 95 % intervals (a bootstrap over traces: both
modes reviewed the same traces); the failed reviews' errors by kind; and ``ratio=`` (dialogue
tokens / one-shot tokens per review). ``--out DIR`` writes the traces, problems, the oracle's
reviews, each mode's reviews (``reviews-one-shot.jsonl``, ``reviews-dialogue.jsonl``, with
the transcripts, for `dca show` / `dca agreement`) and ``figures.json``. A call that runs past
``--timeout`` seconds is a failed review (kind ``timeout``, not retried): the embedded model
takes about 10 s per call on 2 idle cores, several times that beside other jobs.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_review_set import build  # noqa: E402

from dca.agreement import compare_reviewers, project_traces, reviewer_quality  # noqa: E402
from dca.files import write_jsonl  # noqa: E402
from dca.review import BuildContext, ReviewCache, ReviewItem, ReviewerSpec, build_reviewers, close_reviewers, review_batch  # noqa: E402
from dca.segment import segment  # noqa: E402


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _error_kind(review) -> str:
    """A failed review's kind (`dca.review.runner`) and the start of its error."""
    return f"{review.metadata.get('failure', 'unknown')} ({(review.error or '')[:120]})"


#: The quality figures compared, as paths into `reviewer_quality`'s result for one reviewer.
COMPARED = {
    "useful_f1": ("useful", "f1"),
    "error_f1": ("error", "f1"),
    "first_error_erroneous": ("first_error", "erroneous_accuracy"),
    "first_error_f1": ("first_error", "f1"),
}


def _figure(quality: dict, path: tuple[str, str]):
    return quality[path[0]][path[1]]


def constant_baselines(projected: list) -> dict[str, float | None]:
    """What labelling every unit alike scores against the oracle: useful F1 when every unit is
    called useful, error F1 when every unit is called an error. A mode whose F1 sits near these
    may have shifted its labels wholesale rather than read the trace better."""
    import copy

    traces = copy.deepcopy(projected)
    for t in traces:
        t.labels["all-useful"] = ["indirect"] * len(t.unit_texts)
        t.labels["all-error"] = ["error"] * len(t.unit_texts)
    quality = reviewer_quality(traces, "oracle")["reviewers"]
    return {"useful_f1 (every unit useful)": quality["all-useful"]["useful"]["f1"], "error_f1 (every unit an error)": quality["all-error"]["error"]["f1"]}


def label_shares(reviews: list) -> str:
    """The share of reviewed units under each contribution label, most common first."""
    counts = collections.Counter(label for r in reviews if r.status == "ok" for label in r.unit_contributions())
    total = sum(counts.values()) or 1
    return ", ".join(f"{label} {count / total:.0%}" for label, count in counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--reviewer-model", default="embedded")
    parser.add_argument("--policy-model", default="embedded", help="who answers the questions (the policy)")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--free-ranges", action="store_true", help="let the reviewer group units into steps (small models then often write overlapping ranges)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per reviewer call before it counts as failed")
    parser.add_argument("--cache", default=None, help="review cache (SQLite); none by default")
    parser.add_argument("--out", default=None, help="directory for the traces, problems and every review written")
    args = parser.parse_args()

    problems, traces, oracle = build(args.n, args.seed, 0.3, 0.4)
    by_id = {p.id: p for p in problems}
    items = [ReviewItem(problem=by_id[t.problem_id], trace=t, units=segment(t.completion)) for t in traces]
    params = {"max_new_tokens": args.max_new_tokens, "max_reason_chars": 8}
    if not args.free_ranges:  # one line per unit: every answer parses, even from a small model
        params["one_step_per_unit"] = True
    specs = [
        ReviewerSpec(name="one-shot", backend="hf", model=args.reviewer_model, params=params, repair_attempts=1, timeout=args.timeout),
        ReviewerSpec(name="dialogue", backend="hf", model=args.reviewer_model, params=params, repair_attempts=1, timeout=args.timeout,
                     dialogue={"max_questions": args.questions, "answerer": "policy", "model": args.policy_model}),
    ]  # fmt: skip
    context = BuildContext(cache=ReviewCache(args.cache) if args.cache else None)
    reviewers = build_reviewers(specs, context)
    rows, errors, by_mode = {}, {}, {}
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "problems.jsonl", problems)
        write_jsonl(out / "traces.jsonl", traces)
        write_jsonl(out / "reviews-oracle.jsonl", oracle)
    try:
        for reviewer in reviewers:
            started = time.perf_counter()
            (reviews,) = review_batch([reviewer], items)
            seconds = time.perf_counter() - started
            if out is not None:
                write_jsonl(out / f"reviews-{reviewer.name}.jsonl", reviews)
            errors[reviewer.name] = collections.Counter(_error_kind(r) for r in reviews if r.status != "ok")
            by_mode[reviewer.name] = reviews
            quality = reviewer_quality(project_traces([r for r in oracle] + reviews), "oracle")["reviewers"][reviewer.name]
            tokens = sum(r.usage.get("input_tokens", 0) + r.usage.get("output_tokens", 0) for r in reviews)
            answer_tokens = sum(r.usage.get("dialogue_input_tokens", 0) + r.usage.get("dialogue_output_tokens", 0) for r in reviews)
            rows[reviewer.name] = {
                "failed": sum(r.status != "ok" for r in reviews),
                "questions": sum(len(r.dialogue) // 2 for r in reviews),
                **{key: _figure(quality, path) for key, path in COMPARED.items()},
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
    projected = project_traces([*oracle, *by_mode["one-shot"], *by_mode["dialogue"]])
    baselines = constant_baselines(projected)
    for key, value in baselines.items():
        print(f"{'baseline ' + key:40s}{_fmt(value)}")
    for name, reviews in [("oracle", oracle), *by_mode.items()]:
        print(f"labels {name}: {label_shares(reviews)}")
    comparison = compare_reviewers(projected, "oracle", "one-shot", "dialogue")
    differences = comparison["figures"]
    print(f"dialogue - one-shot, paired on {comparison['traces']} traces (95 % interval, bootstrap over traces):")
    for key, d in differences.items():
        interval = f" [{d['low']:+.3f}, {d['high']:+.3f}]" if d["low"] is not None else ""
        print(f"  {key:26s}{'n/a' if d['difference'] is None else format(d['difference'], '+.3f')}{interval}")
    for name in names:
        if errors[name]:
            print(f"{name} failures:")
            for kind, count in errors[name].most_common():
                print(f"  {count} x {kind}")
    if out is not None:
        figures = {"settings": vars(args), "traces": len(items), "with_error": sum(t.outcome != "correct" for t in traces),
                   "modes": rows, "comparison": comparison, "baselines": baselines,
                   "labels": {name: label_shares(reviews) for name, reviews in [("oracle", oracle), *by_mode.items()]}, "failures": {n: dict(errors[n]) for n in names}}  # fmt: skip
        (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"ratio={rows['dialogue']['tokens_per_review'] / rows['one-shot']['tokens_per_review']:.2f}")


if __name__ == "__main__":
    main()
