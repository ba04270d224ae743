"""Domains: every problem family behind one interface, in one registry (a plain dict).

    dca domains                                   # the table of what each supports
    dca problems --domain logic --count 100 --out logic.jsonl
    dca eval --sets logic:30,knights-knaves:30,arithmetic:30 --out runs/eval

`DOMAINS` maps a name to a `Domain` (`dca.domains.base`). Each problem records its domain
(`Problem.domain`); `domain_of` finds it again, so the rollout, the trainer's reward, the
prompt and the ``oracle`` reviewer follow the problem, not a global setting. A problem whose
domain is not registered (an old or foreign file) is treated as arithmetic: numeric answers
checked with math_verify, which is what every problem was before domains existed.

Problem sources (files, GSM8K splits, seeded generators, named evaluation sets) live in
`dca.domains.sources`, used by the CLI, training, warm start and evaluation alike.
"""

from __future__ import annotations

from ..errors import UserError
from ..problems.answer import AnswerCheck
from ..records import Problem, Review, Unit
from .base import Domain
from .builtin import builtin_domains

#: Every registered domain by name, in the order `dca domains` lists them.
DOMAINS: dict[str, Domain] = {d.name: d for d in builtin_domains()}


def get_domain(name: str) -> Domain:
    """The domain called `name`; an unknown name is a UserError listing the known ones."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise UserError(f"unknown domain {name!r}: choose from {', '.join(DOMAINS)} (see `dca domains`)") from None


def domain_of(problem: Problem) -> Domain:
    """The domain a problem belongs to (arithmetic for unregistered names, see above)."""
    return DOMAINS.get(problem.domain) or DOMAINS["arithmetic"]


def check(problem: Problem, completion: str) -> AnswerCheck:
    """The problem's domain's verdict on a completion: outcome, reward and answer span."""
    return domain_of(problem).check(problem, completion)


def system_prompt(problem: Problem) -> str:
    return domain_of(problem).system_prompt


def user_message(problem: Problem) -> str:
    return problem.question


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    """The conversational prompt (TRL's conversational dataset format), with the system
    prompt of the problem's domain (`SYSTEM_PROMPT` of `dca.problems.answer` for arithmetic)."""
    return [
        {"role": "system", "content": system_prompt(problem)},
        {"role": "user", "content": user_message(problem)},
    ]


def oracle_for(problem: Problem):
    """The oracle reviewer of the problem's domain, or None where it has none."""
    domain = domain_of(problem)
    return domain.oracle() if domain.oracle is not None else None


class OracleReviewer:
    """The ``oracle`` reviewer: hands each trace to the oracle of its problem's domain (exact
    labels from the problem's known structure: arithmetic, logic, knights-and-knaves); a problem
    whose domain has no oracle goes to the arithmetic one, which fails the review when the
    problem carries no structure (e.g. GSM8K)."""

    name = "oracle"

    def review(self, problem: Problem, trace_completion: str, units: list[Unit], *, trace_id: str) -> Review:
        domain = domain_of(problem)
        oracle = domain.oracle() if domain.oracle is not None else DOMAINS["arithmetic"].oracle()
        review = oracle.review(problem, trace_completion, units, trace_id=trace_id)
        review.reviewer = self.name
        return review


def register(domain: Domain) -> None:
    """Add a domain (e.g. from a plugin or a test); a name may be registered once."""
    if domain.name in DOMAINS:
        raise ValueError(f"domain {domain.name!r} is already registered")
    DOMAINS[domain.name] = domain


__all__ = ["DOMAINS", "Domain", "OracleReviewer", "chat_messages", "check", "domain_of", "get_domain", "oracle_for", "register", "system_prompt", "user_message"]
