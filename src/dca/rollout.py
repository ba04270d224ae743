"""Sampling traces from an assistant model: Problem -> Trace.

Generation is batched with left padding through ``model.generate``; each completion is
checked by its domain's verifier (`dca.domains.check`) so a Trace carries its
outcome and reward. Sampling settings and the seed are recorded in every trace's group id
and in the caller's run config, so a rollout can be repeated exactly on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .domains import check as check_answer_of
from .prompting import chat_messages
from .records import Problem, Trace


@dataclass(kw_only=True)
class SamplingConfig:
    """How completions are drawn."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    samples_per_problem: int = 1
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0 (0 = greedy)")
        if self.samples_per_problem > 1 and self.temperature == 0:
            raise ValueError("several samples per problem need temperature > 0; set --temperature")
        if self.batch_size < 1 or self.samples_per_problem < 1:
            raise ValueError("batch_size and samples_per_problem must be at least 1")


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
    import torch

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


def generate_batch(
    model, tokenizer, texts: list[str], *, max_new_tokens: int, temperature: float, top_p: float = 1.0
) -> list[list[int]]:
    """The token ids a model generates after each text, in one left-padded batch.

    Greedy when `temperature` is 0; each result runs up to and including the first
    end-of-sequence token, without padding. The caller seeds torch.
    """
    import torch

    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation needs the inputs right-aligned
    model.eval()
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
        with torch.no_grad():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                use_cache=True,  # training turns the KV cache off in the model config
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
    finally:
        tokenizer.padding_side = padding_side
    new_ids = output[:, encoded["input_ids"].shape[1] :].tolist()
    return [_strip_after_eos(ids, tokenizer.eos_token_id, tokenizer.pad_token_id) for ids in new_ids]


def _strip_after_eos(ids: list[int], eos_id: int, pad_id: int | None) -> list[int]:
    """Keep tokens up to and including the first end-of-sequence token; drop padding."""
    if eos_id in ids:
        return ids[: ids.index(eos_id) + 1]
    return [t for t in ids if t != pad_id] if pad_id is not None and pad_id != eos_id else ids


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
