"""The counterfactual reviewer: labels each unit by its causal effect on the answer, measured
with the policy model itself (after Bogdan et al. 2025, "Thought Anchors").

For a trace with CoT units ``0..n-1`` (`dca.continuation.split_cot`), the model continues the
CoT ``samples`` times from each prefix ``units[:k]``, k = 0..n (a free continuation that
writes the rest of the CoT and an answer), and ``acc(k)`` is the share of those continuations
whose answer is right. Unit i's importance compares keeping it with not keeping it:

- ``resample`` (Thought Anchors' resampling importance): ``acc(i+1) − acc(i)``: the prefix
  with unit i against the same prefix with unit i removed and everything after resampled;
- ``counterfactual`` (the paper's counterfactual importance, the default): as ``resample``,
  but the "removed" side keeps only continuations from ``units[:i]`` whose first unit is
  *dissimilar* to unit i (rapidfuzz ratio below ``similarity``), so a resample that
  rewrites the same step does not count as removing it. When no resample is dissimilar the
  unit falls back to ``resample`` and this is recorded.

Both share the same ``(n+1) × samples`` continuations. Labels: importance ≥ ``threshold``:
``essential`` (useful); ≤ −``threshold``: ``error`` (harmful); otherwise ``irrelevant``. The
answer-statement units (and anything after them) are not probed: they are labelled
``conclusion`` / ``solved`` when the trace's answer is right, ``conclusion`` / ``error``
otherwise. Probed units get function ``computation`` when they hold an ``=`` and a digit, else
``other``: importance says nothing about what a unit does. Contiguous units with the same
label form one step; steps carry no dependencies (the importance matrix between units,
which Thought Anchors also measures, is not computed here).

"Right" means against the gold answer (``target="gold"``); ``target="trace"`` compares with the
trace's own answer instead and needs no ground truth at all. The review's ``metadata`` holds
the per-unit importance, ``acc(k)``, the dissimilar counts and the settings; ``usage`` holds
``generated_tokens`` (its cost) and ``continuations``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from rapidfuzz import fuzz

from ..continuation import CoTEdit, ContinuationEngine, ContinuationRequest, ContinuationSettings, answers_equal, apply_edit, split_cot
from ..measures import has_computation
from ..problems.answer import extract_answer
from ..records import Problem, Review, Step, Unit
from ..segment import segment


@dataclass(kw_only=True)
class CounterfactualConfig:
    """Settings of the counterfactual reviewer."""

    samples: int = 4
    """Continuations per prefix (Thought Anchors use 100; each costs a free continuation)."""
    threshold: float = 0.25
    """|importance| at or above which a unit is useful (positive) or harmful (negative)."""
    mode: str = "counterfactual"
    """``counterfactual`` or ``resample`` (module docstring)."""
    similarity: float = 0.8
    """``counterfactual``: a resampled first unit with rapidfuzz ratio below this (0..1) is dissimilar."""
    target: str = "gold"
    """``gold``: accuracy against the gold answer; ``trace``: agreement with the trace's own answer."""
    max_new_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 1.0
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("counterfactual samples must be at least 1")
        if not 0 < self.threshold <= 1:
            raise ValueError("counterfactual threshold must be in (0, 1]")
        if self.mode not in ("counterfactual", "resample"):
            raise ValueError("counterfactual mode must be 'counterfactual' or 'resample'")
        if self.target not in ("gold", "trace"):
            raise ValueError("counterfactual target must be 'gold' or 'trace'")
        if not 0 < self.similarity <= 1:
            raise ValueError("counterfactual similarity must be in (0, 1]")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("several counterfactual samples need temperature > 0")
        self.sampling()  # checks the shared sampling fields

    def sampling(self) -> ContinuationSettings:
        return ContinuationSettings(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            samples=self.samples, batch_size=self.batch_size, seed=self.seed,
        )  # fmt: skip


def label_importance(importance: float, threshold: float) -> str:
    """``essential`` / ``irrelevant`` / ``error`` for an importance figure."""
    if importance >= threshold:
        return "essential"
    if importance <= -threshold:
        return "error"
    return "irrelevant"


def _similar(a: str, b: str) -> float:
    return fuzz.ratio(a.strip(), b.strip()) / 100


class CounterfactualReviewer:
    """Implements the `dca.review.Reviewer` protocol with a continuation engine."""

    def __init__(
        self,
        engine: ContinuationEngine,
        config: CounterfactualConfig | None = None,
        *,
        render_prompt: Callable[[Problem], str] | None = None,
        name: str = "counterfactual",
    ):
        """`render_prompt`: the prompt the policy saw for a problem (e.g.
        ``lambda p: dca.rollout.render_prompt(tokenizer, p)``), used when `review` is not
        given the trace's prompt."""
        self.engine = engine
        self.config = config or CounterfactualConfig()
        self.render_prompt = render_prompt
        self.name = name

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str, prompt: str | None = None) -> Review:
        """`prompt`: the rendered prompt the trace was sampled from (`Trace.prompt`); default:
        the constructor's `render_prompt` of `problem`."""
        config = self.config
        cot = split_cot(trace_completion)
        if [u.text for u in units[: len(cot.units)]] != [u.text for u in cot.units]:
            return self._failed(trace_id, units, "units are not the segment() units of the completion")
        if prompt is None and self.render_prompt is not None:
            prompt = self.render_prompt(problem)
        if prompt is None:
            return self._failed(trace_id, units, "the counterfactual reviewer needs the trace's prompt or a render_prompt")

        trace_answer = extract_answer(trace_completion).answer
        if config.target == "trace" and trace_answer is None:
            return self._failed(trace_id, units, "target 'trace' needs a trace with an answer")
        target = problem.answer if config.target == "gold" else trace_answer
        n = len(cot.units)
        requests = [
            ContinuationRequest(id=f"{trace_id}#cf{k}", prompt=prompt, prefix=apply_edit(cot.units, CoTEdit(kind="truncate", unit=k)), gold=target)
            for k in range(n + 1)
        ]
        results = self.engine.continue_batch(requests, config.sampling())
        errors = sorted({r.error for r in results if r.error})
        tokens = sum(r.generated_tokens for r in results)
        usage = {"generated_tokens": float(tokens), "continuations": float(len(results))}
        if errors:
            review = self._failed(trace_id, units, "; ".join(errors))
            review.usage = usage
            return review
        per_prefix = [results[k * config.samples : (k + 1) * config.samples] for k in range(n + 1)]
        accuracy = [sum(c.outcome == "correct" for c in group) / config.samples for group in per_prefix]
        importance, dissimilar, fallback = [], [], []
        for i in range(n):
            removed = accuracy[i]
            if config.mode == "counterfactual":
                firsts = [(c, segment(c.text)) for c in per_prefix[i]]
                kept = [c for c, first in firsts if not first or _similar(first[0].text, cot.units[i].text) < config.similarity]
                dissimilar.append(len(kept))
                if kept:
                    removed = sum(c.outcome == "correct" for c in kept) / len(kept)
                else:
                    fallback.append(i)
            importance.append(accuracy[i + 1] - removed)
        labels = [label_importance(v, config.threshold) for v in importance]
        functions = ["computation" if has_computation(u.text) else "other" for u in cot.units]
        answer_right = answers_equal(trace_answer, target)
        conclusion = "solved" if answer_right else "error"
        labels += [conclusion] * (len(units) - n)
        functions += ["conclusion"] * (len(units) - n)
        return Review(
            trace_id=trace_id,
            reviewer=self.name,
            units=units,
            steps=_group(functions, labels, importance),
            usage=usage,
            metadata={
                "problem_id": problem.id,
                "importance": importance,
                "accuracy_by_prefix": accuracy,
                "dissimilar_resamples": dissimilar,
                "fallback_to_resample": fallback,
                "settings": asdict(config),
                "engine": getattr(self.engine, "name", ""),
            },
        )

    def _failed(self, trace_id: str, units: list[Unit], error: str) -> Review:
        return Review.failed(trace_id, self.name, units, error)


def _group(functions: list[str], labels: list[str], importance: list[float]) -> list[Step]:
    steps: list[Step] = []
    for i, (function, label) in enumerate(zip(functions, labels)):
        if steps and steps[-1].function == function and steps[-1].contribution == label:
            steps[-1].last_unit = i
            continue
        reason = f"importance {importance[i]:+.2f}" if i < len(importance) else "the final-answer statement"
        steps.append(Step(index=len(steps), first_unit=i, last_unit=i, function=function, contribution=label, reason=reason))
    for step in steps:
        if step.first_unit < len(importance) and step.last_unit > step.first_unit:
            values = importance[step.first_unit : min(step.last_unit + 1, len(importance))]
            step.reason = "importance " + ", ".join(f"{v:+.2f}" for v in values)
    return steps
