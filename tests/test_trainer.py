"""DCAGRPOTrainer against plain trl.GRPOTrainer, on a tiny random model built from a config.

The completions are fixed through TRL's `rollout_func` hook (gold CoTs, half of them with a
wrong final answer), so rewards differ within the group and advantages are non-zero; the
parent still tokenizes, scores, normalizes and computes the loss as in real training.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import random

import pytest
import torch
import trl
from trl import GRPOConfig, GRPOTrainer

from dca.credit import CreditConfig, token_char_spans
from dca.model import load_model, trainer_device_arguments
from dca.problems import SyntheticConfig, check_answer, generate_problems, render_gold_cot
from dca.domains import chat_messages
from dca.review import NoisyReviewer, OracleReviewer
from dca.train.grpo_config import DCAGRPOConfig
from dca.train.grpo_trainer import DCAGRPOTrainer, outcome_reward

GROUP = 4


@pytest.fixture(scope="module")
def problem():
    return generate_problems(1, SyntheticConfig(min_operations=2, max_operations=2, distractors=(2, 2), seed=3))[0]


@pytest.fixture(scope="module")
def completions(problem) -> list[str]:
    """Two correct gold CoTs with irrelevant steps, two with a wrong final answer."""
    rng = random.Random(0)
    texts = [render_gold_cot(problem, irrelevant_rate=0.6, rng=rng).text for _ in range(GROUP)]
    wrong = str(int(problem.answer) + 1)
    return [t if i % 2 == 0 else t.replace(f"Answer: {problem.answer}", f"Answer: {wrong}") for i, t in enumerate(texts)]


def make_trainer(cls, model_dir, tmp_path, problem, completions, **dca_kwargs):
    model, tokenizer = load_model(str(model_dir))

    def fixed_rollout(prompts, trainer):
        prompt_ids = [
            tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"] for p in prompts
        ]
        completion_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in completions]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids[: len(prompts)], "logprobs": None}

    credit = dca_kwargs.pop("credit_config", None)
    args = (DCAGRPOConfig if cls is DCAGRPOTrainer else GRPOConfig)(
        **({"credit": dataclasses.asdict(credit or CreditConfig())} if cls is DCAGRPOTrainer else {}),
        output_dir=str(tmp_path / cls.__name__),
        per_device_train_batch_size=GROUP,
        num_generations=GROUP,
        max_completion_length=256,
        max_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        **trainer_device_arguments(),
    )
    from datasets import Dataset

    dataset = Dataset.from_list([{"prompt": chat_messages(problem), "answer": problem.answer, "problem_id": problem.id}])
    kwargs = dict(model=model, reward_funcs=[outcome_reward], args=args, train_dataset=dataset, processing_class=tokenizer, rollout_func=fixed_rollout)
    if cls is DCAGRPOTrainer:
        kwargs.update(reviewer=OracleReviewer(), problems={problem.id: problem}, **dca_kwargs)
    trainer = cls(**kwargs)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by train(); these tests call the pieces directly
    inputs = [{"prompt": chat_messages(problem), "answer": problem.answer, "problem_id": problem.id} for _ in range(GROUP)]
    return trainer, inputs


def loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


@pytest.fixture(autouse=True)
def _quiet_rollout_func_warning(monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")


def test_trl_parent_contract_is_what_dca_overrides():
    """Fails loudly when TRL changes the method DCA overrides or the tensors it rewrites."""
    assert trl.__version__.startswith("1.16."), f"DCA is pinned to TRL 1.16, found {trl.__version__}"
    parameters = list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters)
    assert parameters == ["self", "inputs"], f"GRPOTrainer._generate_and_score_completions changed: {parameters}"
    loss_source = inspect.getsource(GRPOTrainer._compute_loss)
    assert "advantages.dim() == 1" in loss_source, "TRL's loss no longer accepts (batch, tokens) advantages as-is"


def test_uniform_credit_equals_plain_grpo(tiny_model_dir, tmp_path, problem, completions):
    plain, inputs = make_trainer(GRPOTrainer, tiny_model_dir, tmp_path, problem, completions)
    dca, _ = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="uniform"))

    torch.manual_seed(0)
    plain_batch = plain._generate_and_score_completions(copy.deepcopy(inputs))
    torch.manual_seed(0)
    dca_batch = dca._generate_and_score_completions(copy.deepcopy(inputs))

    # The parent's output contract that DCA relies on.
    assert {"completion_ids", "completion_mask", "advantages"} <= plain_batch.keys()
    assert plain_batch["advantages"].dim() == 1
    assert plain_batch["advantages"].abs().sum() > 0, "the fixed group must have reward variance"
    assert dca_batch["advantages"].shape == dca_batch["completion_ids"].shape

    plain_loss, plain_grads = loss_and_grads(plain, plain_batch)
    dca_loss, dca_grads = loss_and_grads(dca, dca_batch)
    assert plain_loss.item() != 0.0
    torch.testing.assert_close(dca_loss, plain_loss)
    assert plain_grads.keys() == dca_grads.keys() and plain_grads
    for name in plain_grads:
        torch.testing.assert_close(dca_grads[name], plain_grads[name], msg=name)


def test_mask_credit_gives_zero_gradient_outside_useful_steps(tiny_model_dir, tmp_path, problem, completions):
    dca, inputs = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="mask"))
    batch = dca._generate_and_score_completions(inputs)
    advantages, mask = batch["advantages"], batch["completion_mask"].bool()
    assert advantages.shape == mask.shape

    captured = {}
    original = dca._get_per_token_logps_and_entropies

    def keep_logps(*args, **kwargs):
        logps, entropies, aux = original(*args, **kwargs)
        logps.retain_grad()
        captured["logps"] = logps
        return logps, entropies, aux

    dca._get_per_token_logps_and_entropies = keep_logps
    loss_and_grads(dca, batch)
    grad = captured["logps"].grad

    uncredited = mask & (advantages == 0)
    credited = mask & (advantages != 0)
    assert uncredited.any() and credited.any(), "the gold CoTs hold both useful and irrelevant steps"
    assert torch.all(grad[uncredited] == 0)
    assert torch.all(grad[credited] != 0)


def test_signed_credit_blames_only_the_wrong_completions_error_steps(tiny_model_dir, tmp_path, problem, completions):
    # uncapped (max_weight=None): the penalty sits on the blamed units only
    dca, inputs = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="signed", max_weight=None))
    batch = dca._generate_and_score_completions(inputs)
    advantages, mask = batch["advantages"], batch["completion_mask"].bool()
    for row in range(GROUP):
        values = advantages[row][mask[row]]
        if row % 2 == 1:  # wrong final answer: the penalty sits on the blamed units only
            assert torch.all(values <= 0) and (values < 0).any() and (values == 0).any()
        else:
            assert torch.all(values >= 0)
    assert batch["advantages"].shape == mask.shape
    # capped (the default): no token above 1.5 x the uniform weight, signs kept, totals kept
    dca, inputs = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path / "capped", problem, completions, credit_config=CreditConfig(policy="signed"))
    batch = dca._generate_and_score_completions(inputs)
    advantages, mask = batch["advantages"], batch["completion_mask"].bool()
    for row in range(GROUP):
        values = advantages[row][mask[row]]
        a = values.sum() / mask[row].sum()  # the sequence advantage (totals are conserved)
        assert torch.all(values * a >= 0)
        assert torch.all(values.abs() <= 1.5 * a.abs() + 1e-5)


def test_dca_trainer_trains_and_logs_credit(tiny_model_dir, tmp_path, problem, completions):
    dca, _ = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="conserve"))
    before = {n: p.detach().clone() for n, p in dca.model.named_parameters()}
    dca.train()
    logged = dca.state.log_history[0]
    assert "loss" in logged and 0 < logged["dca/fraction_credited"] < 1
    assert logged["dca/reviews_failed"] == 0
    assert any(not torch.equal(before[n], p) for n, p in dca.model.named_parameters()), "no parameter changed"


class ExplodingReviewer:
    name = "exploding"

    def review(self, problem, trace_completion, units, *, trace_id):
        raise TimeoutError("reviewer did not answer")


def test_failing_reviewer_falls_back_to_uniform_and_is_counted(tiny_model_dir, tmp_path, problem, completions):
    dca, inputs = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="mask"))
    dca.reviewers = [ExplodingReviewer()]
    batch = dca._generate_and_score_completions(inputs)
    mask = batch["completion_mask"].bool()
    # Plain GRPO for every completion: each row carries its sequence advantage on every token.
    for row in range(GROUP):
        values = batch["advantages"][row][mask[row]]
        assert torch.all(values == values[0])
    assert dca._metrics["train"]["dca/reviews_failed"][-1] == GROUP
    assert dca._metrics["train"]["dca/fallbacks"][-1] == GROUP


class RecordingRecorder:
    def record(self, **batch):
        self.batch = batch


def test_several_reviewers_train_only_where_they_agree(tiny_model_dir, tmp_path, problem, completions):
    recorder = RecordingRecorder()
    noisy = NoisyReviewer(OracleReviewer(), flip_rate=0.5, seed=1)
    dca, inputs = make_trainer(DCAGRPOTrainer, tiny_model_dir, tmp_path, problem, completions, credit_config=CreditConfig(policy="mask"), recorder=recorder)
    dca.reviewers = [OracleReviewer(), noisy]
    dca.consensus_rule = "unanimous"
    batch = dca._generate_and_score_completions(inputs)

    recorded = recorder.batch
    assert len(recorded["reviews"]) == 2 * GROUP and len(recorded["consensuses"]) == GROUP
    disputed_somewhere = False
    for row, (consensus, credit) in enumerate(zip(recorded["consensuses"], recorded["credits"])):
        assert consensus.reviewers == sorted([noisy.name, "oracle"])
        assert batch["advantages"][row, : len(credit.token_advantages)].tolist() == pytest.approx(credit.token_advantages)
        if consensus.disputed_units and credit.fallback is None:
            disputed_somewhere = True
            # Tokens wholly inside a disputed unit carry no advantage (disputed="mask").
            text, ids = recorded["traces"][row].completion, recorded["traces"][row].completion_token_ids
            spans = token_char_spans(dca.processing_class, ids, text)
            answer_start = check_answer(text, problem.answer).span[0]  # the answer span is always credited
            for unit_index in consensus.disputed_units:
                unit = consensus.units[unit_index]
                inside = [i for i, (a, b) in enumerate(spans) if unit.start < a and b <= min(unit.end, answer_start)]
                assert all(credit.token_advantages[i] == 0.0 for i in inside)
    assert disputed_somewhere, "a 50 % noisy reviewer must disagree with the oracle somewhere"
    assert dca._metrics["train"]["dca/fraction_agreed"][-1] < 1.0
