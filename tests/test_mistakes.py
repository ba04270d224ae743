"""The real-mistake benchmark (issue 22): the truth from a problem's structure, the reference
reviewer's trace-back, and `dca bench-reviewers --mistakes` end to end."""

import json
from pathlib import Path

import pytest
from conftest import dca

from dca.problems import SyntheticConfig, generate_problems
from dca.records import Trace
from dca.files import read_jsonl
from dca.review import ReferenceReviewer
from dca.review.bench import first_error, run_bench
from dca.review.config import ReviewerSpec
from dca.review.mistakes import first_mistake, mistake_items
from dca.segment import segment

# Yusuf has 25 balloons; gives away 3 bags of 4 (v0 = 12, v1 = 13); sells 6 (v2 = 7).
# Distractor: Emma buys 16 pencils.
YUSUF = generate_problems(1, SyntheticConfig(seed=0, min_operations=3, max_operations=3, distractors=(1, 1)))[0]
START = "Yusuf has 25 balloons. The 3 bags hold 3 * 4 = 12 balloons. "

# (trace, first wrong unit, kind); units are sentences, the answer line last.
CASES = [
    (START + "Yusuf now has 25 - 12 = 13 balloons. Yusuf now has 13 - 6 = 7 balloons.\nAnswer: 7", None, None),
    (START + "Yusuf now has 25 - 12 = 14 balloons. Yusuf now has 14 - 6 = 8 balloons.\nAnswer: 8", 2, "arithmetic"),
    (START + "Yusuf now has 25 - 12 = 13 balloons. He gets 16 more: 13 + 16 = 29. Yusuf now has 29 - 6 = 23 balloons.\nAnswer: 23", 3, "distractor"),
    # 25 - 3 skips the 3 bags of 4; 22 - 6 happens to be 16, the distractor's value.
    ("Yusuf has 25 balloons. Yusuf now has 25 - 3 = 22 balloons. Yusuf now has 22 - 6 = 16 balloons.\nAnswer: 16", 1, "skipped_step"),
    (START + "Yusuf now has 25 + 12 = 37 balloons. Yusuf now has 37 - 6 = 31 balloons.\nAnswer: 31", 2, "wrong_operation"),
    (START + "Yusuf now has 25 - 12 = 13 balloons.\nAnswer: 13", 3, "skipped_step"),  # stopped one operation early
    (START + "Yusuf now has 25 - 12 = 13 balloons. Yusuf now has 13 - 6 = 7 balloons.\nAnswer: 9", 4, "final_statement"),
    (START + "Yusuf now has 21 balloons. Yusuf now has 21 - 6 = 15 balloons.\nAnswer: 15", 2, "wrong_operation"),  # a misread count
    # 10 is a common constant the problem does not give: the walk follows it to the unit that
    # computed it from the distractor, not stop there and blame 25 - 10 (micro trace 00100).
    (
        "Yusuf has 25 balloons. Emma's pencils less 6 are 16 - 6 = 10. Yusuf now has 25 - 10 = 15 balloons. "
        "Yusuf now has 15 - 6 = 9 balloons.\nAnswer: 9",
        1,
        "distractor",
    ),
    # The answer's 8 is first computed by a correct side line; its source is the path's 14 - 6,
    # built on the misread 26 (micro trace 00104); a side line after it is no source either.
    (
        "Yusuf has 26 balloons. Half of Emma's pencils would be 16 / 2 = 8. The 3 bags hold 3 * 4 = 12 balloons. "
        "Yusuf now has 26 - 12 = 14 balloons. Yusuf now has 14 - 6 = 8 balloons.\nAnswer: 8",
        0,
        "wrong_operation",
    ),
    (
        "Yusuf has 26 balloons. The 3 bags hold 3 * 4 = 12 balloons. Yusuf now has 26 - 12 = 14 balloons. "
        "Yusuf now has 14 - 6 = 8 balloons. Half of Emma's pencils would be 16 / 2 = 8.\nAnswer: 8",
        0,
        "wrong_operation",
    ),
]


@pytest.mark.parametrize("text, unit, kind", CASES)
def test_the_truth_is_the_first_step_that_leaves_the_solution_path(text, unit, kind):
    mistake = first_mistake(YUSUF, segment(text))
    assert (mistake.unit, mistake.kind) == (unit, kind) if unit is not None else mistake is None


@pytest.mark.parametrize("text, unit, kind", CASES)
def test_the_reference_reviewer_traces_the_wrong_answer_back(text, unit, kind):
    units = segment(text)
    review = ReferenceReviewer().review(YUSUF, text, units, trace_id="t")
    assert first_error(review) == (-1 if unit is None else unit)


def test_later_steps_built_on_the_error_are_dependents_not_errors():
    text = CASES[2][0]
    units = segment(text)
    review = ReferenceReviewer().review(YUSUF, text, units, trace_id="t")
    labels = review.unit_contributions()
    assert labels[3] == "error" and labels[4] == "irrelevant" and labels[5] == "error"  # the wrong answer itself
    dependent = next(s for s in review.steps if s.first_unit == 4)
    error = next(s for s in review.steps if s.first_unit == 3)
    assert error.index in dependent.depends_on and "unit 3" in dependent.reason


def test_a_unit_without_a_quantity_is_unverified_not_useful():
    text = START + "Okay, so far so good. Yusuf now has 25 - 12 = 13 balloons. Yusuf now has 13 - 6 = 7 balloons.\nAnswer: 7"
    labels = ReferenceReviewer().review(YUSUF, text, segment(text), trace_id="t").unit_contributions()
    assert labels[2] == "unverified"


def test_mistake_items_keep_wrong_traces_with_their_kind_and_count_the_rest():
    traces = [
        Trace(id=f"t{i}", problem_id=YUSUF.id, prompt="", completion=text, outcome="correct" if i == 0 else "wrong")
        for i, (text, _, _) in enumerate(CASES)
    ]
    traces.append(Trace(id="nf", problem_id=YUSUF.id, prompt="", completion="I do not know.", outcome="format_failure"))
    items, counts = mistake_items([YUSUF], traces)
    assert counts == {"traces": len(CASES) + 1, "solved": 1, "wrong": len(CASES) - 1, "format_failures": 1, "unlabelled": 0}
    assert [(i.label, i.kind) for i in items] == [(-1, "")] + [(u, k) for _, u, k in CASES[1:]]
    figures, _ = run_bench(items, [ReviewerSpec(name="reference", backend="reference"), ReviewerSpec(name="oracle", backend="oracle")])
    assert figures["reference"]["mistakes"]["accuracy_erroneous"] == 1.0
    kinds = {name.split("/")[1] for name in figures["reference"] if "/" in name}
    assert kinds == {"arithmetic", "distractor", "skipped_step", "wrong_operation", "final_statement"}
    assert figures["reference"]["mistakes/distractor"]["correct"] == 1  # each kind row keeps the correct items


def test_recorded_model_traces_are_labelled_and_scored():
    """A few real traces of the embedded model's warm start (tests/data), as the CI run."""
    data = Path(__file__).parent / "data" / "mistakes_warmstart.jsonl"
    traces = read_jsonl(data, Trace)
    count = int(traces[-1].problem_id.rsplit("-", 1)[1]) + 1
    problems = generate_problems(count, SyntheticConfig(seed=0))
    items, counts = mistake_items(problems, traces)
    assert counts["wrong"] >= 3 and sum(i.label >= 0 for i in items) >= 3
    figures, reviews = run_bench(items, [ReviewerSpec(name="reference", backend="reference"), ReviewerSpec(name="oracle", backend="oracle")])
    assert all(r.status == "ok" for r in reviews)
    assert figures["reference"]["mistakes"]["erroneous"] == sum(i.label >= 0 for i in items)


def test_bench_reviewers_rolls_out_the_micro_start_and_scores_its_real_mistakes(tmp_path):
    """`dca bench-reviewers --mistakes micro` end to end on the shipped micro start: a real
    model rolled out on the micro world's problems makes real mistakes and solves others, so
    both subsets of the ProcessBench metric are measured."""
    out = tmp_path / "bench.json"
    result = dca("bench-reviewers", "--mistakes", "micro", "--limit", "24", "--out", out, cwd=tmp_path,
                 env={"DCA_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    counts = report["mistakes"]
    assert counts["traces"] == 24 and counts["solved"] >= 3 and counts["wrong"] >= 3, counts
    mistakes = report["figures"]["reference"]["mistakes"]
    assert mistakes["erroneous"] >= 3 and mistakes["correct"] >= 3
