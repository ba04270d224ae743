"""Build the example behind docs/trace-viewer.png: no model, no network, a few seconds.

    .venv/bin/python docs/viewer_example.py --out /tmp/viewer-example    # then:
    .venv/bin/dca agreement --reviews /tmp/viewer-example/reviews.jsonl --truth oracle
    .venv/bin/dca show /tmp/viewer-example --out /tmp/viewer-example/report.html

Traces are gold CoTs of synthetic problems (with irrelevant steps; every third one made wrong
by changing the last computation and the answer). Three reviewers: the oracle and two noisy
copies of it (15 % and 35 % of unit labels flipped). Credits use the ``signed`` policy (a
failed trace's negative advantage lands on its error step) with whitespace-separated words
standing in for model tokens (no tokenizer is loaded here).
With ``--screenshot PNG`` the page is also rendered in headless Chromium.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
from pathlib import Path

from dca.consensus import build_consensuses
from dca.credit import CreditConfig, compute_credit
from dca.problems import SyntheticConfig, generate_problems, render_gold_cot
from dca.problems.answer import extract_answer
from dca.problems.gold import format_number
from dca.records import Trace
from dca.files import write_jsonl
from dca.review import NoisyReviewer, OracleReviewer
from dca.segment import segment


def build(out: Path, count: int = 12) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    config = SyntheticConfig(min_operations=1, max_operations=3, distractors=(1, 2), max_value=20, seed=11)
    problems = generate_problems(count, config)
    oracle = OracleReviewer()
    reviewers = [oracle, NoisyReviewer(oracle, 0.15, seed=1), NoisyReviewer(oracle, 0.35, seed=2)]
    traces, reviews = [], []
    for i, problem in enumerate(problems):
        cot = render_gold_cot(problem, irrelevant_rate=0.4, rng=rng)
        text, answer, outcome = cot.text, problem.answer, "correct"
        if i % 3 == 1:
            answer, outcome = format_number(float(problem.answer) + 1), "wrong"
            head, _, _ = text.rpartition("\n")
            head = head[::-1].replace(f"= {problem.answer}"[::-1], f"= {answer}"[::-1], 1)[::-1]
            text = f"{head}\nAnswer: {answer}"
        trace = Trace(
            id=f"{problem.id}/g0", problem_id=problem.id, prompt=problem.question, completion=text,
            answer=answer, outcome=outcome, reward=float(outcome == "correct"), advantage=0.5 if outcome == "correct" else -0.5,
        )  # fmt: skip
        traces.append(trace)
        units = segment(text)
        reviews += [r.review(problem, text, units, trace_id=trace.id) for r in reviewers]
    consensuses = {c.trace_id: c for c in build_consensuses(reviews, rule="majority")}
    credits = []
    for trace in traces:
        words = [(m.start(), m.end()) for m in re.finditer(r"\s*\S+", trace.completion)]
        found = extract_answer(trace.completion)
        credits.append(
            compute_credit(
                trace_id=trace.id, text=trace.completion, token_spans=words, review=consensuses[trace.id],
                sequence_advantage=trace.advantage, answer_span=found.span,
                config=CreditConfig(policy="signed"),
            )
        )  # fmt: skip
    write_jsonl(out / "problems.jsonl", problems)
    write_jsonl(out / "traces.jsonl", traces)
    write_jsonl(out / "reviews.jsonl", reviews)
    write_jsonl(out / "credits.jsonl", credits)


def screenshot(page: Path, png: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
                 f"--user-data-dir={tempfile.mkdtemp()}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(page.resolve().as_uri())
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    build(args.out)
    if args.screenshot:
        from dca.report import collect_inputs, render_report

        page = args.out / "report.html"
        page.write_text(render_report(collect_inputs([args.out]), title="DCA traces: docs example"), encoding="utf-8")
        screenshot(page, args.screenshot)
