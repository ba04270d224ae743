"""`dca experiment`: arms x seeds from one start checkpoint, learning curves, paired intervals, a report.

- `spec`: the experiment spec (YAML) and each arm's compute budget;
- `testbed`: the shared start checkpoint (embedded, tiny or micro model + warm start) and its figures;
- `runner`: `dca experiment run` (resumable; one ordinary run directory per arm and seed);
- `measures`: per-trace figures of the evaluations (accuracy, CoT tokens, insights, irrelevant tokens);
- `stats`: two-way bootstrap over seeds and problems, minimum detectable effect;
- `report`: `dca experiment report` (report.md, self-contained report.html, plots).
"""

from .spec import ArmSpec, ExperimentSpec, load_spec, parse_spec

__all__ = ["ArmSpec", "ExperimentSpec", "load_spec", "parse_spec"]
