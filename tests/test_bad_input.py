"""The bad-input suite: a matrix of user mistakes run through the real `dca` command.

Every case runs `dca.cli.main` (cwd: a folder of valid and broken inputs; `conftest.dca_in_process`)
and must end with exit code 2, exactly one stderr line ``dca: error: ...`` that names the
problem, no traceback, every file it was given unchanged (checksums) and nothing new written:
no output, no ``.partial``, no lock file. The test ids count the cases
(``007of399-consensus-reviews-missing``).

The cases run in this process, one after another, so each costs what its checks cost, not an
interpreter start and its imports. The `IN_A_PROCESS` cases, at least one per command, run
again as ``python -m dca.cli ...`` in a child process (`conftest.dca`), several at a time
while the others run here; each must pass the same checks and print the same line with the
same exit code as in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import CALL_STDERR, CALL_STDOUT, dca, dca_commands, dca_in_process, loggers, one_line_error
from dca import files
from dca.consensus import build_consensuses
from dca.edit import EditConfig, edit_traces
from dca.records import Edit, to_dict
from dca.files import write_jsonl
from gold_traces import gold_traces, review_all, three_reviewers
from lock_holder import held_locks


@dataclass
class Case:
    id: str
    argv: str
    """The arguments after ``dca``, shell-quoted; ``{M}`` is a tiny model directory."""
    needle: str
    """A regular expression the one stderr line must match."""
    env: dict[str, str] = field(default_factory=dict)


C = Case
CASES: list[Case] = []


def cases(*items: Case) -> None:
    CASES.extend(items)


# ---------------------------------------------------------------------------------------------
# Faults of an input file, for every command that reads records

FILE_FAULTS = [
    ("missing", "nowhere.jsonl", r"nowhere\.jsonl does not exist"),
    ("directory", "bad/dir.jsonl", r"bad/dir\.jsonl is a directory"),
    ("empty", "bad/empty.jsonl", r"bad/empty\.jsonl holds no records"),
    ("blank-lines", "bad/blank.jsonl", r"bad/blank\.jsonl holds no records"),
    ("not-utf8", "bad/latin1.jsonl", r"bad/latin1\.jsonl is not UTF-8"),
    ("not-json", "bad/notjson.jsonl", r"bad/notjson\.jsonl:2: not JSON"),
    ("json-array", "bad/array.jsonl", r"bad/array\.jsonl:1: .*JSON object, not a list"),
    ("unknown-field", "bad/unknown-field.jsonl", r"bad/unknown-field\.jsonl:1: .*(no field\(s\) colour|this is a Trace record)"),
]
READERS = {
    # command -> (argv with {F} for the file, record kind it expects)
    "consensus-reviews": ("consensus --reviews {F} --out out/c.jsonl", "Review"),
    "agreement-reviews": ("agreement --reviews {F} --out out/a.json", "Review"),
    "agreement-traces": ("agreement --reviews reviews.jsonl --traces {F} --out out/a.json", "Trace"),
    "agreement-problems": ("agreement --reviews reviews.jsonl --problems {F} --out out/a.json", "Problem"),
    "show-file": ("show {F} --out out/s.html", None),
    "edit-traces": ("edit --traces {F} --problems problems.jsonl --consensus consensus.jsonl --tokenizer words --out out/e.jsonl", "Trace"),
    "edit-consensus": ("edit --traces traces.jsonl --consensus {F} --tokenizer words --out out/e.jsonl", "Consensus"),
    "edit-reviews": ("edit --traces traces.jsonl --reviews {F} --reviewer oracle --tokenizer words --out out/e.jsonl", "Review"),
    "edit-problems": ("edit --traces traces.jsonl --problems {F} --consensus consensus.jsonl --tokenizer words --out out/e.jsonl", "Problem"),
    "review-traces": ("review --traces {F} --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl", "Trace"),
    "review-problems": ("review --traces traces.jsonl --problems {F} --reviewers reviewers.yaml --no-cache --out out/r.jsonl", "Problem"),
    "rollout-problems": ("rollout --problems {F} --model {M} --out out/t.jsonl", "Problem"),
    "sft-edits": ("sft --edits {F} --model {M} --out out/sft", "Edit"),
}
for reader, (argv, kind) in READERS.items():
    for fault, path, needle in FILE_FAULTS:
        if reader == "show-file" and fault in ("empty", "blank-lines"):
            needle = re.escape(path) + " is empty"
        if reader == "show-file" and fault == "directory":  # a folder is read as a run directory
            needle = re.escape(path) + " holds no traces.jsonl or reviews.jsonl"
        if reader == "show-file" and fault == "json-array":
            needle = re.escape(path) + ":1: not a JSON object"
        if reader == "show-file" and fault == "unknown-field":
            continue  # show picks the record kind from the keys; covered by the record cases below
        cases(C(f"{reader}-{fault}", argv.replace("{F}", path), needle))
    if kind is not None:  # the wrong kind of record: each file given where another is expected
        wrong = "traces.jsonl" if kind != "Trace" else "reviews.jsonl"
        found = "Trace" if kind != "Trace" else "Review"
        cases(C(f"{reader}-wrong-kind", argv.replace("{F}", wrong), rf"{re.escape(wrong)}:1: not a valid {kind} record: this is a {found} record"))

# ---------------------------------------------------------------------------------------------
# Records that parse as JSON but are wrong: types, vocabularies, ranges

BAD_TRACES = {
    "trace-id-list": (r"id should be a string, not a list"),
    "trace-reward-string": (r"reward should be a number, not a string"),
    "trace-outcome-banana": (r'outcome is "banana", not one of correct, wrong, format_failure'),
    "trace-token-ids-string": (r"completion_token_ids should be a list, not a string"),
    "trace-missing-completion": (r"missing the field\(s\) completion"),
}
for name, needle in BAD_TRACES.items():
    cases(
        C(f"edit-{name}", f"edit --traces bad/{name}.jsonl --problems problems.jsonl --consensus consensus.jsonl --tokenizer words --out out/e.jsonl", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"show-{name}", f"show bad/{name}.jsonl --out out/s.html", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"agreement-{name}", f"agreement --reviews reviews.jsonl --traces bad/{name}.jsonl --out out/a.json", rf"bad/{name}\.jsonl:2: .*{needle}"),
    )
cases(C("review-trace-id-list", "review --traces bad/trace-id-list.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl", r"trace-id-list\.jsonl:2: .*id should be a string"))

BAD_REVIEWS = {
    "review-units-ints": r"units\[0\] should be an object \(Unit\), not a number",
    "review-steps-string": r"steps should be a list, not a string",
    "review-contribution-banana": r'steps\[0\]\.contribution is "banana", not one of solved',
    "review-function-magic": r'steps\[0\]\.function is "magic"',
    "review-last-unit-999": r"steps\[0\] names unit 999, but there are \d+ units",
    "review-step-backwards": r"steps\[0\] runs from unit 1 back to unit 0",
    "review-status-maybe": r'status is "maybe", not one of ok, failed',
    "review-unreviewed-out-of-range": r"unreviewed_units names unit 50",
    "review-unit-index-gap": r"units\[1\]\.index is 5, expected 1",
    "review-trace-id-number": r"trace_id should be a string, not a number",
}
for name, needle in BAD_REVIEWS.items():
    cases(
        C(f"consensus-{name}", f"consensus --reviews bad/{name}.jsonl --out out/c.jsonl", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"agreement-{name}", f"agreement --reviews bad/{name}.jsonl --out out/a.json", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"show-{name}", f"show bad/{name}.jsonl --out out/s.html", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"edit-{name}", f"edit --traces traces.jsonl --reviews bad/{name}.jsonl --reviewer oracle --tokenizer words --out out/e.jsonl", rf"bad/{name}\.jsonl:2: .*{needle}"),
    )

BAD_CONSENSUS = {
    "consensus-vote-banana": r'unit_votes\[0\]\.oracle is "banana"',
    "consensus-disputed-out-of-range": r"disputed_units names unit 77",
    "consensus-fraction-2": r"fraction_agreed is 2\.0, not a fraction",
    "consensus-votes-length": r"unit_votes has 1 entries for \d+ units",
}
for name, needle in BAD_CONSENSUS.items():
    cases(
        C(f"edit-{name}", f"edit --traces traces.jsonl --consensus bad/{name}.jsonl --tokenizer words --out out/e.jsonl", rf"bad/{name}\.jsonl:2: .*{needle}"),
        C(f"show-{name}", f"show bad/{name}.jsonl --out out/s.html", rf"bad/{name}\.jsonl:2: .*{needle}"),
    )
cases(
    C("sft-edit-status-banana", "sft --edits bad/edit-status-banana.jsonl --model {M} --out out/sft", r'bad/edit-status-banana\.jsonl:1: .*status is "banana"'),
    C("sft-edit-span-kind", "sft --edits bad/edit-span-kind.jsonl --model {M} --out out/sft", r'bad/edit-span-kind\.jsonl:1: .*spans\[0\]\.kind is "moved"'),
    C("sft-edits-all-skipped", "sft --edits bad/edits-skipped.jsonl --model {M} --out out/sft", r"holds no trained-on edit"),
    C("show-credit-count", "show bad/credit-count.jsonl --out out/s.html", r"credited_tokens is 9 for 3 tokens"),
    C("show-problem-question-number", "show bad/problem-question-number.jsonl --out out/s.html", r"question should be a string, not a number"),
    C("rollout-problem-question-number", "rollout --problems bad/problem-question-number.jsonl --model {M} --out out/t.jsonl", r"question should be a string, not a number"),
    C("show-run-dir-without-records", "show bad --out out/s.html", r"bad holds no traces\.jsonl or reviews\.jsonl"),
    C("show-first-line-not-object", "show bad/array.jsonl --out out/s.html", r"bad/array\.jsonl:1: not a JSON object"),
)

# ---------------------------------------------------------------------------------------------
# Outputs: never an input, never an existing file without --overwrite, never a foreign folder

cases(
    # output == input, in every spelling, with or without --overwrite
    C("review-out-is-traces", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out traces.jsonl --overwrite", r"--out traces\.jsonl is also an input"),
    C("review-out-is-problems", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out ./problems.jsonl --overwrite", r"is also an input"),
    C("review-out-is-reviewers", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out reviewers.yaml --overwrite", r"is also an input"),
    C("review-summary-is-traces", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl --summary-json traces.jsonl --overwrite", r"--summary-json traces\.jsonl is also an input"),
    C("review-summary-is-out", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl --summary-json out/r.jsonl", r"--summary-json and --out are the same file"),
    C("review-out-is-cache", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --cache cache.sqlite --out cache.sqlite --overwrite", r"is also an input"),
    C("consensus-out-is-reviews", "consensus --reviews reviews.jsonl --out reviews.jsonl --overwrite", r"--out reviews\.jsonl is also an input"),
    C("consensus-out-is-reviews-dotdot", "consensus --reviews reviews.jsonl --out bad/../reviews.jsonl --overwrite", r"is also an input"),
    C("consensus-out-is-reviews-symlink", "consensus --reviews reviews.jsonl --out reviews-link.jsonl --overwrite", r"is also an input"),
    C("consensus-out-is-reviews-hardlink", "consensus --reviews reviews-hardlink.jsonl --out reviews.jsonl --overwrite", r"is also an input"),
    C("agreement-out-is-reviews", "agreement --reviews reviews.jsonl --out reviews.jsonl --overwrite", r"is also an input"),
    C("agreement-out-is-traces", "agreement --reviews reviews.jsonl --out traces.jsonl --overwrite", r"is also an input"),
    C("agreement-out-is-problems", "agreement --reviews reviews.jsonl --out problems.jsonl --overwrite", r"is also an input"),
    C("show-out-is-input", "show traces.jsonl reviews.jsonl --out reviews.jsonl --overwrite", r"is also an input"),
    C("show-out-is-run-file", "show . --out traces.jsonl --overwrite", r"is also an input"),
    C("edit-out-is-traces", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out traces.jsonl --overwrite", r"is also an input"),
    C("edit-out-is-consensus", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out consensus.jsonl --overwrite", r"is also an input"),
    C("edit-out-is-problems", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out problems.jsonl --overwrite", r"is also an input"),
    C("edit-figures-is-input", "edit --traces traces.jsonl --consensus consensus.jsonl --problems bad/e.figures.json --tokenizer words --out bad/e.jsonl --overwrite", r"figures file bad/e\.figures\.json is also an input"),
    C("rollout-out-is-problems", "rollout --problems problems.jsonl --model {M} --out problems.jsonl --overwrite", r"is also an input"),
    C("problems-out-is-gsm8k-file", "problems --gsm8k bad/gsm8k.jsonl --out bad/gsm8k.jsonl --overwrite", r"is also an input"),
    # existing outputs without --overwrite
    C("problems-out-exists", "problems --synthetic 3 --out exists/out.jsonl", r"--out exists/out\.jsonl exists; pass --overwrite"),
    C("rollout-out-exists", "rollout --problems problems.jsonl --model {M} --out exists/out.jsonl", r"exists; pass --overwrite"),
    C("review-out-exists", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out exists/out.jsonl", r"exists; pass --overwrite"),
    C("review-summary-exists", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl --summary-json exists/out.json", r"--summary-json exists/out\.json exists"),
    C("consensus-out-exists", "consensus --reviews reviews.jsonl --out exists/out.jsonl", r"exists; pass --overwrite"),
    C("agreement-out-exists", "agreement --reviews reviews.jsonl --out exists/out.json", r"exists; pass --overwrite"),
    C("agreement-default-out-exists", "agreement --reviews exists/reviews.jsonl", r"exists/reviews\.agreement\.json exists"),
    C("show-out-exists", "show reviews.jsonl --out exists/out.html", r"exists; pass --overwrite"),
    C("edit-out-exists", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out exists/out.jsonl", r"exists; pass --overwrite"),
    C("edit-figures-exist", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out exists/edits.jsonl", r"figures file exists/edits\.figures\.json exists"),
    # outputs that are folders, or in folders that are missing
    C("problems-out-is-dir", "problems --synthetic 3 --out out", r"--out out is a directory"),
    C("consensus-out-is-dir", "consensus --reviews reviews.jsonl --out bad/dir.jsonl --overwrite", r"is a directory"),
    C("show-out-is-dir", "show reviews.jsonl --out out", r"is a directory"),
    C("edit-out-is-dir", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer words --out out --overwrite", r"is a directory"),
    C("review-out-is-dir", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --no-cache --out out", r"is a directory"),
    C("problems-out-parent-missing", "problems --synthetic 3 --out nowhere/p.jsonl", r"directory nowhere does not exist"),
    C("consensus-out-parent-missing", "consensus --reviews reviews.jsonl --out nowhere/c.jsonl", r"directory nowhere does not exist"),
    C("agreement-out-parent-missing", "agreement --reviews reviews.jsonl --out nowhere/a.json", r"directory nowhere does not exist"),
    C("out-empty-string", "consensus --reviews reviews.jsonl --out ''", r"--out is empty"),
    # output directories
    C("sft-out-is-file", "sft --edits edits.jsonl --model {M} --out exists/out.jsonl", r"--out exists/out\.jsonl is a file"),
    C("sft-out-not-empty", "sft --edits edits.jsonl --model {M} --out foreign", r"--out foreign is not empty"),
    C("sft-overwrite-foreign", "sft --edits edits.jsonl --model {M} --out foreign --overwrite", r"holds files that are not a DCA sft checkpoint"),
    C("sft-out-holds-edits", "sft --edits old-sft/edits.jsonl --model {M} --out old-sft --overwrite", r"holds an input of this command"),
    C("sft-out-holds-model", "sft --edits edits.jsonl --model old-sft/model --out old-sft --overwrite", r"holds an input of this command"),
    C("eval-overwrite-foreign", "eval --model {M} --sets synthetic-easy:2 --probes '' --reviewer none --out foreign --overwrite", r"holds files that are not a DCA evaluation"),
    C("eval-out-not-empty", "eval --model {M} --sets synthetic-easy:2 --probes '' --reviewer none --out foreign", r"--out foreign is not empty"),
    C("eval-out-is-file", "eval --model {M} --sets synthetic-easy:2 --probes '' --reviewer none --out exists/out.json", r"is a file"),
    C("eval-live", "eval --model {M} --sets synthetic-easy:2 --probes '' --reviewer none --out live-eval --overwrite", r"live-eval is being written by another process \(pid \d+\)"),
    C("train-overwrite-foreign", "train --config train.yaml --out foreign --overwrite", r"holds files that are not a DCA run"),
    C("train-out-not-empty", "train --config train.yaml --out foreign", r"--out foreign is not empty"),
    C("train-out-is-file", "train --config train.yaml --out exists/out.json", r"is a file"),
    C("train-live", "train --config train.yaml --out live-run --overwrite", r"live-run is being written by another process \(pid \d+\)"),
    C("train-out-holds-problems", "train --config old-run/train.yaml --out old-run --overwrite", r"holds an input of this command"),
    C("demo-overwrite-foreign", "demo --out foreign --overwrite", r"holds files that are not a DCA demo"),
    C("demo-overwrite-experiment", "demo --out an-experiment --overwrite", r"holds an experiment that is not a demo"),
)

# ---------------------------------------------------------------------------------------------
# Arguments, checked before any work

cases(
    C("problems-synthetic-negative", "problems --synthetic -5 --out out/p.jsonl", r"argument --synthetic: must be at least 1, got -5"),
    C("problems-synthetic-zero", "problems --synthetic 0 --out out/p.jsonl", r"argument --synthetic: must be at least 1"),
    C("problems-synthetic-word", "problems --synthetic many --out out/p.jsonl", r"argument --synthetic: 'many' is not a whole number"),
    C("problems-limit-negative", "problems --gsm8k bad/gsm8k.jsonl --limit -1 --out out/p.jsonl", r"argument --limit: must be at least 1"),
    C("problems-limit-zero", "problems --gsm8k bad/gsm8k.jsonl --limit 0 --out out/p.jsonl", r"argument --limit: must be at least 1"),
    C("problems-max-operations-zero", "problems --synthetic 3 --max-operations 0 --out out/p.jsonl", r"argument --max-operations"),
    C("problems-min-above-max", "problems --synthetic 3 --min-operations 4 --max-operations 2 --out out/p.jsonl", r"operations"),
    C("problems-max-operations-9", "problems --synthetic 3 --max-operations 9 --out out/p.jsonl", r"operations"),
    C("problems-distractors-negative", "problems --synthetic 3 --distractors -1 2 --out out/p.jsonl", r"argument --distractors"),
    C("problems-distractors-reversed", "problems --synthetic 3 --distractors 3 1 --out out/p.jsonl", r"distractors"),
    C("problems-max-value-zero", "problems --synthetic 3 --max-value 0 --out out/p.jsonl", r"argument --max-value"),
    C("problems-gsm8k-missing", "problems --gsm8k nowhere.jsonl --out out/p.jsonl", r"nowhere\.jsonl"),
    C("problems-gsm8k-empty", "problems --gsm8k bad/empty.jsonl --out out/p.jsonl", r"empty\.jsonl"),
    C("problems-gsm8k-not-json", "problems --gsm8k bad/notjson.jsonl --out out/p.jsonl", r"notjson\.jsonl"),
    C("problems-no-source", "problems --out out/p.jsonl", r"one of the arguments --synthetic --gsm8k --domain is required"),
    C("problems-both-sources", "problems --synthetic 3 --gsm8k test --out out/p.jsonl", r"not allowed with argument"),
    C("rollout-samples-zero", "rollout --problems problems.jsonl --model {M} --samples 0 --out out/t.jsonl", r"argument --samples: must be at least 1"),
    C("rollout-limit-zero", "rollout --problems problems.jsonl --model {M} --limit 0 --out out/t.jsonl", r"argument --limit"),
    C("rollout-limit-negative", "rollout --problems problems.jsonl --model {M} --limit -1 --out out/t.jsonl", r"argument --limit"),
    C("rollout-batch-size-zero", "rollout --problems problems.jsonl --model {M} --batch-size 0 --out out/t.jsonl", r"argument --batch-size"),
    C("rollout-max-new-tokens-zero", "rollout --problems problems.jsonl --model {M} --max-new-tokens 0 --out out/t.jsonl", r"argument --max-new-tokens"),
    C("rollout-temperature-negative", "rollout --problems problems.jsonl --model {M} --temperature -1 --out out/t.jsonl", r"argument --temperature"),
    C("rollout-temperature-nan", "rollout --problems problems.jsonl --model {M} --temperature nan --out out/t.jsonl", r"argument --temperature: must be a finite number"),
    C("rollout-greedy-samples", "rollout --problems problems.jsonl --model {M} --samples 4 --out out/t.jsonl", r"temperature"),
    C("rollout-model-missing", "rollout --problems problems.jsonl --model ./no-model --out out/t.jsonl", r"model path \./no-model does not exist"),
    C("rollout-model-not-a-model", "rollout --problems problems.jsonl --model bad --out out/t.jsonl", r"bad is not a model directory"),
    C("rollout-model-hub-offline", "rollout --problems problems.jsonl --model nobody-here/no-model --out out/t.jsonl", r"hub model nobody-here/no-model is not in the local Hugging Face cache"),
    C("rollout-model-bad-id", "rollout --problems problems.jsonl --model 'a b c' --out out/t.jsonl", r"neither 'embedded', a checkpoint directory nor a hub id"),
    C("warmstart-steps-zero", "warmstart --steps 0", r"argument --steps: must be at least 1"),
    C("warmstart-learning-rate-negative", "warmstart --learning-rate -1", r"argument --learning-rate: must be greater than 0"),
    C("warmstart-learning-rate-nan", "warmstart --learning-rate nan", r"argument --learning-rate: must be a finite number"),
    C("warmstart-irrelevant-rate-2", "warmstart --irrelevant-rate 2", r"argument --irrelevant-rate: must be at most 1"),
    C("warmstart-batch-size-zero", "warmstart --batch-size 0", r"argument --batch-size"),
    C("warmstart-model-hub-offline", "warmstart --model nobody-here/no-model --steps 1", r"not in the local Hugging Face cache"),
    C("demo-steps-zero", "demo --steps 0 --out out/demo", r"argument --steps"),
    C("demo-eval-problems-zero", "demo --eval-problems 0 --out out/demo", r"argument --eval-problems"),
    C("demo-warmstart-steps-negative", "demo --warmstart-steps -1 --out out/demo", r"argument --warmstart-steps"),
    C("review-limit-zero", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --limit 0 --out out/r.jsonl", r"argument --limit"),
    C("review-limit-negative", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --limit -1 --out out/r.jsonl", r"argument --limit"),
    C("review-unknown-reviewer", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --reviewer nobody --no-cache --out out/r.jsonl", r"nobody"),
    C("review-reviewers-missing", "review --traces traces.jsonl --problems problems.jsonl --reviewers nowhere.yaml --no-cache --out out/r.jsonl", r"reviewers file nowhere\.yaml does not exist"),
    C("review-reviewers-dir", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad --no-cache --out out/r.jsonl", r"reviewers file bad is a directory"),
    C("review-reviewers-duplicate-key", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-duplicate.yaml --no-cache --out out/r.jsonl", r"duplicate key 'backend'"),
    C("review-reviewers-invalid-yaml", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/invalid.yaml --no-cache --out out/r.jsonl", r"not valid YAML"),
    C("review-reviewers-not-utf8", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/latin1.yaml --no-cache --out out/r.jsonl", r"not UTF-8"),
    C("review-reviewers-scalar", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/scalar.yaml --no-cache --out out/r.jsonl", r"reviewers"),
    C("review-reviewers-unknown-backend", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-backend.yaml --no-cache --out out/r.jsonl", r"backend"),
    C("review-reviewers-inline-key", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-api-key.yaml --no-cache --out out/r.jsonl", r"api_key"),
    C("review-reviewers-params-key", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-params-key.yaml --no-cache --out out/r.jsonl", r"params\.api_key: API keys do not belong in the file"),
    C("review-reviewers-params-header-key", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-params-header.yaml --no-cache --out out/r.jsonl", r"params\.X-Api-Key: API keys do not belong"),
    C("review-reviewers-backoff-max", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-backoff.yaml --no-cache --out out/r.jsonl", r"backoff_max"),
    C("review-reviewers-timeout-zero", "review --traces traces.jsonl --problems problems.jsonl --reviewers bad/reviewers-timeout.yaml --no-cache --out out/r.jsonl", r"timeout"),
    C("review-cache-is-dir", "review --traces traces.jsonl --problems problems.jsonl --reviewers reviewers.yaml --cache bad --out out/r.jsonl", r"cannot open the review cache bad"),
    C("review-no-problems-beside", "review --traces bad/traces-alone/traces.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl", r"problems"),
    C("review-problem-unknown", "review --traces traces.jsonl --problems bad/other-problems.jsonl --reviewers reviewers.yaml --no-cache --out out/r.jsonl", r"problem"),
    C("consensus-rule-bogus", "consensus --reviews reviews.jsonl --rule bogus --out out/c.jsonl", r"bogus"),
    C("consensus-rule-at-least-0", "consensus --reviews reviews.jsonl --rule at-least-0 --out out/c.jsonl", r"at-least-0"),
    C("agreement-unknown-truth", "agreement --reviews reviews.jsonl --truth nobody --out out/a.json", r"nobody"),
    C("agreement-weighting-bogus", "agreement --reviews reviews.jsonl --weighting bytes --out out/a.json", r"argument --weighting: invalid choice"),
    C("show-limit-zero", "show reviews.jsonl --limit 0 --out out/s.html", r"argument --limit"),
    C("show-rule-bogus", "show reviews.jsonl --rule bogus --out out/s.html", r"bogus"),
    C("show-path-missing", "show nowhere.jsonl --out out/s.html", r"nowhere\.jsonl does not exist"),
    C("edit-no-labels", "edit --traces traces.jsonl --tokenizer words --out out/e.jsonl", r"exactly one of --consensus FILE or --reviews FILE"),
    C("edit-both-labels", "edit --traces traces.jsonl --consensus consensus.jsonl --reviews reviews.jsonl --tokenizer words --out out/e.jsonl", r"exactly one of"),
    C("edit-mode-bogus", "edit --traces traces.jsonl --consensus consensus.jsonl --mode glue --tokenizer words --out out/e.jsonl", r"argument --mode: invalid choice"),
    C("edit-drop-banana", "edit --traces traces.jsonl --consensus consensus.jsonl --drop banana --tokenizer words --out out/e.jsonl", r"banana"),
    C("edit-max-bridge-chars-zero", "edit --traces traces.jsonl --consensus consensus.jsonl --max-bridge-chars 0 --tokenizer words --out out/e.jsonl", r"argument --max-bridge-chars"),
    C("edit-bridge-llm-without-reviewers", "edit --traces traces.jsonl --consensus consensus.jsonl --mode bridge-llm --tokenizer words --out out/e.jsonl", r"--bridge-reviewers"),
    C("edit-several-reviews-per-trace", "edit --traces traces.jsonl --reviews reviews.jsonl --tokenizer words --out out/e.jsonl", r"several reviews of trace"),
    C("edit-reviewer-absent", "edit --traces traces.jsonl --reviews reviews.jsonl --reviewer nobody --tokenizer words --out out/e.jsonl", r"no review by 'nobody'"),
    C("edit-tokenizer-missing", "edit --traces traces.jsonl --consensus consensus.jsonl --tokenizer ./no-tokenizer --out out/e.jsonl", r"no-tokenizer does not exist"),
    C("edit-no-problems-beside", "edit --traces bad/traces-alone/traces.jsonl --consensus consensus.jsonl --tokenizer words --out out/e.jsonl", r"no problems\.jsonl beside"),
    C("sft-max-steps-zero", "sft --edits edits.jsonl --model {M} --max-steps 0 --out out/sft", r"argument --max-steps"),
    C("sft-learning-rate-zero", "sft --edits edits.jsonl --model {M} --learning-rate 0 --out out/sft", r"argument --learning-rate"),
    C("sft-batch-size-negative", "sft --edits edits.jsonl --model {M} --batch-size -1 --out out/sft", r"argument --batch-size"),
    C("sft-lora-rank-zero", "sft --edits edits.jsonl --model {M} --lora --lora-rank 0 --out out/sft", r"argument --lora-rank"),
    C("sft-max-length-one", "sft --edits edits.jsonl --model {M} --max-length 1 --out out/sft", r"argument --max-length"),
    C("sft-model-missing", "sft --edits edits.jsonl --model ./no-model --out out/sft", r"no-model does not exist"),
    C("sft-model-hub-offline", "sft --edits edits.jsonl --model nobody-here/no-model --out out/sft", r"not in the local Hugging Face cache"),
    C("eval-set-unknown", "eval --model {M} --sets nowhere-set --out out/eval", r"nowhere-set"),
    C("eval-sets-empty", "eval --model {M} --sets '' --out out/eval", r"set"),
    C("eval-set-limit-zero", "eval --model {M} --sets synthetic-easy:0 --out out/eval", r"synthetic-easy:0"),
    C("eval-set-file-missing", "eval --model {M} --sets nowhere.jsonl --out out/eval", r"nowhere\.jsonl"),
    C("eval-set-file-empty", "eval --model {M} --sets bad/empty.jsonl --out out/eval", r"empty\.jsonl"),
    C("eval-set-file-bad-record", "eval --model {M} --sets bad/problem-question-number.jsonl --out out/eval", r"question should be a string"),
    C("eval-sets-repeat", "eval --model {M} --sets synthetic-easy:2,synthetic-easy:3 --out out/eval", r"repeat"),
    C("eval-samples-zero", "eval --model {M} --samples 0 --out out/eval", r"argument --samples"),
    C("eval-cf-threshold-2", "eval --model {M} --cf-threshold 2 --out out/eval", r"argument --cf-threshold"),
    C("eval-cf-samples-zero", "eval --model {M} --cf-samples 0 --out out/eval", r"argument --cf-samples"),
    C("eval-probe-bogus", "eval --model {M} --probes early,banana --out out/eval", r"banana"),
    C("eval-probe-limit-zero", "eval --model {M} --probe-limit 0 --out out/eval", r"argument --probe-limit: must be at least 1"),
    C("eval-probe-set-not-evaluated", "eval --model {M} --sets synthetic-easy:2 --probe-sets gsm8k-test --out out/eval", r"probe set\(s\) \['gsm8k-test'\] are not among the evaluated sets"),
    C("eval-max-new-tokens-zero", "eval --model {M} --max-new-tokens 0 --out out/eval", r"argument --max-new-tokens"),
    C("eval-model-hub-offline", "eval --model nobody-here/no-model --sets synthetic-easy:2 --out out/eval", r"not in the local Hugging Face cache"),
    C("eval-reviewer-bogus", "eval --model {M} --reviewer gpt --out out/eval", r"unknown reviewer 'gpt'"),
    C("train-config-missing", "train --config nowhere.yaml --out out/run", r"config file nowhere\.yaml does not exist"),
    C("train-config-dir", "train --config bad --out out/run", r"config file bad is a directory"),
    C("train-config-not-utf8", "train --config bad/latin1.yaml --out out/run", r"not UTF-8"),
    C("train-config-invalid-yaml", "train --config bad/invalid.yaml --out out/run", r"not valid YAML"),
    C("train-config-duplicate-key", "train --config bad/train-duplicate.yaml --out out/run", r"duplicate key 'reviewer'"),
    C("train-config-unknown-key", "train --config bad/train-unknown-key.yaml --out out/run", r"colour"),
    C("train-config-list", "train --config bad/train-list.yaml --out out/run", r"mapping"),
    C("train-loss-type-bogus", "train --config bad/train-loss-type.yaml --out out/run", r"loss_type"),
    C("train-steps-zero", "train --config bad/train-steps-zero.yaml --out out/run", r"steps"),
    C("train-model-hub-offline", "train --config bad/train-hub-model.yaml --out out/run", r"not in the local Hugging Face cache"),
    C("train-model-missing", "train --config bad/train-model-missing.yaml --out out/run", r"does not exist"),
    C("train-problems-empty", "train --config bad/train-problems-empty.yaml --out out/run", r"holds no records"),
    C("train-problems-missing", "train --config bad/train-problems-missing.yaml --out out/run", r"does not exist"),
    C("train-problems-bad-record", "train --config bad/train-problems-bad.yaml --out out/run", r"question should be a string"),
    C("train-reviewer-unknown", "train --config bad/train-reviewer.yaml --out out/run", r"gpt"),
    C("train-reviewers-file-missing", "train --config bad/train-reviewers-missing.yaml --out out/run", r"does not exist"),
    C("no-command", "", r"the following arguments are required: command"),
    C("unknown-command", "frobnicate", r"invalid choice: 'frobnicate'"),
    C("unknown-option", "consensus --reviews reviews.jsonl --out out/c.jsonl --colour red", r"unrecognized arguments: --colour red"),
)


# ---------------------------------------------------------------------------------------------
# Problems whose computation graph is wrong: refused on read, by every command that reads them

BAD_PROBLEMS = {  # name -> what the error says (the bad problem is on line 2)
    "problem-op-percent": r'operations\[0\]\.op is "%", not one of \+, -, \*, /',
    "problem-input-zz": r'operations\[2\]\.inputs\[1\] is "zz", which names no fact or earlier operation',
    "problem-input-later": r'operations\[0\]\.inputs\[0\] is "v2", which names no fact or earlier operation',
    "problem-input-distractor": r'operations\[1\]\.inputs\[0\] is "d\d+", which names a distractor, not a needed fact',
}
PROBLEM_READERS = {
    "review": "review --traces traces.jsonl --problems {F} --reviewers reviewers.yaml --no-cache --out out/r.jsonl",
    "rollout": "rollout --problems {F} --model {M} --out out/t.jsonl",
    "edit": "edit --traces traces.jsonl --problems {F} --consensus consensus.jsonl --tokenizer words --out out/e.jsonl",
    "agreement": "agreement --reviews reviews.jsonl --problems {F} --out out/a.json",
    "show": "show {F} --out out/s.html",
    "eval": "eval --model {M} --sets {F} --out out/eval",
}
for name, needle in BAD_PROBLEMS.items():
    for reader, argv in PROBLEM_READERS.items():
        cases(C(f"{reader}-{name}", argv.replace("{F}", f"bad/{name}.jsonl"), rf"bad/{name}\.jsonl:2: .*{needle}"))
cases(C("train-problems-op-percent", "train --config bad/train-problems-op.yaml --out out/run", rf"bad/problem-op-percent\.jsonl:2: .*{BAD_PROBLEMS['problem-op-percent']}"))

# ---------------------------------------------------------------------------------------------
# The commands the matrix above does not reach

cases(
    C("domains-unknown-option", "domains --colour red", r"unrecognized arguments: --colour red"),
    C("generate-reviewers-missing", "generate --reviewers nowhere.yaml --generator writer --out out/g.jsonl", r"reviewers file nowhere\.yaml does not exist"),
    C("generate-generator-undeclared", "generate --reviewers reviewers.yaml --generator nobody --out out/g.jsonl", r"reviewers\.yaml declares no reviewer 'nobody'"),
    C("generate-count-zero", "generate --reviewers reviewers.yaml --generator oracle --count 0 --out out/g.jsonl", r"argument --count: must be at least 1"),
    C("generate-out-exists", "generate --reviewers reviewers.yaml --generator oracle --out exists/out.jsonl", r"--out exists/out\.jsonl exists; pass --overwrite"),
    C("bench-reviewers-limit-zero", "bench-reviewers --limit 0", r"--limit must be at least 1"),
    C("bench-reviewers-processbench-missing", "bench-reviewers --processbench nowhere.json", r"ProcessBench file nowhere\.json does not exist"),
    C("bench-reviewers-reviewer-not-built-in", "bench-reviewers --reviewer gpt", r"reviewer 'gpt' is not built in"),
    C("bench-reviewers-processbench-not-json", "bench-reviewers --processbench bad/notjson.jsonl", r"bad/notjson\.jsonl is neither a JSON list nor JSON lines"),
    C("persona-train-labels-missing", "persona-train --labels nowhere.jsonl --traces traces.jsonl --problems problems.jsonl --model {M} --out out/p", r"labels file nowhere\.jsonl does not exist"),
    C("persona-train-persona-unknown", "persona-train --labels reviews.jsonl --traces traces.jsonl --problems problems.jsonl --model {M} --personas psychic --out out/p", r"unknown persona 'psychic'"),
    C("persona-train-out-not-empty", "persona-train --labels reviews.jsonl --traces traces.jsonl --problems problems.jsonl --model {M} --out foreign", r"--out foreign is not empty"),
    C("experiment-no-subcommand", "experiment", r"the following arguments are required: experiment_command"),
    C("experiment-run-spec-missing", "experiment run nowhere.yaml --out out/x", r"experiment spec file nowhere\.yaml does not exist"),
    C("experiment-run-spec-invalid-yaml", "experiment run bad/invalid.yaml --out out/x", r"bad/invalid\.yaml:\d+: not valid YAML"),
    C("experiment-run-spec-not-a-spec", "experiment run train.yaml --out out/x", r"train\.yaml: arms: Field required"),
    C("experiment-report-no-experiment", "experiment report bad", r"bad holds no experiment \(no spec\.yaml\)"),
)

#: Cases that also run in a child process (`python -m dca.cli`): at least one per command, and
#: those where a real process could differ: argparse's exits, the hub offline (read at import),
#: locks held by another process, links. Cases whose child imports the training stack before
#: it fails (tens of seconds each) are left to the in-process run.
IN_A_PROCESS = {
    "no-command", "unknown-command", "unknown-option", "out-empty-string",
    "problems-synthetic-word", "problems-out-exists", "problems-gsm8k-not-json",
    "domains-unknown-option",
    "generate-generator-undeclared",
    "rollout-problems-not-json", "rollout-model-hub-offline", "rollout-temperature-nan", "rollout-problem-op-percent",
    "warmstart-steps-zero", "warmstart-model-hub-offline",
    "train-live", "train-config-duplicate-key",
    "demo-steps-zero",
    "review-out-is-cache", "review-reviewers-params-key", "review-traces-wrong-kind", "review-problem-input-zz",
    "bench-reviewers-reviewer-not-built-in",
    "consensus-out-is-reviews-symlink", "consensus-out-is-reviews-hardlink", "consensus-review-last-unit-999",
    "agreement-traces-not-utf8", "agreement-weighting-bogus",
    "show-run-dir-without-records", "show-credit-count",
    "edit-figures-exist", "edit-reviewer-absent",
    "sft-edits-all-skipped", "sft-model-hub-offline",
    "eval-live", "eval-model-hub-offline",
    "persona-train-out-not-empty",
    "experiment-run-spec-missing", "experiment-report-no-experiment",
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# The inputs


def _jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _second_bad(path: Path, good: dict, bad: dict) -> None:
    """A file whose second record is the bad one (so the error must name line 2)."""
    _jsonl(path, [good, bad])


def _build_world(root: Path, model_dir: Path) -> None:
    golds = gold_traces(12, seed=3)
    problems, traces = [g.problem for g in golds], [g.trace for g in golds]
    reviews = review_all(golds, three_reviewers(golds, 0.3))
    consensuses = build_consensuses(reviews, rule="majority")
    edits = edit_traces(traces, {p.id: p for p in problems}, {c.trace_id: c for c in consensuses}, EditConfig(mode="drop"))
    write_jsonl(root / "problems.jsonl", problems)
    write_jsonl(root / "traces.jsonl", traces)
    write_jsonl(root / "reviews.jsonl", reviews)
    write_jsonl(root / "consensus.jsonl", consensuses)
    write_jsonl(root / "edits.jsonl", edits)
    (root / "reviews-link.jsonl").symlink_to("reviews.jsonl")
    os.link(root / "reviews.jsonl", root / "reviews-hardlink.jsonl")
    (root / "reviewers.yaml").write_text("reviewers:\n  - name: oracle\n    backend: oracle\n", encoding="utf-8")
    (root / "cache.sqlite").write_bytes(b"")
    train = {"model": str(model_dir), "reviewer": "oracle", "problems": {"file": "problems.jsonl"}, "grpo": {"steps": 1}}
    (root / "train.yaml").write_text(yaml.safe_dump(train), encoding="utf-8")
    (root / "out").mkdir()

    bad = root / "bad"
    bad.mkdir()
    (bad / "dir.jsonl").mkdir()
    (bad / "empty.jsonl").write_text("")
    (bad / "blank.jsonl").write_text("\n\n  \n")
    (bad / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    (bad / "notjson.jsonl").write_text("\n{not json\n")
    (bad / "array.jsonl").write_text("[1, 2]\n")
    (bad / "unknown-field.jsonl").write_text(json.dumps({**to_dict(traces[0]), "colour": "red"}) + "\n")
    (bad / "gsm8k.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"}) + "\n")
    (bad / "latin1.yaml").write_bytes(b"reviewers:\n  - name: caf\xe9\n")
    (bad / "invalid.yaml").write_text("reviewers: [\n  - name: x\n")
    (bad / "scalar.yaml").write_text("just a string\n")
    (bad / "reviewers-duplicate.yaml").write_text("reviewers:\n  - name: oracle\n    backend: oracle\n    backend: reference\n")
    (bad / "reviewers-backend.yaml").write_text("reviewers:\n  - name: x\n    backend: telepathy\n")
    (bad / "reviewers-api-key.yaml").write_text("reviewers:\n  - name: g\n    backend: openai\n    model: m\n    api_key: sk-secret\n")
    (bad / "reviewers-params-header.yaml").write_text("reviewers:\n  - name: g\n    backend: openai\n    model: m\n    params: {X-Api-Key: sk-secret}\n")
    (bad / "reviewers-backoff.yaml").write_text("reviewers:\n  - name: g\n    backend: openai\n    model: m\n    backoff_max: 100000\n")
    (bad / "reviewers-timeout.yaml").write_text("reviewers:\n  - name: g\n    backend: openai\n    model: m\n    timeout: 0\n")
    (bad / "reviewers-params-key.yaml").write_text("reviewers:\n  - name: g\n    backend: openai\n    model: m\n    params: {api_key: sk-secret}\n")

    trace, review, consensus, edit = to_dict(traces[0]), to_dict(reviews[0]), to_dict(consensuses[0]), to_dict(edits[0])
    n_units = len(review["units"])
    trace_changes = {
        "trace-id-list": {"id": ["a", "b"]},
        "trace-reward-string": {"reward": "high"},
        "trace-outcome-banana": {"outcome": "banana"},
        "trace-token-ids-string": {"completion_token_ids": "x"},
    }
    for name, change in trace_changes.items():
        _second_bad(bad / f"{name}.jsonl", trace, {**trace, **change})
    _second_bad(bad / "trace-missing-completion.jsonl", trace, {k: v for k, v in trace.items() if k != "completion"})

    step0 = review["steps"][0] if review["steps"] else {"index": 0, "first_unit": 0, "last_unit": 0, "function": "other", "contribution": "solved"}

    def with_step(**change):
        return {**review, "steps": [{**step0, **change}], "status": "ok"}

    units = review["units"]
    review_changes = {
        "review-units-ints": {**review, "units": [1, 2]},
        "review-steps-string": {**review, "steps": "x"},
        "review-contribution-banana": with_step(contribution="banana"),
        "review-function-magic": with_step(function="magic"),
        "review-last-unit-999": with_step(first_unit=0, last_unit=999),
        "review-step-backwards": with_step(first_unit=1, last_unit=0),
        "review-status-maybe": {**review, "status": "maybe"},
        "review-unreviewed-out-of-range": {**review, "unreviewed_units": [50]},
        "review-unit-index-gap": {**review, "units": [units[0], {**units[1], "index": 5}, *units[2:]]},
        "review-trace-id-number": {**review, "trace_id": 7},
    }
    assert n_units >= 2
    for name, data in review_changes.items():
        _second_bad(bad / f"{name}.jsonl", review, data)
    consensus_changes = {
        "consensus-vote-banana": {**consensus, "unit_votes": [{"oracle": "banana"}, *consensus["unit_votes"][1:]]},
        "consensus-disputed-out-of-range": {**consensus, "disputed_units": [77]},
        "consensus-fraction-2": {**consensus, "fraction_agreed": 2.0},
        "consensus-votes-length": {**consensus, "unit_votes": consensus["unit_votes"][:1]},
    }
    for name, data in consensus_changes.items():
        _second_bad(bad / f"{name}.jsonl", consensus, data)
    _jsonl(bad / "edit-status-banana.jsonl", [{**edit, "status": "banana"}])
    _jsonl(bad / "edit-span-kind.jsonl", [{**edit, "spans": [{"kind": "moved", "text": "x", "start": 0, "end": 1}]}])
    write_jsonl(bad / "edits-skipped.jsonl", [Edit(trace_id="t", problem_id="p", arm="edit", mode="drop", labels_from="x", status="skipped", reason="unsolved")])
    _jsonl(bad / "credit-count.jsonl", [{"trace_id": "t", "policy": "uniform", "sequence_advantage": 1.0, "token_advantages": [1.0, 1.0, 1.0], "credited_tokens": 9}])
    _jsonl(bad / "problem-question-number.jsonl", [{**to_dict(problems[0]), "question": 12}])
    problem = to_dict(problems[2])  # three operations (v0, v1, v2 over v0 and v1), distractors
    assert len(problem["operations"]) == 3 and problem["distractors"]

    def with_operation(k: int, **change) -> dict:
        operations = [dict(o) for o in problem["operations"]]
        operations[k].update(change)
        return {**problem, "operations": operations}

    operations = problem["operations"]
    problem_changes = {
        "problem-op-percent": with_operation(0, op="%"),
        "problem-input-zz": with_operation(2, inputs=[operations[2]["inputs"][0], "zz"]),
        "problem-input-later": with_operation(0, inputs=["v2", operations[0]["inputs"][1]]),
        "problem-input-distractor": with_operation(1, inputs=[problem["distractors"][0]["id"], operations[1]["inputs"][1]]),
    }
    for name, data in problem_changes.items():
        _second_bad(bad / f"{name}.jsonl", to_dict(problems[0]), data)
    write_jsonl(bad / "other-problems.jsonl", [g.problem for g in gold_traces(2, seed=99)])
    write_jsonl(bad / "e.figures.json", problems)
    (bad / "traces-alone").mkdir()
    write_jsonl(bad / "traces-alone" / "traces.jsonl", traces[:2])

    def train_yaml(name: str, text: str | None = None, **change) -> None:
        data = {**train, **change}
        (bad / f"train-{name}.yaml").write_text(text if text is not None else yaml.safe_dump(data), encoding="utf-8")

    train_yaml("duplicate", f"model: {model_dir}\nreviewer: oracle\nreviewer: reference\nproblems: {{file: problems.jsonl}}\n")
    train_yaml("unknown-key", colour="red")
    train_yaml("list", "- model: embedded\n")
    train_yaml("loss-type", grpo={"steps": 1, "loss_type": "bogus"})
    train_yaml("steps-zero", grpo={"steps": 0})
    train_yaml("hub-model", model="nobody-here/no-model")
    train_yaml("model-missing", model="./no-model")
    train_yaml("problems-empty", problems={"file": "bad/empty.jsonl"})
    train_yaml("problems-missing", problems={"file": "nowhere.jsonl"})
    train_yaml("problems-bad", problems={"file": "bad/problem-question-number.jsonl"})
    train_yaml("problems-op", problems={"file": "bad/problem-op-percent.jsonl"})
    train_yaml("reviewer", reviewer="gpt")
    train_yaml("reviewers-missing", reviewer="gpt", reviewers_file="nowhere.yaml")

    exists = root / "exists"
    exists.mkdir()
    for name in ("out.jsonl", "out.json", "out.html", "edits.figures.json", "reviews.agreement.json"):
        (exists / name).write_text("precious\n")
    write_jsonl(exists / "reviews.jsonl", reviews)
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious\n")
    old_sft = root / "old-sft"
    (old_sft / "model").mkdir(parents=True)
    (old_sft / "model" / "config.json").write_text("{}")
    (old_sft / "sft.json").write_text("{}")
    write_jsonl(old_sft / "edits.jsonl", edits)
    (root / "an-experiment").mkdir()
    (root / "an-experiment" / "spec.yaml").write_text("name: phase1-cpu\n")
    old_run = root / "old-run"
    old_run.mkdir()
    (old_run / "run.json").write_text('{"status": "finished"}')
    write_jsonl(old_run / "problems.jsonl", problems)
    (old_run / "train.yaml").write_text(yaml.safe_dump({**train, "problems": {"file": "old-run/problems.jsonl"}}))
    for name, marker in (("live-run", "run.json"), ("live-eval", "eval.json")):
        (root / name).mkdir()
        (root / name / marker).write_text('{"status": "running"}')
        (root / name / "traces.jsonl").write_text("")


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content hash (folders and links marked as such)."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            result[rel] = "dir"
        else:
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("bad-input")
    _build_world(root, Path(tiny_model_dir))
    with held_locks(root / "live-run", root / "live-eval"):
        yield root


def _argv(case: Case, model_dir: Path) -> list[str]:
    return [a.replace("{M}", str(model_dir)) for a in shlex.split(case.argv)]


def _process_state() -> dict:
    """What one in-process run could leave behind for the next: working directory,
    environment, warnings filters, logging handlers and levels, output-directory locks."""
    by_name = loggers()
    return {
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "warnings filters": list(warnings.filters),
        # a handler a library adds lazily in a run writes to whichever run is current (conftest.CallStream)
        "logging handlers": {name: kept for name, logger in by_name.items() if (kept := [h for h in logger.handlers if getattr(h, "stream", None) not in (CALL_STDOUT, CALL_STDERR)])},
        "logging levels": {name: (logger.level, logger.disabled) for name, logger in by_name.items() if logger.level or logger.disabled},
        "locks held": dict(files._HELD),  # noqa: SLF001
    }


@dataclass
class Outcomes:
    here: dict[str, subprocess.CompletedProcess]
    """Each chosen case's result in this process (`dca_in_process`), by id."""
    children: dict[str, subprocess.CompletedProcess]
    """Each chosen `IN_A_PROCESS` case's result in a child process (`dca`), by id."""
    before: dict[str, str]
    """`_snapshot` of the world before any case ran."""
    after: dict[str, str]
    """... and after all of them."""
    state_before: dict
    """`_process_state` before the in-process runs."""
    state_after: dict


@pytest.fixture(scope="module")
def outcomes(world, tiny_model_dir) -> Outcomes:
    """Run every case once in this process, and the `IN_A_PROCESS` cases once more in a child
    process (several at a time, while the others run here)."""
    before = _snapshot(world)
    env = {"HF_HUB_OFFLINE": "1", "DCA_CACHE_DIR": str(world.parent / f"{world.name}-cache"), "PYTHONWARNINGS": "ignore", "OPENAI_API_KEY": None}

    def in_a_child(case: Case) -> tuple[str, subprocess.CompletedProcess]:
        try:
            return case.id, dca(*_argv(case, tiny_model_dir), cwd=world, env={**env, **case.env}, timeout=120)
        except subprocess.TimeoutExpired as e:
            return case.id, subprocess.CompletedProcess(e.cmd, -1, str(e.stdout or ""), f"timed out after 120 s: {e.stderr or ''}")

    only = os.environ.get("DCA_BAD_INPUT_ONLY")  # a regex over case ids, to rerun a few
    chosen = [c for c in CASES if not only or re.search(only, c.id)]
    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        children = pool.map(in_a_child, [c for c in chosen if c.id in IN_A_PROCESS])
        state_before = _process_state()
        here = {c.id: dca_in_process(*_argv(c, tiny_model_dir), cwd=world, env={**env, **c.env}) for c in chosen}
        state_after = _process_state()
        in_children = dict(children)
    return Outcomes(here, in_children, before, _snapshot(world), state_before, state_after)


def test_case_ids_are_unique_and_many():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    assert len(CASES) >= 150


def _command(case: Case) -> str:
    """The command a case runs: ``edit``, ``experiment run``, or ``''``."""
    words = shlex.split(case.argv)[:2]
    return " ".join(words if words[:1] == ["experiment"] else words[:1])


def test_every_command_has_cases_and_a_case_in_a_process():
    commands = set(dca_commands())
    assert commands <= {_command(c) for c in CASES}, sorted(commands - {_command(c) for c in CASES})
    in_a_process = [c for c in CASES if c.id in IN_A_PROCESS]
    assert len(in_a_process) == len(IN_A_PROCESS) >= 30, sorted(IN_A_PROCESS - {c.id for c in CASES})
    assert commands <= {_command(c) for c in in_a_process}, sorted(commands - {_command(c) for c in in_a_process})


def _check(case: Case, r: subprocess.CompletedProcess, before: dict[str, str], after: dict[str, str]) -> None:
    line = one_line_error(r)
    assert re.search(case.needle, line), f"expected /{case.needle}/\ndca {case.argv}\n{line}"
    named = {os.path.normpath(a) for a in shlex.split(case.argv)}
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    touched = sorted(p for p in changed if any(n in (".", p) or p.startswith(n + "/") for n in named))
    assert not touched, f"{case.id} changed or created {touched}"


@pytest.mark.parametrize("case", CASES, ids=[f"{n:03d}of{len(CASES)}-{c.id}" for n, c in enumerate(CASES, 1)])
def test_bad_input(case: Case, outcomes):
    if case.id not in outcomes.here:
        pytest.skip("not chosen by DCA_BAD_INPUT_ONLY")
    _check(case, outcomes.here[case.id], outcomes.before, outcomes.after)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in IN_A_PROCESS], ids=lambda c: c.id)
def test_bad_input_in_a_process(case: Case, outcomes):
    """The same case as the user meets it (`python -m dca.cli`), with the same exit code and
    line as in this process: what the in-process runs check is what a user gets."""
    if case.id not in outcomes.children:
        pytest.skip("not chosen by DCA_BAD_INPUT_ONLY")
    child, here = outcomes.children[case.id], outcomes.here[case.id]
    _check(case, child, outcomes.before, outcomes.after)
    assert (child.returncode, child.stderr) == (here.returncode, here.stderr)


def test_nothing_was_written(outcomes):
    """No case changed an input or left anything behind: no output, no .partial, no lock."""
    changed = sorted(p for p in set(outcomes.before) | set(outcomes.after) if outcomes.before.get(p) != outcomes.after.get(p))
    assert not changed


def test_the_in_process_runs_leave_this_process_as_they_found_it(outcomes):
    """Each case met the process state a fresh `dca` meets: no run left a directory, variable,
    warnings filter, logging handler or level, or lock to the next."""
    for key, value in outcomes.state_before.items():
        assert outcomes.state_after[key] == value, key
