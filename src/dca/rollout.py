"""Sampling traces from an assistant model: Problem -> Trace.

Generation is batched with left padding through ``model.generate``; each completion is
checked by its domain's verifier (`dca.domains.check`) so a Trace carries its
outcome and reward. Sampling settings and the seed are recorded in every trace's group id
and in the caller's run config, so a rollout can be repeated exactly on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .domains import check as check_answer_of
from .domains import chat_messages
from .errors import UserError
from .micro.vocabulary import check_micro_checkpoint, is_micro_checkpoint, load_micro_tokenizer, unknown_pieces
from .model import SamplingConfig, generate_batch
from .records import Problem, Trace


def render_prompt(tokenizer, problem: Problem) -> str:
    """The prompt text exactly as the model sees it."""
    return tokenizer.apply_chat_template(chat_messages(problem), tokenize=False, add_generation_prompt=True)


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rollout(
    model,
    tokenizer,
    problems: list[Problem],
    config: SamplingConfig,
    *,
    model_name: str = "",
    on_batch: Callable[[int], None] | None = None,
) -> list[Trace]:
    """Draw `config.samples_per_problem` completions for each problem."""
    import torch  # heavy: torch loads only when a model runs

    torch.manual_seed(config.seed)
    requests = [(p, k) for p in problems for k in range(config.samples_per_problem)]
    traces: list[Trace] = []
    for batch in _batches(requests, config.batch_size):
        prompts = [render_prompt(tokenizer, p) for p, _ in batch]
        completion_ids = generate_batch(
            model, tokenizer, prompts, max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p
        )
        for (problem, k), prompt, ids in zip(batch, prompts, completion_ids):
            text = tokenizer.decode(ids, skip_special_tokens=True)
            check = check_answer_of(problem, text)
            traces.append(
                Trace(
                    id=f"{problem.id}/r{config.seed}-{k}",
                    problem_id=problem.id,
                    prompt=prompt,
                    completion=text,
                    completion_token_ids=ids,
                    answer=check.answer,
                    outcome=check.outcome,
                    reward=check.reward,
                    group=f"{problem.id}/r{config.seed}",
                    model=model_name,
                )
            )
        if on_batch:
            on_batch(len(batch))
    return traces


def summarize(traces: list[Trace]) -> dict[str, float]:
    """Accuracy, format-failure rate and mean completion length of a set of traces (and, when
    an LLM judge scored open-ended tasks, how many judgements failed: no reward)."""
    n = len(traces)
    if n == 0:
        return {"traces": 0, "accuracy": 0.0, "format_failures": 0.0, "mean_tokens": 0.0}
    figures = {
        "traces": n,
        "accuracy": sum(t.outcome == "correct" for t in traces) / n,
        "format_failures": sum(t.outcome == "format_failure" for t in traces) / n,
        "mean_tokens": sum(len(t.completion_token_ids) for t in traces) / n,
    }
    judge_failures = sum(t.outcome == "judge_failed" for t in traces)
    if judge_failures:
        figures["judge_failures"] = judge_failures
    return figures


def check_micro_problems(model_path: str | Path, problems, *, what: str = "problem") -> None:
    """For a micro checkpoint: every problem's prompt must lie in the micro vocabulary
    (one-line UserError naming the first problem and word that do not). Other models: nothing."""
    if not is_micro_checkpoint(model_path):
        return
    check_micro_checkpoint(model_path)
    tokenizer = load_micro_tokenizer()
    for problem in problems:
        missing = unknown_pieces(tokenizer, render_prompt(tokenizer, problem))
        if missing:
            word = tokenizer.backend_tokenizer.decoder.decode([missing[0]]).strip()
            raise UserError(
                f"{what} {problem.id} has {len(missing)} word(s) outside the micro vocabulary (first: {word!r}); "
                "the micro model reads synthetic arithmetic problems only"
            )
