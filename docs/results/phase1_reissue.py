"""Re-issue phase 1's difference statistics (issue 21) from its committed figures.json alone.

    PYTHONPATH=src python docs/results/phase1_reissue.py docs/results/phase1-cpu/figures.json

figures.json holds, per set and arm, the bootstrap figures and the SD of the two per-seed
accuracies (``accuracy_seed_sd``), but no per-seed differences. With two seeds the per-seed
accuracy difference's SD is |d1 - d2| / sqrt(2), and d1 - d2 = (a1 - a2) - (b1 - b2); when the
baseline scored the same under both seeds (its ``accuracy_seed_sd`` is 0) this is exactly the
arm's own spread, so the seed-level paired t (1 df) is exact; otherwise only its range is known
(between the difference and the sum of the two spreads) and the row says so. The irrelevant
share and CoT tokens have no per-seed figure in figures.json: their seed-level statistics need
the run directories, which were not committed. Prints markdown.
"""

from __future__ import annotations

import json
import math
import sys

from dca.experiment.stats import NON_INFERIORITY_MARGIN, holm, t_cdf, t_quantile

T975, T80, T95 = t_quantile(0.975, 1), t_quantile(0.80, 1), t_quantile(0.95, 1)


def main(path: str) -> None:
    figures = json.load(open(path, encoding="utf-8"))
    exact = []  # (set, arm, row) with an exact seed-level SD of the difference
    lines = []
    for set_name, rows in figures["sets"].items():
        base = next(r for r in rows if r["arm"] == "grpo")
        lines += [f"**{set_name}** (2 seeds; seed-level paired t, 1 df: t_0.975 = {T975:.2f})", ""]
        lines += ["| arm | Δ accuracy (points) | seed-level SD of Δ | 95 % t-interval | p | non-inferior at −3 points | per-arm MDE, bootstrap SE (as published) | per-arm MDE, paired t (1 df) |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["arm"] == "grpo":
                continue
            d = r["accuracy_diff"]["value"]
            sa, sb = r["accuracy_seed_sd"], base["accuracy_seed_sd"]
            boot_mde = r["accuracy_diff"]["mde"]
            if sb == 0 or sa == 0:
                sd = sa if sb == 0 else sb
                se = sd / math.sqrt(2)
                if se > 0:
                    p = 2 * (1 - t_cdf(abs(d) / se, 1))
                    low, high = d - T975 * se, d + T975 * se
                    ni_low = d - T95 * se
                    cells = [f"{100 * sd:.1f}", f"[{100 * low:+.1f}, {100 * high:+.1f}]", f"{p:.3f}", f"{'yes' if ni_low > -NON_INFERIORITY_MARGIN else 'no'} (lower bound {100 * ni_low:+.1f})", f"{100 * (T975 + T80) * se:.1f}"]
                    exact.append((set_name, r["arm"], p))
                else:
                    cells = ["0.0", f"[{100 * d:+.1f}, {100 * d:+.1f}] (no spread)", "–", "– (SE 0)", "0.0 (two identical seeds: meaningless)"]
                    exact.append((set_name, r["arm"], None))
            else:
                lo_sd, hi_sd = abs(sa - sb), sa + sb
                hi_half = T975 * hi_sd / math.sqrt(2)
                cells = [f"{100 * lo_sd:.1f} to {100 * hi_sd:.1f}", f"at most ±{100 * hi_half:.1f} wide: [{100 * (d - hi_half):+.1f}, {100 * (d + hi_half):+.1f}]", "needs run dirs", "needs run dirs", f"≤ {100 * (T975 + T80) * hi_sd / math.sqrt(2):.1f}"]
            lines.append(f"| {r['arm']} | {100 * d:+.1f} | " + " | ".join(cells[:4]) + f" | {100 * boot_mde:.1f} | {cells[4]} |")
        lines.append("")
    adjusted = holm([p for *_, p in exact])
    counted = sum(p is not None for *_, p in exact)
    lines += [f"Holm over the {counted} accuracy comparisons whose seed-level p is exact (of 20 accuracy and 60 comparisons in all that the published tables make):", ""]
    lines += ["| set | arm | p | Holm p |", "|---|---|---|---|"]
    for (set_name, arm, p), q in zip(exact, adjusted):
        if p is not None:
            lines.append(f"| {set_name} | {arm} | {p:.3f} | {q:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/phase1-cpu/figures.json")
