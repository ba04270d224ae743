"""The built-in domains: each one's generator, checker, gold-CoT renderer and oracle. Heavy libraries
(reasoning-gym, math-verify) load only when a domain uses them, inside `dca.problems`."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..problems.answer import ANSWER_PREFIX, check_answer
from ..problems.answer import SYSTEM_PROMPT  # noqa: F401 (ANSWER_PREFIX: prompts below)
from ..problems.gold import render_gold_cot
from ..problems.gsm8k import load_gsm8k
from ..problems.labels import check_label
from ..problems.logic import LogicConfig, generate_logic_problems, render_logic_gold_cot
from ..problems.reasoning_gym import check_reasoning_gym, generate_reasoning_gym
from ..problems.strategyqa import load_strategyqa
from ..problems.synthetic import SyntheticConfig, generate_problems
from ..records import Problem
from .base import Domain
from .judge import OPEN_ENDED_PROMPT, check_open_ended, generate_open_ended, load_open_ended
from .oracles.arithmetic import ArithmeticOracleReviewer
from .oracles.knights import KnightsKnavesOracleReviewer
from .oracles.logic import LogicOracleReviewer


def _numeric_check(problem: Problem, completion: str):
    return check_answer(completion, problem.answer)


def _options(cls, options: dict[str, Any], domain: str):
    """A generator config from ``--option`` values; unknown names raise ValueError."""
    names = {f.name for f in dataclasses.fields(cls)} - {"seed"}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"domain {domain!r} has no generator option(s) {unknown}; it has {sorted(names)}")
    return options


# --- arithmetic (synthetic word problems) and GSM8K ------------------------------------------


def _arithmetic_generate(count: int, seed: int, options: dict[str, Any]) -> list[Problem]:
    return generate_problems(count, SyntheticConfig(seed=seed, **_options(SyntheticConfig, options, "arithmetic")))


def _arithmetic_gold(problem: Problem, irrelevant_rate: float, rng: random.Random):
    return render_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng)


def _arithmetic_oracle():
    return ArithmeticOracleReviewer()


def _gsm8k_load(path_or_split: str | None, limit: int | None) -> list[Problem]:
    return load_gsm8k(path_or_split or "test", limit=limit)


# --- logic (own generator, proof DAG, oracle) -------------------------------------------------

LOGIC_PROMPT = (
    "Decide whether the statement follows from the facts and rules, step by step, using only the "
    "statements it needs. End with a last line of the form "
    f"'{ANSWER_PREFIX} True', '{ANSWER_PREFIX} False' or '{ANSWER_PREFIX} Unknown'."
)


def _logic_generate(count: int, seed: int, options: dict[str, Any]) -> list[Problem]:
    return generate_logic_problems(count, LogicConfig(seed=seed, **_options(LogicConfig, options, "logic")))


def _logic_check(problem: Problem, completion: str):
    return check_label(completion, problem.answer, ("True", "False", "Unknown"))


def _logic_gold(problem: Problem, irrelevant_rate: float, rng: random.Random):
    return render_logic_gold_cot(problem, irrelevant_rate=irrelevant_rate, rng=rng)


def _logic_oracle():
    return LogicOracleReviewer()


# --- reasoning-gym puzzles (their own scorers) -------------------------------------------------

PUZZLE_PROMPT = (
    "Solve the problem step by step, using only what it needs. End with a last line of the form "
    f"'{ANSWER_PREFIX} <answer>', the answer on that one line, written as the question asks."
)
#: dca domain name -> (reasoning-gym dataset, description).
REASONING_GYM = {
    "knights-knaves": ("knights_knaves", "reasoning-gym knights and knaves: who tells the truth (oracle from the recorded solution)"),
    "syllogism": ("syllogism", "reasoning-gym syllogisms: does the conclusion follow (Yes / No)"),
    "propositional-logic": ("propositional_logic", "reasoning-gym propositional logic: infer a valid conclusion from premises"),
    "zebra-puzzles": ("zebra_puzzles", "reasoning-gym zebra puzzles: constraint satisfaction over houses"),
    "family-relationships": ("family_relationships", "reasoning-gym family trees: name the relationship"),
}


def _reasoning_gym_generate(name: str):
    def generate(count: int, seed: int, options: dict[str, Any]) -> list[Problem]:
        return generate_reasoning_gym(REASONING_GYM[name][0], name, count, seed, options)

    return generate


def _reasoning_gym_check(problem: Problem, completion: str):
    return check_reasoning_gym(problem, completion)


def _knights_oracle():
    return KnightsKnavesOracleReviewer()


# --- common sense (StrategyQA format) ----------------------------------------------------------

COMMONSENSE_PROMPT = (
    "Answer the yes/no question step by step, using only the facts it needs. End with a last line "
    f"of the form '{ANSWER_PREFIX} Yes' or '{ANSWER_PREFIX} No'."
)


def _commonsense_load(path: str | None, limit: int | None) -> list[Problem]:
    return load_strategyqa(path, limit)


def _yes_no_check(problem: Problem, completion: str):
    return check_label(completion, problem.answer, ("Yes", "No"))


# --- open-ended (LLM judge) --------------------------------------------------------------------


def _open_ended_generate(count: int, seed: int, options: dict[str, Any]) -> list[Problem]:
    return generate_open_ended(count, seed, options)


def _open_ended_load(path: str | None, limit: int | None) -> list[Problem]:
    return load_open_ended(path, limit)


def _open_ended_check(problem: Problem, completion: str):
    return check_open_ended(problem, completion)


def builtin_domains() -> list[Domain]:
    number = "a number"
    domains = [
        Domain(
            name="arithmetic",
            description="seeded word problems with a known computation graph (dca.problems.synthetic)",
            system_prompt=SYSTEM_PROMPT,
            answer_format=number,
            reward="math_verify",
            check=_numeric_check,
            generate=_arithmetic_generate,
            gold_cot=_arithmetic_gold,
            oracle=_arithmetic_oracle,
            options="min_operations, max_operations (1-5), distractors [low, high], max_value",
        ),
        Domain(
            name="gsm8k",
            description="GSM8K grade-school math (train/test JSON-lines, reference solutions)",
            system_prompt=SYSTEM_PROMPT,
            answer_format=number,
            reward="math_verify",
            check=_numeric_check,
            load=_gsm8k_load,
            reviewer_reference="the annotated reference solution (reference reviewer)",
            load_hint="'train', 'test' (default) or a GSM8K .jsonl file",
        ),
        Domain(
            name="logic",
            description="seeded ProofWriter-style deduction: rule chains of depth 1-5 with distractors, proof DAG recorded",
            system_prompt=LOGIC_PROMPT,
            answer_format="True, False or Unknown",
            reward="label match",
            check=_logic_check,
            generate=_logic_generate,
            gold_cot=_logic_gold,
            oracle=_logic_oracle,
            options="min_depth, max_depth (1-5), distractor_rules [low, high], distractor_facts [low, high], answers",
        ),
    ]
    domains.append(
        Domain(
            name="commonsense",
            description="StrategyQA-format yes/no questions with gold facts and decompositions",
            system_prompt=COMMONSENSE_PROMPT,
            answer_format="Yes or No",
            reward="label match",
            check=_yes_no_check,
            load=_commonsense_load,
            reviewer_reference="the gold facts of the decomposition",
            load_hint="a StrategyQA JSON file ($DCA_STRATEGYQA_FILE or ../shared/data/strategyqa/strategyqa_train.json)",
        )
    )

    domains.append(
        Domain(
            name="open-ended",
            description="explanation, advice and writing tasks with rubrics, no verifier: an LLM judge decides the reward",
            system_prompt=OPEN_ENDED_PROMPT,
            answer_format="the response itself",
            reward="LLM judge (reward: judge)",
            check=_open_ended_check,
            generate=_open_ended_generate,
            load=_open_ended_load,
            reviewer_reference="the rubric (judge only)",
            load_hint="seeded tasks (--count), or a tasks .jsonl of {question, rubric, reference?} (--file)",
            needs_judge=True,
        )
    )
    for name, (dataset, description) in REASONING_GYM.items():
        domains.append(
            Domain(
                name=name,
                description=description,
                system_prompt=PUZZLE_PROMPT,
                answer_format="the puzzle's own form",
                reward="reasoning-gym scorer",
                check=_reasoning_gym_check,
                generate=_reasoning_gym_generate(name),
                oracle=_knights_oracle if name == "knights-knaves" else None,
                options=f"the {dataset} config fields of reasoning-gym",
            )
        )
    return domains


__all__ = ["builtin_domains"]
