"""The incentive audit: each registered credit policy's drift in padding after N GRPO updates.

    PYTHONPATH=src python benchmarks/credit_incentives.py --updates 100 --seeds 6 --caps 2 3

A simulated policy (a softmax over pad / useful step / conclude decisions; see
`dca.experiment.incentives`) is trained with each registered policy's real credit function
(`dca.credit.POLICIES`), the uncapped signed rule of phase 1, other caps of signed, and the
reviewer-free length-penalty reward; in two scenarios: padding free (the reward does not depend
on it) and padding costly (a padding step derails the solution with probability 0.2). Prints,
per scenario, each arm's drift in padding rate, trailing-padding rate, CoT tokens and accuracy
(mean ± SE over seeds; the same seeds and draws for every arm). Figures: docs/credit-policies.md.
"""

from __future__ import annotations

import argparse
import time

from dca.experiment.incentives import ARMS, SCENARIOS, audit, drift_table, with_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100, help="GRPO updates per run")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per arm")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--caps", type=float, nargs="*", default=[2.0, 3.0, 5.0], help="other max_weight values of signed to audit")
    args = parser.parse_args()
    arms = list(ARMS.values())
    arms += [with_settings(ARMS["signed"], max_weight=cap) for cap in args.caps]
    arms.append(with_settings(ARMS["signed (uncapped, phase 1)"], negative="uniform"))
    for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
        started = time.perf_counter()
        results = audit(arms, SCENARIOS[name], updates=args.updates, seeds=range(args.seeds))
        print(f"\n## {name}: drift after {args.updates} updates (mean ± SE over {args.seeds} seeds; {time.perf_counter() - started:.0f} s)\n")
        print(drift_table(results), flush=True)


if __name__ == "__main__":
    main()
