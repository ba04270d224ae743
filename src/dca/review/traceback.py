"""The dependence chain of a trace's final answer: which units produced the values it rests on.

A unit *produces* a value when one of its equations ends in it (``3 * 4 = 12`` produces 12);
a unit that only mentions a number (``Ava has 12 apples.``) *states* it. The producer of a
value used by unit i is the unit before i that computes it last, preferring a computation with
an input on the solution's path (the caller's `on_path`: a correct side line such as ``Twice
Omar's balloons would be 9 * 2 = 18`` that happens to give the answer's value is no source of
it), and taken at that computation's first occurrence (a computation repeated later, a
``Check:`` line, is no new source); else the first unit before i that states it.
The chain starts at the answer unit and follows, from each unit on it, the values it uses
that the caller does not take as *settled* (given in the problem, or known to be right): their
producers join the chain. A value of the caller's `own_when_computed` (a common constant the
problem does not give, such as 30) is settled only where no earlier unit computes it: a 30 the
trace computed is followed to its computation. A value no earlier unit produces or states is
*unsourced*.

This is a mechanical reading of the text; it says nothing about which step is wrong. The
reference reviewer (`dca.review.reference`) and the mistakes benchmark's truth
(`dca.review.mistakes`) both walk it, each judging its links with what it knows (the
reference solution's values; the problem's known structure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..measures import Equation, equations, numbers
from ..records import Unit

__all__ = ["ChainLink", "UnitReading", "answer_chain", "read_units", "key"]


def key(value: float) -> float:
    """Values compare after rounding to two decimals ("$0.33" is a third of a dollar)."""
    return round(value, 2)


@dataclass
class UnitReading:
    """What one unit computes and states."""

    equations: list[Equation]
    numbers: list[float]
    """Every number it mentions (rounded with `key`)."""

    def computes(self, value: float) -> Equation | None:
        return next((e for e in self.equations if key(e.result) == value), None)


@dataclass
class ChainLink:
    """One unit on the answer's dependence chain."""

    unit: int
    value: float
    """The value of the chain this unit produces (or states)."""
    equation: Equation | None
    """The equation that computes it; None when the unit only states the value."""
    inputs: list[float] = field(default_factory=list)
    """The operands of that equation (rounded)."""
    unsourced: list[float] = field(default_factory=list)
    """Inputs that are neither settled nor produced or stated by an earlier unit."""


def read_units(units: list[Unit]) -> list[UnitReading]:
    return [UnitReading(equations(u.text), [key(v) for v in numbers(u.text)]) for u in units]


def _operands(equation: Equation) -> list[float]:
    return sorted(key(v) for v in equation.operands)


def producer(readings: list[UnitReading], value: float, before: int, on_path=lambda value: False) -> int | None:
    """The unit the value used at `before` comes from (see the module docstring)."""
    computing = [i for i in range(before) if readings[i].computes(value) is not None]
    if computing:
        connected = [i for i in computing if any(on_path(key(v)) for v in readings[i].computes(value).operands)]
        last = (connected or computing)[-1]
        same = _operands(readings[last].computes(value))
        return next(i for i in computing if _operands(readings[i].computes(value)) == same)
    return next((i for i in range(before) if value in readings[i].numbers), None)


def answer_chain(
    readings: list[UnitReading], answer_unit: int, answer: float, settled, *, on_path=lambda value: False, own_when_computed=frozenset()
) -> list[ChainLink]:
    """The links of the chain behind `answer` as stated at `answer_unit`, in text order.

    `settled(value)` says which values the walk stops at (the answer itself is followed when a
    unit computes it, even if it is settled: it may equal a given by chance, or be a value of
    the path stated too early, which the caller judges); values of `own_when_computed` are
    followed where an earlier unit computes them. `on_path(value)` says which inputs make a
    computation of a value its likely source (see `producer`). The answer unit is a link only
    when it computes the answer itself; a value computed by another equation of the same unit
    comes from that unit.
    """

    def stops_at(value: float, before: int) -> bool:
        if value in own_when_computed and any(r.computes(value) is not None for r in readings[:before]):
            return False
        return settled(value)

    links: dict[int, ChainLink] = {}
    pending = [(answer, answer_unit + 1 if readings[answer_unit].computes(answer) else answer_unit)]
    computed = any(r.computes(answer) for r in readings[: answer_unit + 1])
    while pending:
        value, used_at = pending.pop()
        if stops_at(value, used_at) and not (computed and value == answer and not links):
            continue  # a computed answer is followed even when it equals a settled value
        source = producer(readings, value, used_at, on_path)
        if source is None or source in links:
            continue
        equation = readings[source].computes(value)
        link = links[source] = ChainLink(unit=source, value=value, equation=equation)
        todo = list(equation.operands) if equation is not None else []
        seen: set[float] = set()
        while todo:  # operands, and the operands of this unit's equations that compute them
            operand = key(todo.pop(0))
            if operand in seen:
                continue
            seen.add(operand)
            link.inputs.append(operand)
            inner = readings[source].computes(operand)
            inner = inner if inner is not equation else None
            if stops_at(operand, source + 1 if inner is not None else source):
                continue
            if inner is not None:
                todo += inner.operands
            elif producer(readings, operand, source, on_path) is None:
                link.unsourced.append(operand)
            else:
                pending.append((operand, source))
    return [links[i] for i in sorted(links)]
