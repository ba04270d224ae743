"""DCA-GRPO: TRL's GRPOTrainer with per-token advantages from reviewer credit.

`DCAGRPOTrainer` overrides one method, ``_generate_and_score_completions``: it calls the
parent (generation, rewards, group-normalized scalar advantages, old log-probs), then for each
completion in the local batch it segments the text into units, asks the reviewer for a
Review, turns Review + scalar advantage into per-token advantages (`dca.credit`), and
replaces ``output["advantages"]`` (shape ``(B,)``) by a ``(B, T)`` tensor. TRL's loss accepts
that shape (it unsqueezes only 1-D advantages), so every loss variant, PEFT, vLLM and
multi-process training are inherited unchanged.

Departures from plain GRPO, on purpose:
- the reviewer never changes the scalar advantage of a completion, only where inside the
  completion it lands (``conserve`` keeps each completion's token sum equal to plain GRPO's);
- a review that raises is recorded as a failed review and its completion falls back to
  ``uniform`` credit (plain GRPO for that completion); the run never stops for it.

The dataset must carry a ``problem_id`` column whose values are keys of ``problems``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import torch
from trl import GRPOTrainer

from ..credit import CreditConfig, compute_credit, credit_statistics, token_char_spans
from ..problems.answer import check_answer
from ..records import Credit, Problem, Review, Trace, Unit
from ..review import Reviewer
from ..segment import segment


class BatchRecorder(Protocol):
    """Receives what the trainer produced for each generation batch (see `dca.train.run`)."""

    def record(self, *, step: int, traces: list[Trace], reviews: list[Review], credits: list[Credit]) -> None: ...


def outcome_reward(completions: list, answer: list[str], **_: Any) -> list[float]:
    """Verifier reward for TRL: 1.0 when the completion's final answer equals the gold answer."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [check_answer(text, gold).reward for text, gold in zip(texts, answer)]


class DCAGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are per token, placed by a reviewer's analysis."""

    def __init__(
        self,
        *args: Any,
        reviewer: Reviewer,
        problems: dict[str, Problem],
        credit_config: CreditConfig | None = None,
        recorder: BatchRecorder | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.reviewer = reviewer
        self.problems = problems
        self.credit_config = credit_config or CreditConfig()
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
        traces, reviews, credits = [], [], []
        for row, example in enumerate(inputs):
            length = int(completion_mask[row].sum().item())
            ids = completion_ids[row, :length].tolist()
            text = tokenizer.decode(ids, skip_special_tokens=True)
            problem = self.problems[example["problem_id"]]
            check = check_answer(text, problem.answer)
            advantage = float(sequence_advantages[row].item())
            group = f"{problem.id}/step{step}-r{self._generation_round}"
            trace = Trace(
                id=f"{group}-p{self.accelerator.process_index}-{row}",
                problem_id=problem.id,
                prompt=tokenizer.apply_chat_template(example["prompt"], tokenize=False, add_generation_prompt=True),
                completion=text,
                completion_token_ids=ids,
                answer=check.answer,
                outcome=check.outcome,
                reward=check.reward,
                advantage=advantage,
                group=group,
                step=step,
            )
            units = segment(text)
            review = self._review(problem, trace, units)
            credit = compute_credit(
                trace_id=trace.id,
                text=text,
                token_spans=token_char_spans(tokenizer, ids, text),
                review=review,
                sequence_advantage=advantage,
                answer_span=check.span,
                config=self.credit_config,
            )
            token_advantages[row, :length] = torch.tensor(credit.token_advantages, dtype=torch.float32)
            traces.append(trace)
            reviews.append(review)
            credits.append(credit)

        output["advantages"] = token_advantages
        self._generation_round += 1

        stats = credit_statistics(credits)
        for name, value in stats.items():
            self._metrics[mode][f"dca/{name}"].append(float(value))
        self._metrics[mode]["dca/reviews_failed"].append(float(sum(r.status != "ok" for r in reviews)))
        self._metrics[mode]["dca/review_seconds"].append(time.perf_counter() - started)
        if self.recorder is not None:
            self.recorder.record(step=step, traces=traces, reviews=reviews, credits=credits)
        return output

    def _review(self, problem: Problem, trace: Trace, units: list[Unit]) -> Review:
        """Ask the reviewer; a reviewer that raises yields a failed review, never a crash."""
        try:
            return self.reviewer.review(problem, trace.completion, units, trace_id=trace.id)
        except Exception as e:  # noqa: BLE001 - any reviewer failure is data, not a crash
            return Review(
                trace_id=trace.id,
                reviewer=getattr(self.reviewer, "name", type(self.reviewer).__name__),
                units=units,
                status="failed",
                error=f"{type(e).__name__}: {e}",
            )

