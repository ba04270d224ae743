"""The `Domain` bundle: what the pipeline needs to know about one family of problems.

A domain is a plain record of callables, in the spirit of Inspect AI's Task (it only
bundles roles): a problem source (a seeded generator, a loader or both), the answer checker
that decides the reward, the system prompt that asks for the answer format, a gold-CoT
renderer where the structure allows one (warm starts), and an oracle reviewer where the
causal structure is known. `dca.domains.DOMAINS` maps names to domains; nothing else
needs a list of domain names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from ..problems.answer import AnswerCheck
from ..problems.gold import GoldCoT
from ..records import Problem

#: ``generate(count, seed, options) -> problems``; options are the domain's generator knobs.
Generator = Callable[[int, int, dict[str, Any]], list[Problem]]
#: ``load(path_or_split, limit) -> problems``; None asks for the domain's default split.
Loader = Callable[[str | None, int | None], list[Problem]]
#: ``check(problem, completion) -> AnswerCheck``: the verifier whose reward trains the policy.
Checker = Callable[[Problem, str], AnswerCheck]
#: ``render(problem, irrelevant_rate, rng) -> GoldCoT``.
GoldRenderer = Callable[[Problem, float, random.Random], GoldCoT]


@dataclass(kw_only=True, frozen=True)
class Domain:
    """One registered problem family."""

    name: str
    """Registry key, used on the command line (``--domain logic``, ``--sets logic:30``)."""
    description: str
    """One line for `dca domains`."""
    system_prompt: str
    """The system message that asks for the reasoning and the final-answer line."""
    answer_format: str
    """What goes after ``Answer:``, in words (``a number``, ``True, False or Unknown``)."""
    reward: str
    """Who decides the reward, in words (``math_verify``, ``reasoning-gym scorer``, ...)."""
    check: Checker
    generate: Generator | None = None
    load: Loader | None = None
    gold_cot: GoldRenderer | None = None
    oracle: Callable[[], Any] | None = None
    """Builds the domain's oracle `Reviewer` (None where the structure is unknown)."""
    reviewer_reference: str = ""
    """What reviewers see besides the problem, in words (empty: nothing)."""
    options: str = ""
    """The generator's options (``--option KEY=VALUE``), in words."""
    default_count: int = 50
    """Problems of a generated evaluation set without a ``:N`` limit."""
    load_hint: str = ""
    """Where the loader's data comes from, in words (the loader's default or a file)."""
    needs_judge: bool = False
    """No verifier: the reward comes from an LLM judge (`dca.domains.judge`)."""

    def supports(self) -> dict[str, bool]:
        return {
            "generator": self.generate is not None,
            "loader": self.load is not None,
            "gold_cot": self.gold_cot is not None,
            "oracle": self.oracle is not None,
            "reviewer_reference": bool(self.reviewer_reference),
        }
