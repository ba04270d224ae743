"""`DCAGRPOConfig` and the ``trl:`` passthrough: names checked against TRL's real field list,
values against its types and choices, and TRL's loss options checked for per-token advantages.

The loss tests run TRL 1.16's own `GRPOTrainer._compute_loss` with hand-made inputs: the
per-token log-probabilities are a leaf tensor (the model's forward pass is replaced), so the
gradient each token receives can be read off directly.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import trl

from dca.model import load_model, trainer_device_arguments
from dca.train.config import LOSS_TYPES, GRPOSettings, TrainConfig
from dca.train.grpo_config import DCAGRPOConfig, build_grpo_config
from dca.train.trl_options import check_trl_options, grpo_config_fields
from dca.train.grpo_trainer import outcome_reward


def test_dcagrpoconfig_is_trl_grpoconfig_with_every_field():
    assert issubclass(DCAGRPOConfig, trl.GRPOConfig)
    names = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    assert set(grpo_config_fields()) == names and len(names) > 150


def test_trl_options_pass_through_unchanged(tmp_path):
    options = {"use_vllm": True, "bf16": True, "gradient_accumulation_steps": 3, "save_steps": 7, "report_to": ["tensorboard"],
               "vllm_mode": "colocate", "lr_scheduler_type": "cosine", "save_total_limit": 2, "epsilon_high": 0.28}  # fmt: skip
    args = build_grpo_config(grpo=GRPOSettings(), trl_options=options, output_dir=str(tmp_path), seed=5, defaults=trainer_device_arguments())
    assert isinstance(args, DCAGRPOConfig)
    for name, value in options.items():
        got = getattr(args, name)
        assert (got.value if hasattr(got, "value") else got) == value, name
    assert args.save_strategy == "steps"  # save_steps alone turns checkpointing on
    # The grpo: settings keep DCA's defaults; managed fields come from the run.
    g = GRPOSettings()
    assert (args.max_steps, args.num_generations, args.loss_type, args.seed) == (g.steps, g.num_generations, g.loss_type, 5)
    assert args.per_device_train_batch_size == g.num_generations * g.prompts_per_step
    assert args.steps_per_generation == 3  # TRL derives it from gradient_accumulation_steps, as without DCA


def test_defaults_do_not_checkpoint_or_report(tmp_path):
    args = build_grpo_config(grpo=GRPOSettings(), trl_options={}, output_dir=str(tmp_path), seed=0, defaults=trainer_device_arguments())
    assert args.save_strategy == "no" and args.report_to == [] and args.importance_sampling_level == "token"


@pytest.mark.parametrize(
    "options, words",
    [
        ({"sav_steps": 2}, ["trl.sav_steps", "not a trl.GRPOConfig field", "save_steps"]),
        ({"no_such_option": 1}, ["trl.no_such_option"]),
        ({"loss_type": "ppo"}, ["trl.loss_type", "'ppo'", "dapo"]),
        ({"scale_rewards": "std"}, ["trl.scale_rewards"]),
        ({"vllm_mode": "remote"}, ["trl.vllm_mode"]),
        ({"importance_sampling_level": "sequence"}, ["trl.importance_sampling_level", "refused"]),
        ({"importance_sampling_level": "sentence"}, ["trl.importance_sampling_level"]),
        ({"gradient_accumulation_steps": "two"}, ["trl.gradient_accumulation_steps", "int"]),
        ({"bf16": "maybe"}, ["trl.bf16"]),
        ({"max_steps": 3}, ["trl.max_steps", "grpo.steps"]),
        ({"output_dir": "/tmp/x"}, ["trl.output_dir", "--out"]),
        ({"per_device_train_batch_size": 4}, ["trl.per_device_train_batch_size", "prompts_per_step"]),
        ({"seed": 1}, ["trl.seed"]),
        ({"resume_from_checkpoint": "x"}, ["trl.resume_from_checkpoint", "--resume"]),
        ({"eval_strategy": "steps"}, ["trl.eval_strategy", "eval_problems"]),
        ({"report_to": "nope"}, ["trl.report_to", "'nope'"]),
    ],
)
def test_bad_trl_options_are_one_line_naming_the_option(options, words):
    with pytest.raises(ValueError) as raised:
        check_trl_options(options)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_a_setting_has_one_home():
    TrainConfig.model_validate({"trl": {"learning_rate": 1e-4}})  # only in trl: fine
    with pytest.raises(ValueError, match="trl.learning_rate is also set as grpo.learning_rate"):
        TrainConfig.model_validate({"grpo": {"learning_rate": 1e-5}, "trl": {"learning_rate": 1e-4}})


def test_grpo_loss_type_is_checked_without_trl():
    with pytest.raises(ValueError, match="grpo.loss_type"):
        TrainConfig.model_validate({"grpo": {"loss_type": "ppo"}})


# ---------------------------------------------------------------------------------------------
# TRL's loss options with (batch, tokens) advantages

B, T = 3, 6


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return load_model(str(tiny_model_dir))


def loss_gradient(model_and_tokenizer, tmp_path, options: dict, advantages: torch.Tensor, logps: torch.Tensor, old: torch.Tensor):
    """TRL 1.16's loss under `options` and the gradient it gives each token's log-probability."""
    from datasets import Dataset

    model, tokenizer = model_and_tokenizer
    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=B, num_generations=B, max_completion_length=T,
                          report_to=[], save_strategy="no", **trainer_device_arguments(), **options)  # fmt: skip
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[outcome_reward], args=args, processing_class=tokenizer,
                              train_dataset=Dataset.from_list([{"prompt": "2+2?", "answer": "4"}]))  # fmt: skip
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    leaf = logps.clone().requires_grad_(True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (leaf, torch.full_like(leaf, 2.0), None)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 4:] = 0  # one shorter completion
    inputs = {
        "prompt_ids": torch.ones(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "num_items_in_batch": mask.sum(),
    }
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), leaf.grad * mask


@pytest.fixture(scope="module")
def logps():
    """Per-token log-probabilities now and at sampling time: ratios within and beyond the clip
    range, and one sequence far enough off-policy for the off-policy mask to act on it."""
    generator = torch.Generator().manual_seed(0)
    now = -torch.rand(B, T, generator=generator) * 3
    drift = (torch.rand(B, T, generator=generator) - 0.5) * 0.6
    drift[2] += 0.5  # sequence 2: sampled when its tokens were likelier (KL > threshold)
    return now, now + drift


#: Mixed signs inside a sequence, as DCA's `signed` policy produces (and zeros, as `mask`).
PER_TOKEN = torch.tensor([[0.9, 0.0, -0.4, 1.3, 0.2, 0.0], [-1.1, -0.3, 0.0, 0.7, 0.0, 0.0], [0.5, -0.8, -0.2, 0.0, 1.0, -0.6]])

TOKEN_LEVEL_OPTIONS = [{"loss_type": loss_type} for loss_type in LOSS_TYPES] + [
    {"loss_type": "dapo", "off_policy_mask_threshold": 0.05},
    {"loss_type": "grpo", "off_policy_mask_threshold": 0.05},
    {"loss_type": "vespo", "off_policy_mask_threshold": 0.05},
    {"loss_type": "sapo", "sapo_temperature_neg": 2.0},
    {"loss_type": "dapo", "delta": 1.1, "top_entropy_quantile": 0.5},
]


@pytest.mark.parametrize("options", TOKEN_LEVEL_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_token_level_options_give_each_token_the_sequence_rule_with_its_own_advantage(options, model_and_tokenizer, tmp_path, logps):
    """Off-policy sequence mask, SAPO's sign-dependent temperatures, VESPO's sign-dependent
    weights and every loss type: the gradient at token k under per-token advantages equals
    TRL's sequence-level gradient at token k for a batch whose sequences carry token k's
    advantage. So per-token advantages get exactly the paper's rule, token by token, and a
    token's gradient depends on its own advantage only."""
    now, old = logps
    _, gradient = loss_gradient(model_and_tokenizer, tmp_path, options, PER_TOKEN, now, old)
    assert gradient.abs().sum() > 0
    for k in range(T):
        _, sequence_gradient = loss_gradient(model_and_tokenizer, tmp_path, options, PER_TOKEN[:, k].clone(), now, old)
        torch.testing.assert_close(gradient[:, k], sequence_gradient[:, k], msg=f"token {k} under {options}")


@pytest.mark.parametrize("options", TOKEN_LEVEL_OPTIONS[:3] + [{"importance_sampling_level": "sequence"}], ids=str)
def test_uniform_per_token_advantages_equal_trl_sequence_advantages(options, model_and_tokenizer, tmp_path, logps):
    now, old = logps
    sequence = torch.tensor([1.2, -0.7, 0.4])
    loss_1d, gradient_1d = loss_gradient(model_and_tokenizer, tmp_path, options, sequence, now, old)
    loss_2d, gradient_2d = loss_gradient(model_and_tokenizer, tmp_path, options, sequence[:, None].expand(B, T).clone(), now, old)
    torch.testing.assert_close(loss_2d, loss_1d)
    torch.testing.assert_close(gradient_2d, gradient_1d)


def test_sequence_level_importance_sampling_erases_per_token_credit(model_and_tokenizer, tmp_path):
    """Why `importance_sampling_level="sequence"` (GSPO) is refused: its one ratio per sequence
    spreads every token's advantage over the whole sequence, so per-token advantages train
    exactly like each sequence's mean advantage on every token (unclipped ratios here)."""
    generator = torch.Generator().manual_seed(1)
    now = -torch.rand(B, T, generator=generator) * 3
    old = now + (torch.rand(B, T, generator=generator) - 0.5) * 0.1  # ratios inside the clip range
    options = {"importance_sampling_level": "sequence", "loss_type": "dapo"}
    _, gradient = loss_gradient(model_and_tokenizer, tmp_path, options, PER_TOKEN, now, old)
    mask = torch.ones(B, T)
    mask[1, 4:] = 0
    row_mean = (PER_TOKEN * mask).sum(1) / mask.sum(1)
    _, mean_gradient = loss_gradient(model_and_tokenizer, tmp_path, options, row_mean[:, None].expand(B, T).clone(), now, old)
    torch.testing.assert_close(gradient, mean_gradient)  # the placement of credit is gone
    _, token_gradient = loss_gradient(model_and_tokenizer, tmp_path, {"loss_type": "dapo"}, PER_TOKEN, now, old)
    assert not torch.allclose(token_gradient, (token_gradient.sum(1, keepdim=True) / mask.sum(1, keepdim=True)) * mask)


def test_dca_refuses_sequence_level_importance_sampling(tmp_path, model_and_tokenizer):
    from dca.review import OracleReviewer
    from dca.train.grpo_trainer import DCAGRPOTrainer

    with pytest.raises(ValueError, match="importance_sampling_level='sequence'"):
        DCAGRPOConfig(output_dir=str(tmp_path), importance_sampling_level="sequence", **trainer_device_arguments())
    model, tokenizer = model_and_tokenizer
    args = trl.GRPOConfig(output_dir=str(tmp_path), importance_sampling_level="sequence", per_device_train_batch_size=2,
                          num_generations=2, report_to=[], **trainer_device_arguments())  # fmt: skip
    # A plain GRPOConfig is refused (the credit settings and these checks live on DCAGRPOConfig).
    with pytest.raises(ValueError, match="DCAGRPOConfig"):
        DCAGRPOTrainer(model=model, reward_funcs=[outcome_reward], args=args, processing_class=tokenizer, reviewer=OracleReviewer(), problems={})
