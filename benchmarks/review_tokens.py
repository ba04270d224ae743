"""What a review costs per CoT token, in SmolLM2 tokens (issue 22 item 4).

    PYTHONPATH=src python benchmarks/review_tokens.py --problems 16 --group 8

Traces: gold CoTs of synthetic problems with irrelevant steps mixed in, `--group` different
completions per problem (a GRPO group). For each, the oracle's review is rendered as a
reviewer following the prompt would answer it, and the review prompt is built as the runner
sends it. Printed, median over traces:

- output tokens per CoT token, in each line form the protocol has had (`LINE_FORMS`):
  dca-review/2 (ranges, full names, a reason on every step), dca-review/3 (every step by its
  last unit, one-letter codes, reasons only on error steps) and dca-review/4, the current one
  (a unit number only on a step of several units, the two codes as one word, the uses as
  numbers);
- input tokens per CoT token: one prompt alone, and per completion of a group whose shared
  prefix (the system turn, then the problem, up to the outcome line) a provider's prompt
  cache serves after the first completion (the uncached tokens a group sends, divided by its
  CoT tokens).
"""

from __future__ import annotations

import argparse
import random
import statistics

from dca.model import load_tokenizer
from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
from dca.problems.answer import check_answer
from dca.records import Trace
from dca.review import OracleReviewer
from dca.review.protocol import LINE_FORMS, PROTOCOL_VERSION, answer_lines, build_messages
from dca.segment import segment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    tokenizer = load_tokenizer("embedded")
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    problems = generate_problems(args.problems, SyntheticConfig(seed=args.seed, min_operations=1, max_operations=4, distractors=(1, 2)))
    rng = random.Random(args.seed)
    output: dict[str, list[float]] = {form: [] for form in LINE_FORMS}
    input_one, input_group = [], []
    for problem in problems:
        group_cot = group_sent = 0
        for k in range(args.group):
            text = render_gold_cot(problem, irrelevant_rate=rng.choice([0.0, 0.3, 0.6]), rng=rng).text
            check = check_answer(text, problem.answer)
            trace = Trace(id=f"{problem.id}/{k}", problem_id=problem.id, prompt="", completion=text, outcome=check.outcome)
            units = segment(text)
            review = OracleReviewer().review(problem, text, units, trace_id=trace.id)
            for step in review.steps:
                step.reason = " ".join(step.reason.split()[:5])
            cot = count(text)
            for form in LINE_FORMS:
                output[form].append(count(answer_lines(review.steps, form=form)) / cot)
            system, user = (m["content"] for m in build_messages(problem, trace, units))
            prompt = count(system) + count(user)
            shared = count(system) + count(user.split("\nOutcome:")[0])
            input_one.append(prompt / cot)
            group_sent += prompt if k == 0 else prompt - shared
            group_cot += cot
        input_group.append(group_sent / group_cot)
    traces = len(input_one)
    print(f"{traces} traces ({args.problems} problems x {args.group}), SmolLM2 tokens, medians:")
    forms = ", ".join(f"{form}{' (current)' if form == PROTOCOL_VERSION else ''} {statistics.median(ratios):.2f}" for form, ratios in output.items())
    print(f"  output tokens / CoT token, line form: {forms}")
    print(f"  input tokens / CoT token: one prompt {statistics.median(input_one):.1f}, "
          f"per completion of a group of {args.group} with the shared prefix cached {statistics.median(input_group):.1f} "
          f"(ratio {statistics.median(input_group) / statistics.median(input_one):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
