"""The domain registry and the problem sources: every domain through one interface, used
by `dca problems`, `dca domains`, training configs and `dca eval --sets`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dca.domains import DOMAINS, check, domain_of, get_domain
from dca.domains.sources import DomainSettings, ProblemsSettings, load_problems, load_set, parse_set_spec
from dca.errors import UserError
from dca.problems.labels import check_against_gold, check_label, extract_text_answer
from dca.prompting import SYSTEM_PROMPT, chat_messages
from dca.records import Problem, read_jsonl


def dca(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dca.cli", *args], capture_output=True, text=True, timeout=300)


def test_registry_holds_the_domains_with_what_they_support():
    assert {"arithmetic", "gsm8k", "logic"} <= set(DOMAINS)
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
        (["--domain", "logic", "--count", "0"], "--count must be at least 1"),
        (["--domain", "logic", "--file", "x.json"], "generated, not loaded"),
    ]:
        bad = dca("problems", *args, "--out", str(tmp_path / "bad.jsonl"))
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, (args, bad.stderr)
