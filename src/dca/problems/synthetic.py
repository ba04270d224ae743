"""Seeded arithmetic word problems whose causal structure is known by construction.

A problem is a short story about one person and one kind of object. It opens with how many
objects the person has, then each sentence changes that count (buys more, gives some away,
ends up with N times as many, splits them into N equal piles and keeps one), and it ends by
asking how many objects the person has now. Some changes are compound: "Ava buys 3 bags of
apples. Each bag holds 4 apples." adds a product node (3 * 4) to the graph before the
addition that uses it. So the computation graph is a chain with occasional two-fact
branches, 1 to 5 operations over + - * /, all with integer values of at least 2 (division only
when exact, subtraction always leaving at least 2).

Distractor sentences state numbers that the question does not need: another person's
objects, or the same person's objects of another kind ("Ava also has 9 pears."). Every
sentence that follows a distractor names the person again, so that pronouns stay
unambiguous.

The generator retries (a bounded number of times) until no number is stated twice and no
stated number equals an intermediate value, so that a value in a chain of thought points
to one source. This is what lets the oracle reviewer (`dca.domains.oracles.arithmetic`) label steps by
the numbers they mention.

Besides the `Problem` fields, `Problem.metadata` holds:

- ``config``: the `SyntheticConfig` as a dict; ``difficulty``: operations and distractors;
- ``person``, ``pronoun``, ``object``: who and what the story is about;
- ``restatements``: fact id -> the fact's sentence with the person named (no pronoun), used
  by `dca.problems.gold` to restate facts in a chain of thought;
- ``solution_templates``: operation id -> a sentence with an ``{equation}`` slot, e.g.
  ``"Ava now has {equation} apples."``.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from ..records import Fact, Operation, Problem

# (name, subject pronoun, possessive pronoun)
PEOPLE = (
    ("Ava", "she", "her"), ("Ben", "he", "his"), ("Chloe", "she", "her"),
    ("Diego", "he", "his"), ("Emma", "she", "her"), ("Farid", "he", "his"),
    ("Grace", "she", "her"), ("Hiro", "he", "his"), ("Isla", "she", "her"),
    ("Jamal", "he", "his"), ("Lena", "she", "her"), ("Omar", "he", "his"),
    ("Priya", "she", "her"), ("Sam", "he", "his"), ("Tara", "she", "her"),
    ("Yusuf", "he", "his"),
)  # fmt: skip
OBJECTS = (
    "apples", "marbles", "stickers", "pencils", "cookies", "shells",
    "stamps", "books", "cards", "balloons", "pears", "buttons",
)  # fmt: skip
CONTAINERS = (("bags", "bag"), ("boxes", "box"), ("packs", "pack"), ("jars", "jar"))

# Phrasings of one change to the person's count; {S} is the subject (name or pronoun),
# {poss} the possessive pronoun, {n} the number, {obj} the object kind.
PHRASINGS = {
    "+": (
        "{S} buys {n} more {obj}.",
        "{S} is given {n} {obj}.",
        "{S} finds {n} more {obj}.",
    ),
    "-": (
        "{S} gives {n} {obj} to a friend.",
        "{S} loses {n} {obj}.",
        "{S} sells {n} of the {obj}.",
    ),
    "*": (
        "{S} ends up with {n} times as many {obj} as before.",
        "{S} collects more {obj} until {poss} collection is {n} times as large.",
        "{S} gets enough {obj} to multiply {poss} collection by {n}.",
    ),
    "/": (
        "{S} splits the {obj} into {n} equal piles and keeps one pile.",
        "{S} divides the {obj} equally into {n} groups and keeps only one group.",
        "{S} keeps one of {n} equal parts of the {obj} and gives the rest away.",
    ),
}
COMPOUND_PHRASINGS = {
    "+": "{S} buys {b} {containers} of {obj}.",
    "-": "{S} gives away {b} {containers} of {obj}.",
}
QUESTIONS = (
    "How many {obj} does {name} have now?",
    "How many {obj} does {name} have at the end?",
    "How many {obj} does {name} have in the end?",
)

_MAX_VALUE_ON_PATH = 600  # keeps products small enough for a small model
_MAX_TRIES = 50  # retries to avoid repeated numbers; the last try is kept regardless


@dataclass
class SyntheticConfig:
    """Settings of the synthetic problem generator."""

    min_operations: int = 1
    """Fewest operations in a problem's computation graph."""
    max_operations: int = 5
    """Most operations in a problem's computation graph."""
    distractors: tuple[int, int] = (0, 2)
    """Inclusive range of the number of distractor sentences."""
    max_value: int = 50
    """Largest number a given fact (start count, amount added or removed) states."""
    seed: int = 0
    """Seed; the same seed gives the same problems."""

    def __post_init__(self) -> None:
        self.distractors = tuple(self.distractors)
        if not 1 <= self.min_operations <= self.max_operations <= 5:
            raise ValueError(
                "SyntheticConfig needs 1 <= min_operations <= max_operations <= 5, got "
                f"min_operations={self.min_operations}, max_operations={self.max_operations}"
            )
        if len(self.distractors) != 2 or not 0 <= self.distractors[0] <= self.distractors[1] <= 4:
            raise ValueError(
                "SyntheticConfig.distractors must be an inclusive range (low, high) with "
                f"0 <= low <= high <= 4, got {self.distractors!r}"
            )
        if self.max_value < 10:
            raise ValueError(
                f"SyntheticConfig.max_value must be at least 10, got {self.max_value}"
            )


def generate_problems(n: int, config: SyntheticConfig) -> list[Problem]:
    """`n` problems with ids ``synthetic-s{seed}-{i:05d}``.

    Problem ``i`` depends only on the seed and ``i``, so a shorter list is a prefix of a
    longer one.
    """
    if n < 0:
        raise ValueError(f"generate_problems needs n >= 0, got {n}")
    return [_generate_one(i, config) for i in range(n)]


def _generate_one(index: int, config: SyntheticConfig) -> Problem:
    rng = random.Random(f"synthetic-{config.seed}-{index}")
    # Drawn once, outside the retries, so that retrying does not favour small problems.
    n_operations = rng.randint(config.min_operations, config.max_operations)
    n_distractors = rng.randint(*config.distractors)
    for _ in range(_MAX_TRIES):
        story = _Story(rng, config, n_operations, n_distractors)
        if not story.has_collisions():
            break
    return story.to_problem(f"synthetic-s{config.seed}-{index:05d}", config)


class _Story:
    """One attempt at a problem: draws the graph, then renders its sentences."""

    def __init__(
        self, rng: random.Random, config: SyntheticConfig, n_operations: int, n_distractors: int
    ) -> None:
        self.rng = rng
        self.name, self.pronoun, self.poss = rng.choice(PEOPLE)
        self.object, *other_objects = rng.sample(OBJECTS, 3)
        self.facts: list[Fact] = []
        self.restatements: dict[str, str] = {}
        self.operations: list[Operation] = []
        self.templates: dict[str, str] = {}
        # The question's sentences in order, as (fact, template with an {S} subject slot).
        self.sentences: list[tuple[Fact, str]] = []
        self.containers = list(CONTAINERS)
        rng.shuffle(self.containers)  # each compound change takes its own kind of container

        start = self._add_fact(rng.randint(2, config.max_value), "{S} has {n} {obj}.")
        state_id, state = start.id, int(start.value)
        while len(self.operations) < n_operations:
            if n_operations - len(self.operations) >= 2 and rng.random() < 0.3:
                state_id, state = self._compound_change(state_id, state)
            else:
                state_id, state = self._simple_change(state_id, state, config.max_value)

        others = [p[0] for p in PEOPLE if p[0] != self.name]
        self.distractors = [
            self._distractor(i, rng.choice(others), other_objects, config.max_value)
            for i in range(n_distractors)
        ]
        for d in self.distractors:
            # After the opening sentence, anywhere before the question, except inside a
            # compound change (between "buys 3 bags" and "Each bag holds").
            slots = [
                i for i in range(1, len(self.sentences) + 1)
                if i == len(self.sentences) or not self.sentences[i][1].startswith("Each ")
            ]
            self.sentences.insert(rng.choice(slots), (d, d.text))
        self.question = rng.choice(QUESTIONS).format(obj=self.object, name=self.name)
        self._render_subjects()

    def _add_fact(self, value: int, template: str, **slots: object) -> Fact:
        """A needed fact about the person; its text is rendered by `_render_subjects`."""
        filled = template.format(S="{S}", n=value, obj=self.object, poss=self.poss, **slots)
        fact = Fact(
            id=f"f{len(self.facts)}",
            text=filled,
            value=float(value),
            entity=f"{self.name}'s {self.object}",
        )
        self.facts.append(fact)
        self.restatements[fact.id] = filled.format(S=self.name)
        self.sentences.append((fact, filled))
        return fact

    def _add_operation(self, op: str, inputs: list[str], value: int, description: str) -> str:
        op_id = f"v{len(self.operations)}"
        self.operations.append(
            Operation(id=op_id, op=op, inputs=inputs, value=float(value), description=description)
        )
        return op_id

    def _simple_change(self, state_id: str, state: int, max_value: int) -> tuple[str, int]:
        """One sentence that changes the count by a stated amount."""
        rng = self.rng
        divisors = [d for d in range(2, 10) if state % d == 0 and state // d >= 2]
        choices = ["+"] + ["-"] * (state >= 4) + ["*"] * (state * 2 <= _MAX_VALUE_ON_PATH)
        op = rng.choice(choices + ["/"] * bool(divisors))
        if op == "+":
            amount = rng.randint(1, max_value)
            value = state + amount
        elif op == "-":
            amount = rng.randint(1, min(state - 2, max_value))  # at least 2 are left
            value = state - amount
        elif op == "*":
            amount = rng.randint(2, min(5, _MAX_VALUE_ON_PATH // state))
            value = state * amount
        else:
            amount = rng.choice(divisors)
            value = state // amount
        fact = self._add_fact(amount, rng.choice(PHRASINGS[op]))
        op_id = self._add_operation(
            op, [state_id, fact.id], value, f"the {self.object} {self.name} has now"
        )
        self.templates[op_id] = f"{self.name} now has {{equation}} {self.object}."
        return op_id, value

    def _compound_change(self, state_id: str, state: int) -> tuple[str, int]:
        """Two sentences (a count of containers, then how many each holds): a product
        node, then an addition or subtraction that uses it."""
        rng = self.rng
        containers, container = self.containers.pop()
        per = rng.randint(2, 12)
        most_removable = min(6, (state - 2) // per)  # at least 2 are left
        op = "-" if most_removable >= 2 and rng.random() < 0.5 else "+"
        count = rng.randint(2, most_removable if op == "-" else 6)
        count_fact = self._add_fact(
            count, COMPOUND_PHRASINGS[op], b=count, containers=containers
        )
        per_fact = self._add_fact(per, f"Each {container} holds {{n}} {{obj}}.")
        per_fact.entity = f"{self.object} per {container}"
        product_id = self._add_operation(
            "*", [count_fact.id, per_fact.id], count * per,
            f"the {self.object} in the {count} {containers}",
        )
        self.templates[product_id] = f"The {count} {containers} hold {{equation}} {self.object}."
        value = state + count * per if op == "+" else state - count * per
        op_id = self._add_operation(
            op, [state_id, product_id], value, f"the {self.object} {self.name} has now"
        )
        self.templates[op_id] = f"{self.name} now has {{equation}} {self.object}."
        return op_id, value

    def _distractor(self, index: int, other: str, other_objects: list[str], max_value: int) -> Fact:
        n = self.rng.randint(2, max_value)
        kind = self.rng.randrange(3)
        if kind == 0:  # another person, same object
            text, entity = f"{other} has {n} {self.object}.", f"{other}'s {self.object}"
        elif kind == 1:  # another person, another object
            obj = self.rng.choice(other_objects)
            text, entity = f"{other} buys {n} {obj}.", f"{other}'s {obj}"
        else:  # the same person, another object
            obj = self.rng.choice(other_objects)
            text, entity = f"{self.name} also has {n} {obj}.", f"{self.name}'s {obj}"
        return Fact(id=f"d{index}", text=text, value=float(n), entity=entity)

    def _render_subjects(self) -> None:
        """Fill each needed fact's subject: a pronoun only right after another needed
        fact (never after a distractor, which may be about someone else)."""
        previous_needed = False
        for fact, template in self.sentences:
            is_needed = not fact.id.startswith("d")
            if is_needed:
                use_pronoun = previous_needed and self.rng.random() < 0.6
                fact.text = template.format(
                    S=self.pronoun.capitalize() if use_pronoun else self.name
                )
            previous_needed = is_needed

    def has_collisions(self) -> bool:
        """Whether a stated number repeats, or equals an intermediate value."""
        stated = [f.value for f in self.facts + self.distractors]
        computed = {o.value for o in self.operations}
        return len(set(stated)) < len(stated) or bool(computed & set(stated))

    def to_problem(self, problem_id: str, config: SyntheticConfig) -> Problem:
        question = " ".join(fact.text for fact, _ in self.sentences) + " " + self.question
        return Problem(
            id=problem_id,
            source="synthetic",
            question=question,
            answer=str(int(self.operations[-1].value)),
            facts=self.facts,
            distractors=self.distractors,
            operations=self.operations,
            intermediate_values=[o.value for o in self.operations],
            domain="arithmetic",
            metadata={
                "config": dataclasses.asdict(config),
                "difficulty": {
                    "operations": len(self.operations),
                    "distractors": len(self.distractors),
                },
                "person": self.name,
                "pronoun": self.pronoun,
                "object": self.object,
                "restatements": self.restatements,
                "solution_templates": self.templates,
            },
        )
