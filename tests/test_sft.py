"""`dca edit` and `dca sft`: the completion-only loss on a real collated batch, SFT and LoRA
on the tiny model, the CLI end to end, its bad-input errors, and (slow) the embedded model."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import dca_in_process, one_line_error
from dca.cli import main
from dca.edit import Edit, EditConfig, edit_trace
from dca.model import load_model
from dca.records import Review
from dca.files import read_jsonl, write_jsonl
from dca.review import OracleReviewer
from dca.train.sft import SFTSettings, build_sft_trainer, run_sft, sft_rows
from gold_traces import gold_traces, review_all


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """problems.jsonl, traces.jsonl (gold CoTs, some wrong) and oracle reviews.jsonl in one directory."""
    directory = tmp_path_factory.mktemp("run")
    golds = gold_traces(8, seed=11, wrong_share=0.25, irrelevant_rate=0.6)
    write_jsonl(directory / "problems.jsonl", [g.problem for g in golds])
    write_jsonl(directory / "traces.jsonl", [g.trace for g in golds])
    write_jsonl(directory / "reviews.jsonl", review_all(golds, [OracleReviewer()]))
    return directory


@pytest.fixture(scope="module")
def edits(run_files):
    from dca.records import Problem, Review, Trace

    problems = {p.id: p for p in read_jsonl(run_files / "problems.jsonl", Problem)}
    reviews = {r.trace_id: r for r in read_jsonl(run_files / "reviews.jsonl", Review)}
    traces = read_jsonl(run_files / "traces.jsonl", Trace)
    return [edit_trace(t, problems[t.problem_id], reviews[t.id], EditConfig(mode="bridge-template")) for t in traces]


def test_the_loss_is_on_completion_tokens_only(edits, tiny_model_dir, tmp_path):
    trained_on = [e for e in edits if e.status != "skipped"]
    trainer = build_sft_trainer(edits, str(tiny_model_dir), tmp_path, SFTSettings(max_steps=1, batch_size=len(trained_on)))
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class
    completions = sorted(e.completion for e in trained_on)
    seen = []
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        trained = labels != -100
        assert torch.equal(labels[trained], ids[trained])
        # The labelled tokens are exactly the edited completion and the end of the turn ...
        text = tokenizer.decode(ids[trained])
        assert text.endswith("<|im_end|>\n")
        seen.append(text.removesuffix("<|im_end|>\n"))
        # ... and form one block at the end of the sequence: the prompt is never trained on.
        positions = trained.nonzero().flatten()
        assert positions[-1] - positions[0] + 1 == len(positions)
        prompt = tokenizer.decode(ids[: positions[0]][mask[: positions[0]].bool()])
        assert prompt.endswith("<|im_start|>assistant\n") and "<|im_start|>user" in prompt
    assert sorted(seen) == completions

    # The trainer's loss is the cross-entropy over those tokens alone.
    trainer.model.eval()
    inputs = trainer._prepare_inputs(batch)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs)
        logits = trainer.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    shifted_logits, shifted_labels = logits[:, :-1].flatten(0, 1), inputs["labels"][:, 1:].flatten()
    completion_only = torch.nn.functional.cross_entropy(shifted_logits, shifted_labels, ignore_index=-100)
    all_tokens = inputs["input_ids"][:, 1:].flatten().masked_fill(~inputs["attention_mask"][:, 1:].flatten().bool(), -100)
    everything = torch.nn.functional.cross_entropy(shifted_logits, all_tokens, ignore_index=-100)
    torch.testing.assert_close(loss, completion_only, rtol=1e-4, atol=1e-4)
    assert abs(loss.item() - everything.item()) > 1e-3


@pytest.mark.parametrize("lora", [False, True])
def test_run_sft_trains_and_saves_a_loadable_checkpoint(edits, tiny_model_dir, tmp_path, lora):
    settings = SFTSettings(max_steps=2, batch_size=2, learning_rate=1e-2, lora=lora, lora_rank=4, lora_alpha=8)
    out = tmp_path / "sft"
    summary = run_sft(edits, str(tiny_model_dir), out, settings, edits_path="edits.jsonl", log=lambda _: None)
    assert [entry["step"] for entry in summary["losses"]] == [1, 2]
    assert summary["rows"] == len(sft_rows(edits)) and summary["arms"] == ["edit"]
    assert json.loads((out / "sft.json").read_text())["settings"]["lora"] is lora
    before, _ = load_model(str(tiny_model_dir))
    after, _ = load_model(str(out))  # a plain checkpoint: the LoRA adapter is merged
    assert not any(".lora_" in name for name, _ in after.named_parameters())
    changed = [n for n, p in after.named_parameters() if not torch.equal(p, dict(before.named_parameters())[n])]
    assert changed, "no parameter changed"
    if lora:  # LoRA on all linear layers touches attention/MLP weights, never the embedding
        assert all("embed" not in n for n in changed)
    assert not list(tmp_path.glob(".partial-*"))


def test_dca_edit_then_dca_sft_on_the_tiny_model(run_files, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "edits.jsonl"
    args = ["edit", "--traces", str(run_files / "traces.jsonl"), "--reviews", str(run_files / "reviews.jsonl"), "--tokenizer", "words"]
    assert main([*args, "--mode", "bridge-template", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tokens per insight after" in printed and "fraction of units dropped" in printed
    edits = read_jsonl(out, Edit)
    figures = json.loads(out.with_suffix(".figures.json").read_text())
    assert figures["traces"] == len(edits) == 8 and figures["skipped_by_reason"] == {"not solved": figures["skipped"]}
    assert figures["tokens_per_trace_after"] < figures["tokens_per_trace_before"] or figures["bridges"] > 0
    for baseline in ("rft", "random-drop"):
        assert main([*args, "--baseline", baseline, "--mode", "drop", "--out", str(tmp_path / f"{baseline}.jsonl")]) == 0
    rft = read_jsonl(tmp_path / "rft.jsonl", Edit)
    assert all(e.completion == e.original for e in rft if e.status != "skipped")
    random_drop = json.loads((tmp_path / "random-drop.figures.json").read_text())
    assert random_drop["units_dropped"] == figures["units_dropped"]

    model_out = tmp_path / "model"
    assert main(["sft", "--edits", str(out), "--model", str(tiny_model_dir), "--out", str(model_out), "--max-steps", "1", "--batch-size", "2"]) == 0
    assert (model_out / "model.safetensors").exists() and (model_out / "sft.json").exists()
    assert "sft checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["edit", "--traces", "{d}/traces.jsonl", "--out", "{t}/e.jsonl"], "exactly one of --consensus"),
        (["edit", "--traces", "{t}/missing.jsonl", "--reviews", "{d}/reviews.jsonl", "--out", "{t}/e.jsonl"], "does not exist"),
        (["edit", "--traces", "{d}/traces.jsonl", "--reviews", "{t}/two.jsonl", "--out", "{t}/e.jsonl"], "several reviews of trace"),
        (["edit", "--traces", "{d}/traces.jsonl", "--reviews", "{d}/reviews.jsonl", "--mode", "bridge-llm", "--out", "{t}/e.jsonl"], "needs --bridge-reviewers"),
        (["edit", "--traces", "{d}/traces.jsonl", "--reviews", "{d}/reviews.jsonl", "--drop", "solved", "--out", "{t}/e.jsonl"], "cut the solution"),
        (["edit", "--traces", "{d}/traces.jsonl", "--reviews", "{d}/problems.jsonl", "--out", "{t}/e.jsonl"], "not a valid Review"),
        (["sft", "--edits", "{t}/skipped.jsonl", "--model", "embedded", "--out", "{t}/m"], "no trained-on edit"),
        (["sft", "--edits", "{t}/skipped.jsonl", "--model", "embedded", "--out", "{t}/m", "--max-steps", "0"], "argument --max-steps: must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_files, tmp_path, argv, message):
    reviews = read_jsonl(run_files / "reviews.jsonl", Review)
    write_jsonl(tmp_path / "two.jsonl", [reviews[0], reviews[0]])
    write_jsonl(tmp_path / "skipped.jsonl", [Edit(trace_id="t", problem_id="p", arm="edit", mode="drop", labels_from="", status="skipped")])
    one_line_error(dca_in_process(*[a.format(d=run_files, t=tmp_path) for a in argv]), message)


@pytest.mark.slow
@pytest.mark.minutes("two optimizer steps of the real 135M-parameter embedded model on the CPU (70 CPU-s measured)")
def test_dca_sft_on_the_embedded_model(edits, tmp_path):
    """`dca sft --max-steps 2` on the real embedded model, on the CPU (a minute or two)."""
    write_jsonl(tmp_path / "edits.jsonl", edits)
    out = tmp_path / "model"
    assert main(["sft", "--edits", str(tmp_path / "edits.jsonl"), "--model", "embedded", "--out", str(out), "--max-steps", "2", "--batch-size", "2"]) == 0
    losses = json.loads((out / "sft.json").read_text())["losses"]
    assert len(losses) == 2 and all(0 < entry["loss"] < 10 for entry in losses)
