"""The domain registry and the problem sources: every domain through one interface, used
by `dca problems`, `dca domains`, training configs and `dca eval --sets`."""

from __future__ import annotations

import json

import pytest

from conftest import dca, dca_in_process, one_line_error
from dca.domains import DOMAINS, check, domain_of, get_domain
from dca.domains.sources import DomainSettings, ProblemsSettings, load_problems, load_set, parse_set_spec
from dca.errors import UserError
from dca.problems.labels import check_against_gold, check_label, extract_text_answer
from dca.problems.answer import SYSTEM_PROMPT
from dca.domains import chat_messages
from dca.records import Problem
from dca.files import read_jsonl


def test_registry_holds_the_domains_with_what_they_support():
    assert {"arithmetic", "gsm8k", "logic", "commonsense", "knights-knaves", "syllogism", "propositional-logic",
            "zebra-puzzles", "family-relationships"} <= set(DOMAINS)  # fmt: skip
    assert DOMAINS["knights-knaves"].supports()["oracle"] and DOMAINS["commonsense"].supports()["reviewer_reference"]
    assert DOMAINS["arithmetic"].supports() == {"generator": True, "loader": False, "gold_cot": True, "oracle": True, "reviewer_reference": False}
    assert DOMAINS["gsm8k"].supports()["loader"] and not DOMAINS["gsm8k"].supports()["generator"]
    assert all(DOMAINS["logic"].supports()[k] for k in ("generator", "gold_cot", "oracle"))
    with pytest.raises(UserError, match="unknown domain 'nope'"):
        get_domain("nope")


def test_problems_find_their_domain_and_prompt():
    logic = load_problems(ProblemsSettings(domain=DomainSettings(name="logic", count=2)))
    arithmetic = load_problems(ProblemsSettings(domain=DomainSettings(name="arithmetic", count=2)))
    assert domain_of(logic[0]).name == "logic" and domain_of(arithmetic[0]).name == "arithmetic"
    assert chat_messages(arithmetic[0])[0]["content"] == SYSTEM_PROMPT
    assert "Answer: Unknown" in chat_messages(logic[0])[0]["content"]
    foreign = Problem(id="x", source="elsewhere", question="1+1?", answer="2", domain="not-registered")
    assert domain_of(foreign).name == "arithmetic" and check(foreign, "Answer: 2").outcome == "correct"


@pytest.mark.parametrize(
    "completion, gold, outcome",
    [
        ("so it holds.\nAnswer: True", "True", "correct"),
        ("Answer: **false**", "False", "correct"),
        ("The answer is Unknown.", "Unknown", "correct"),
        ("Answer: True\nWait.\nAnswer: False", "True", "wrong"),  # the last strict statement wins
        ("Answer: maybe", "True", "format_failure"),
        ("I think it is true.", "True", "format_failure"),
        ("Answer: Yes", "True", "correct"),  # yes/no fold into true/false
    ],
)
def test_label_checker(completion, gold, outcome):
    assert check_label(completion, gold, ("True", "False", "Unknown")).outcome == outcome


def test_label_span_and_gold_checks():
    text = "Anne is kind.\nAnswer: False"
    result = check_label(text, "False", ("True", "False", "Unknown"))
    assert text[result.span[0] : result.span[1]] == "Answer: False"
    assert check_against_gold("Answer: unknown", "Unknown").outcome == "correct"
    assert check_against_gold("Answer: 12", "12").outcome == "correct"
    assert extract_text_answer("x\nAnswer: Amelia is a hero.").answer == "Amelia is a hero."


def test_sources_and_eval_set_specs(tmp_path):
    spec = parse_set_spec("logic:7")
    assert (spec.name, spec.limit) == ("logic", 7)
    problems = load_set(spec)
    assert len(problems) == 7 and all(p.domain == "logic" for p in problems)
    assert load_set(spec) == problems  # seeded
    assert [p.domain for p in load_set(parse_set_spec("gsm8k-test:2"))] == ["gsm8k", "gsm8k"]
    assert len(load_set(parse_set_spec("synthetic-easy:3"))) == 3
    with pytest.raises(UserError, match="unknown problem set"):
        parse_set_spec("nothing-here")
    with pytest.raises(UserError, match="generated, not loaded"):
        parse_set_spec(f"logic@{tmp_path / 'x.json'}")
    with pytest.raises(ValueError, match="unknown domain"):
        DomainSettings(name="nope")
    with pytest.raises(UserError, match="no generator option"):
        load_problems(ProblemsSettings(domain=DomainSettings(name="logic", count=2, options={"depth": 3})))


def test_cli_domains_and_problems(tmp_path):
    listed = dca("domains")
    assert listed.returncode == 0, listed.stderr
    for name in DOMAINS:
        assert name in listed.stdout

    out = tmp_path / "logic.jsonl"
    result = dca("problems", "--domain", "logic", "--count", "5", "--seed", "2", "--option", "max_depth=2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    problems = read_jsonl(out, Problem)
    assert len(problems) == 5 and all(p.domain == "logic" and p.metadata["logic"]["depth"] <= 2 for p in problems)

    arithmetic = tmp_path / "a.jsonl"
    assert dca("problems", "--domain", "arithmetic", "--count", "3", "--max-operations", "2", "--out", str(arithmetic)).returncode == 0
    assert all(len(p.operations) <= 2 for p in read_jsonl(arithmetic, Problem))

    for args, message in [
        (["--domain", "nope", "--count", "2"], "unknown domain 'nope'"),
        (["--domain", "logic", "--count", "2", "--option", "depth"], "write KEY=VALUE"),
        (["--domain", "logic", "--count", "2", "--option", "depth=3"], "no generator option"),
        (["--domain", "logic", "--count", "2", "--option", "max_depth=9"], "max_depth"),
        (["--domain", "logic", "--count", "0"], "argument --count: must be at least 1"),
        (["--domain", "logic", "--file", "x.json"], "generated, not loaded"),
    ]:
        one_line_error(dca_in_process("problems", *args, "--out", tmp_path / "bad.jsonl"), message)


# ---------------------------------------------------------------------------------------------
# reasoning-gym puzzles

PUZZLES = ["knights-knaves", "syllogism", "propositional-logic", "zebra-puzzles", "family-relationships"]


@pytest.mark.parametrize("name", PUZZLES)
def test_reasoning_gym_domains_score_with_their_own_scorer(name):
    from dca.domains.sources import generate

    problems = generate(name, 2, 11)
    assert [p.question for p in generate(name, 2, 11)] == [p.question for p in problems]  # seeded
    for p in problems:
        assert p.domain == name and p.metadata["reasoning_gym"]["index"] in (0, 1)
        right = check(p, f"Let me think.\nAnswer: {p.answer}")
        assert right.outcome == "correct" and right.reward == 1.0
        wrong = check(p, "Answer: zzz qqq")
        assert wrong.outcome == "wrong" and wrong.reward < 1.0
        assert check(p, p.answer).outcome == "format_failure"  # no Answer: line


def test_reasoning_gym_rebuilds_the_entry_or_falls_back_to_the_stored_copy():
    from dca.domains.sources import generate

    p = generate("family-relationships", 1, 3)[0]
    moved = Problem(**{**p.__dict__, "question": p.question + " (edited)"})
    assert check(moved, f"Answer: {p.answer}").outcome == "correct"  # scored from the stored answer and metadata


def _knights_problem():
    from dca.domains.sources import generate

    return next(p for p in generate("knights-knaves", 6, 2) if len(p.metadata["entry"]["names"]) == 2)


def test_knights_knaves_oracle_labels_from_the_solution():
    from dca.review import OracleReviewer
    from dca.segment import segment

    p = _knights_problem()
    entry = p.metadata["entry"]
    (a, b), (sa, sb) = entry["names"], entry["solution"]
    knight, knave = entry["knight_knave_terms"]["knight"], entry["knight_knave_terms"]["knave"]
    role = {True: knight, False: knave}
    text = (
        f"{a} said something about {b}. Suppose {a} is a {role[not sa]}. "
        f"So {a} is a {role[sa]}. Then {b} is a {role[not sb]}. Nice weather today.\nAnswer: {p.answer}"
    )
    units = segment(text)
    review = OracleReviewer().review(p, text, units, trace_id="t")
    labels = [next((s.function, s.contribution) for s in review.steps if s.first_unit <= u.index <= s.last_unit) for u in units]
    assert labels == [
        ("given_fact", "indirect"), ("computation", "essential"), ("computation", "essential"),
        ("computation", "error"), ("other", "irrelevant"), ("conclusion", "solved"),
    ]  # fmt: skip
    quoted = f'{a} says "{b} is a {role[not sb]}".\nAnswer: nobody'
    labels = [s.contribution for s in OracleReviewer().review(p, quoted, segment(quoted), trace_id="t").steps]
    assert labels == ["indirect", "error"]  # a quoted claim is not asserted; a wrong answer is an error


# ---------------------------------------------------------------------------------------------
# Common sense: StrategyQA format

STRATEGYQA = [
    {
        "qid": "q1", "term": "Hydrogen", "description": "Chemical element with atomic number 1",
        "question": "Are more people today related to Genghis Khan than Julius Caesar?", "answer": True,
        "facts": ["Julius Caesar had three children.", "Genghis Khan had sixteen children."],
        "decomposition": ["How many kids did Julius Caesar have?", "How many kids did Genghis Khan have?", "Is #2 greater than #1?"],
        "evidence": [[[["Julius Caesar-75"]], ["no_evidence"], ["operation"]]],
    },
    {
        "qid": "q2", "term": "Penguin", "description": "A flightless bird",
        "question": "Could a penguin fly across the Atlantic?", "answer": False,
        "facts": ["Penguins cannot fly."], "decomposition": ["Can penguins fly?"],
    },
]  # fmt: skip


def test_strategyqa_loader_reward_and_reviewer_reference(tmp_path):
    import json

    from dca.records import Trace
    from dca.review.protocol import build_messages
    from dca.segment import segment

    data = tmp_path / "strategyqa_train.json"
    data.write_text(json.dumps(STRATEGYQA))
    problems = load_set(parse_set_spec(f"commonsense@{data}"))
    assert [p.answer for p in problems] == ["Yes", "No"] and all(p.domain == "commonsense" for p in problems)
    assert problems[0].metadata["decomposition"][2] == "Is #2 greater than #1?"
    assert check(problems[0], "Khan had more children.\nAnswer: Yes").outcome == "correct"
    assert check(problems[1], "Answer: yes").outcome == "wrong"
    assert check(problems[1], "Penguins swim.").outcome == "format_failure"
    trace = Trace(id="t", problem_id=problems[0].id, prompt="", completion="Answer: Yes", outcome="correct")
    user = build_messages(problems[0], trace, segment(trace.completion))[1]["content"]
    assert "Reference facts" in user and "Genghis Khan had sixteen children." in user

    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in STRATEGYQA) + "\n")
    out = tmp_path / "cs.jsonl"
    result = dca("problems", "--domain", "commonsense", "--file", str(jsonl), "--count", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out, Problem)) == 1

    unlabelled = tmp_path / "strategyqa_test.json"
    unlabelled.write_text(json.dumps([{"qid": "t1", "question": "Is water wet?"}]))
    one_line_error(dca_in_process("problems", "--domain", "commonsense", "--file", unlabelled, "--out", tmp_path / "x.jsonl"), "test split is unlabelled")
    one_line_error(dca_in_process("problems", "--domain", "commonsense", "--file", tmp_path / "none.json", "--out", tmp_path / "x.jsonl"), "does not exist")


def test_cross_domain_eval_gives_one_column_per_domain(tmp_path, tiny_model_dir, capsys):
    from dca.cli import main
    from dca.evaluate import table_rows

    args = ["eval", "--model", str(tiny_model_dir), "--sets", "logic:2,knights-knaves:2,arithmetic:2", "--max-new-tokens", "8",
            "--probes", "early", "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert list(report["results"]) == ["logic", "knights-knaves", "arithmetic"]
    assert [report["results"][n]["reviewer"] for n in report["results"]] == ["oracle", "oracle", "oracle"]
    assert all(report["results"][n]["reviews_ok"] == 2 for n in report["results"])
    rows = {row[0]: row[1:] for row in table_rows(report)}
    assert rows["domain"] == ("logic", "knights-knaves", "arithmetic") and len(rows["accuracy"]) == 3
    assert "early" in report["results"]["logic"]["faithfulness"]
    printed = capsys.readouterr().out
    assert "knights-knaves" in printed and "logic" in printed
