"""DCA-GRPO: TRL's GRPOTrainer with per-token advantages from reviewer credit.

`DCAGRPOTrainer` overrides one method, ``_generate_and_score_completions``: it calls the
parent (generation, rewards, group-normalized scalar advantages, old log-probs), segments
every completion of the local batch into units, has every reviewer review every completion
concurrently (`dca.review.review_batch`: LLM reviewers' calls all in flight together within
each reviewer's concurrency and requests-per-minute limits, through the cache; programmatic
reviewers inline), turns each Review + scalar advantage into per-token advantages
(`dca.credit`), and replaces ``output["advantages"]`` (shape ``(B,)``) by a ``(B, T)`` tensor. TRL's loss accepts
that shape (it unsqueezes only 1-D advantages), so every loss variant, PEFT, vLLM and
multi-process training are inherited unchanged.

Departures from plain GRPO, on purpose:
- the reviewer never changes the scalar advantage of a completion, only where inside the
  completion it lands (``conserve`` keeps each completion's token sum equal to plain GRPO's);
- a review that raises is recorded as a failed review and its completion falls back to
  ``uniform`` credit (plain GRPO for that completion); the run never stops for it;
- with several reviewers, their reviews are merged per unit into a `Consensus`
  (`dca.consensus`) and credit follows only what they agree on.

The dataset must carry a ``problem_id`` column whose values are keys of ``problems``.

TRL options that assume one advantage per sequence were checked against the ``(B, T)`` shape
(see `dca.train.grpo_config`); ``importance_sampling_level="sequence"`` is refused. Besides
the override above, the trainer adds what a run needs around TRL: DCA's ``dca/*`` metrics are
aggregated across processes before TRL logs them (`log`), and each checkpoint gets a
`DCA_STATE_FILE` so a resumed run continues the trace ids where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from ..consensus import build_consensus, check_rule
from ..credit import CreditInput, compute_credits, credit_statistics, token_char_spans
from ..domains import check as check_domain
from ..domains import domain_of
from ..domains.judge import active_judge, response_of
from ..durable import fsync_tree
from ..files import write_text_atomic
from ..problems.answer import check_answer
from ..records import Consensus, Credit, Problem, Review, Trace
from ..review.base import ReviewItem, Reviewer, review_batch
from ..segment import segment
from .grpo_config import DCAGRPOConfig
from .resume import DCA_STATE_FILE
from .trl_options import check_per_token_options

#: ``dca/*`` metrics that are counts per generation batch: summed over processes (the others,
#: fractions and means, are averaged; ``dca/review_seconds`` takes the slowest process).
SUMMED_METRICS = ("dca/traces", "dca/tokens", "dca/fallbacks", "dca/reviews_failed")


class BatchRecorder(Protocol):
    """Receives what the trainer produced for each generation batch (`dca.train.run_directory.RunRecorder`)."""

    def record(
        self, *, step: int, traces: list[Trace], reviews: list[Review], credits: list[Credit], consensuses: list[Consensus]
    ) -> None: ...


def outcome_reward(completions: list, answer: list[str], **_: Any) -> list[float]:
    """Verifier reward for TRL: 1.0 when the completion's final (numeric) answer equals the
    gold answer. Prefer `domain_reward`, which follows each problem's domain."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [check_answer(text, gold).reward for text, gold in zip(texts, answer)]


def domain_reward(problems: dict[str, Problem]):
    """A TRL reward function that scores each completion with its problem's domain verifier
    (`dca.domains.check`); the dataset needs a ``problem_id`` column."""

    def outcome_reward(completions: list, problem_id: list[str], **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        _prefetch_judgements([problems[pid] for pid in problem_id], texts)
        return [check_domain(problems[pid], text).reward for text, pid in zip(texts, problem_id)]

    return outcome_reward


def _prefetch_judgements(problems: list[Problem], texts: list[str]) -> None:
    """Judge a batch's open-ended responses concurrently before they are scored one by one."""
    judge = active_judge()
    if judge is None:
        return
    items = []
    for problem, text in zip(problems, texts):
        found = response_of(text) if domain_of(problem).needs_judge else None
        if found is not None:
            items.append((problem, found[0]))
    judge.prefetch(items)


class DCAGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are per token, placed by reviewers' analysis.

    `reviewer` is one reviewer or a list; with several, credit follows their consensus under
    `consensus_rule` ("unanimous", "majority" or "at-least-M"). `args` must be a `DCAGRPOConfig`:
    its ``credit`` settings name the credit policy (`dca.credit.POLICIES`).
    """

    def __init__(
        self,
        *args: Any,
        reviewer: Reviewer | list[Reviewer],
        problems: dict[str, Problem],
        consensus_rule: str = "majority",
        recorder: BatchRecorder | None = None,
        **kwargs: Any,
    ):
        reviewers = list(reviewer) if isinstance(reviewer, (list, tuple)) else [reviewer]
        if not reviewers:
            raise ValueError("DCAGRPOTrainer needs at least one reviewer")
        check_rule(consensus_rule)
        if not isinstance(kwargs.get("args"), DCAGRPOConfig):
            raise ValueError("DCAGRPOTrainer needs args=DCAGRPOConfig(...): its credit settings say where advantages go")
        check_per_token_options(kwargs["args"])
        super().__init__(*args, **kwargs)
        self.reviewers = reviewers
        self.consensus_rule = consensus_rule
        self.problems = problems
        self.credit_config = kwargs["args"].credit_config
        self.recorder = recorder
        self._generation_round = 0

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        started = time.perf_counter()
        mode = "train" if self.model.training else "eval"
        tokenizer = self.processing_class
        completion_ids: torch.Tensor = output["completion_ids"]
        completion_mask: torch.Tensor = output["completion_mask"]
        sequence_advantages: torch.Tensor = output["advantages"]
        # One row per completion, one column per completion token; padding columns stay 0
        # (TRL multiplies the loss by completion_mask anyway).
        token_advantages = torch.zeros(completion_mask.shape, dtype=torch.float32, device=sequence_advantages.device)

        step = self.state.global_step
        traces, reviews, credits, consensuses = [], [], [], []
        rows = []
        for row, example in enumerate(inputs):
            length = int(completion_mask[row].sum().item())
            ids = completion_ids[row, :length].tolist()
            text = tokenizer.decode(ids, skip_special_tokens=True)
            problem = self.problems[example["problem_id"]]
            check = check_domain(problem, text)
            advantage = float(sequence_advantages[row].item())
            group = f"{problem.id}/step{step}-r{self._generation_round}"
            trace = Trace(
                id=f"{group}-p{self.accelerator.process_index}-{row}",
                problem_id=problem.id,
                prompt=_prompt_text(tokenizer, example["prompt"]),
                completion=text,
                completion_token_ids=ids,
                answer=check.answer,
                outcome=check.outcome,
                reward=check.reward,
                advantage=advantage,
                group=group,
                step=step,
            )
            rows.append((length, ids, check, advantage, ReviewItem(problem=problem, trace=trace, units=segment(text))))
        # Every completion by every reviewer at once; a failure is a failed review (uniform credit).
        by_reviewer = review_batch(self.reviewers, [item for *_, item in rows])
        analyses: list[Review | Consensus] = []
        for row in range(len(rows)):
            trace_reviews = [reviews_of[row] for reviews_of in by_reviewer]
            if len(trace_reviews) == 1:
                analyses.append(trace_reviews[0])
            else:
                analyses.append(build_consensus(trace_reviews, rule=self.consensus_rule))
                consensuses.append(analyses[-1])
            reviews.extend(trace_reviews)
        # One policy call for the whole batch (a registered `dca.credit` policy).
        credits = compute_credits(
            [
                CreditInput(
                    trace_id=item.trace.id, text=item.trace.completion, token_spans=token_char_spans(tokenizer, ids, item.trace.completion),
                    review=analysis, sequence_advantage=advantage, answer_span=check.span,
                )
                for (length, ids, check, advantage, item), analysis in zip(rows, analyses)
            ],
            self.credit_config,
        )  # fmt: skip
        for row, ((length, *_, item), credit) in enumerate(zip(rows, credits)):
            token_advantages[row, :length] = torch.tensor(credit.token_advantages, dtype=torch.float32)
            traces.append(item.trace)

        output["advantages"] = token_advantages
        self._generation_round += 1

        stats = credit_statistics(credits)
        for name, value in stats.items():
            self._metrics[mode][f"dca/{name}"].append(float(value))
        self._metrics[mode]["dca/reviews_failed"].append(float(sum(r.status != "ok" for r in reviews)))
        if consensuses:
            self._metrics[mode]["dca/fraction_agreed"].append(sum(c.fraction_agreed for c in consensuses) / len(consensuses))
        self._metrics[mode]["dca/review_seconds"].append(time.perf_counter() - started)
        if self.recorder is not None:
            self.recorder.record(step=step, traces=traces, reviews=reviews, credits=credits, consensuses=consensuses)
        return output

    # -----------------------------------------------------------------------------------------
    # Around TRL: metrics across processes, checkpoint state for resuming

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.accelerator.num_processes > 1:
            self._aggregate_dca_metrics("train" if self.model.training else "eval")
        super().log(logs, start_time)

    def _aggregate_dca_metrics(self, mode: str) -> None:
        """Replace each process's ``dca/*`` values by one value for all processes (collective:
        every process calls it from `log`, as TRL's own gathers there)."""
        metrics = self._metrics[mode]
        names = sorted({name for names in gather_object([sorted(k for k in metrics if k.startswith("dca/"))]) for name in names})
        for name in names:
            values = metrics.get(name, [])
            local = torch.tensor(sum(values) / len(values) if values else float("nan"), device=self.accelerator.device)
            gathered = self.accelerator.gather(local.reshape(1)).float()
            present = gathered[~torch.isnan(gathered)]
            if name in SUMMED_METRICS:
                value = present.sum()
            elif name == "dca/review_seconds":
                value = present.max()
            else:
                value = present.mean()
            metrics[name] = [float(value.item())]

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        # Written last, once every process has saved its part: marks the checkpoint complete.
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            state = {"global_step": self.state.global_step, "generation_round": self._generation_round}
            fsync_tree(folder)  # the weights are on disk before the marker says they are
            write_text_atomic(folder / DCA_STATE_FILE, json.dumps(state) + "\n")

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        if isinstance(resume_from_checkpoint, (str, os.PathLike)):
            state_file = Path(resume_from_checkpoint) / DCA_STATE_FILE
            if state_file.is_file():
                self._generation_round = json.loads(state_file.read_text(encoding="utf-8"))["generation_round"]
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)


def _prompt_text(tokenizer, prompt: str | list[dict[str, str]]) -> str:
    """The prompt as the model saw it: chat-templated when conversational."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
