"""`dca consensus`, `dca agreement` and `dca show`, run as a user runs them (subprocess), on
gold traces reviewed by the oracle, a gold-role reviewer and a noisy reviewer; their
refusals run in this process (`conftest.dca_in_process`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import dca, dca_in_process, one_line_error
from dca.records import Consensus
from dca.files import read_jsonl, write_jsonl
from gold_traces import gold_traces, review_all, three_reviewers


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run-directory-like folder: problems, traces and three reviewers' reviews of 40 traces."""
    run = tmp_path_factory.mktemp("run")
    golds = gold_traces(40, seed=7)
    write_jsonl(run / "problems.jsonl", [g.problem for g in golds])
    write_jsonl(run / "traces.jsonl", [g.trace for g in golds])
    write_jsonl(run / "reviews.jsonl", review_all(golds, three_reviewers(golds, 0.3)))
    return run


def test_consensus(run_dir, tmp_path):
    out = tmp_path / "consensus.jsonl"
    result = dca("consensus", "--reviews", str(run_dir / "reviews.jsonl"), "--rule", "unanimous", "--out", str(out))
    assert result.returncode == 0, result.stderr
    consensuses = read_jsonl(out, Consensus)
    assert len(consensuses) == 40 and all(c.rule == "unanimous" and len(c.reviewers) == 3 for c in consensuses)
    assert any(c.disputed_units for c in consensuses)
    assert "wrote 40 consensus records (unanimous)" in result.stdout


def test_agreement_prints_tables_and_writes_json(run_dir, tmp_path):
    out = tmp_path / "agreement.json"
    result = dca("agreement", "--reviews", str(run_dir / "reviews.jsonl"), "--truth", "oracle", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["traces"] == 40 and report["reviewers"] == ["gold-roles", "noisy", "oracle"]
    assert 0.3 < report["labels"]["alpha"] < 0.95 and 0.3 < report["labels"]["kappa"] < 0.95
    assert set(report["by_outcome"]) == {"solved", "failed"} and "arithmetic" in report["by_domain"]  # found beside the reviews
    assert report["truth"]["reviewers"]["gold-roles"]["useful"]["f1"] > report["truth"]["reviewers"]["noisy"]["useful"]["f1"]
    for text in ("Krippendorff's alpha", "Fleiss' kappa", "noisy / oracle", "first-error F1", f"{report['labels']['alpha']:.3f}"):
        assert text in result.stdout


def test_agreement_compares_two_reviewers_paired_with_intervals(run_dir, tmp_path):
    """The gold-role reviewer against the noisy one (30 % of labels flipped), both against the
    oracle: gold-roles is the better reviewer and the interval of the difference excludes 0."""
    out = tmp_path / "compare.json"
    result = dca("agreement", "--reviews", str(run_dir / "reviews.jsonl"), "--truth", "oracle",
                 "--compare", "noisy,gold-roles", "--draws", "300", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    c = report["comparison"]
    assert (c["truth"], c["a"], c["b"], c["traces"], c["draws"]) == ("oracle", "noisy", "gold-roles", 40, 300)
    quality = report["truth"]["reviewers"]
    for figure, key in (("useful_f1", "useful"), ("error_f1", "error")):
        f = c["figures"][figure]
        assert f["a"] == pytest.approx(quality["noisy"][key]["f1"]) and f["b"] == pytest.approx(quality["gold-roles"][key]["f1"])
    alpha = c["figures"]["alpha"]
    assert alpha["difference"] == pytest.approx(alpha["b"] - alpha["a"]) and alpha["difference"] > 0
    assert 0 < alpha["low"] <= alpha["difference"] <= alpha["high"]
    assert "gold-roles against noisy, paired on 40 traces" in result.stdout
    again = dca("agreement", "--reviews", str(run_dir / "reviews.jsonl"), "--truth", "oracle",
                "--compare", "noisy,gold-roles", "--draws", "300", "--out", str(out), "--overwrite")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(out.read_text())["comparison"] == c  # seeded: the same intervals run to run


def test_show_writes_a_page(run_dir, tmp_path):
    out = tmp_path / "report.html"
    result = dca("show", str(run_dir), "--out", str(out), "--limit", "10")
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count('<section class="trace"') == 10
    again = dca("show", str(run_dir / "reviews.jsonl"), str(run_dir / "traces.jsonl"), "--out", str(out), "--overwrite")
    assert again.returncode == 0 and out.read_text().count('<section class="trace"') == 40


@pytest.mark.parametrize(
    "args, message",
    [
        (["consensus", "--reviews", "missing.jsonl", "--out", "c.jsonl"], "reviews file missing.jsonl does not exist"),
        (["consensus", "--reviews", "{reviews}", "--rule", "most", "--out", "c.jsonl"], "unknown consensus rule 'most'"),
        (["agreement", "--reviews", "{reviews}", "--truth", "gpt", "--out", "{tmp}/a.json"], "no reviews by 'gpt'"),
        (["agreement", "--reviews", "{problems}"], "not a valid Review record"),
        (["agreement", "--reviews", "{reviews}", "--compare", "noisy,oracle", "--out", "{tmp}/a.json"], "--compare needs --truth"),
        (["agreement", "--reviews", "{reviews}", "--truth", "oracle", "--compare", "noisy", "--out", "{tmp}/a.json"], "--compare takes two reviewer names"),
        (["agreement", "--reviews", "{reviews}", "--truth", "oracle", "--compare", "noisy,gpt", "--out", "{tmp}/a.json"], "no reviews by 'gpt'"),
        (["agreement", "--reviews", "{reviews}", "--truth", "oracle", "--compare", "noisy,oracle", "--out", "{tmp}/a.json"], "compare two reviewers other than the truth"),
        (["show", "{tmp}/nothing", "--out", "{tmp}/r.html"], "does not exist"),
        (["show", "{reviews}", "--out", "{tmp}/no/such/dir/r.html"], "does not exist; create it"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, args, message):
    fill = {"reviews": str(run_dir / "reviews.jsonl"), "problems": str(run_dir / "problems.jsonl"), "tmp": str(tmp_path)}
    one_line_error(dca_in_process(*[a.format(**fill) for a in args]), message)
