"""The torch-free core stays torch-free: records, segmentation, the programmatic reviewers and
the review protocol, consensus, agreement, credit and editing import without torch, and
`dca problems` runs without loading it (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TORCH_FREE = [
    "dca.records",
    "dca.segment",
    "dca.review.protocol",
    "dca.review.oracle",
    "dca.review.reference",
    "dca.consensus",
    "dca.agreement",
    "dca.credit",
    "dca.measures",
    "dca.review.bench",
    "dca.edit",
    "dca.train",
    "dca.train.config",
    "dca.cli",
    "dca.domains",
    "dca.domains.sources",
    "dca.problems.logic",
    "dca.review.logic_oracle",
]

HEAVY = ("torch", "transformers", "trl")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_modules_import_without_torch():
    code = "\n".join(f"import {name}" for name in TORCH_FREE)
    assert _loaded_after(code) == []


def test_heavy_names_still_reachable_from_dca_train():
    # The lazy package still hands out the trainer; asking for it is what loads torch.
    assert _loaded_after("from dca.train import DCAGRPOTrainer") == list(HEAVY)


def test_edit_record_lives_in_records_and_old_path_works():
    from dca import edit, records

    assert edit.Edit is records.Edit and edit.EditSpan is records.EditSpan


@pytest.mark.parametrize("argv", [["problems", "--synthetic", "3", "--seed", "1"], ["problems", "--domain", "logic", "--count", "3"]])
def test_dca_problems_loads_no_torch(tmp_path, argv):
    out = tmp_path / "p.jsonl"
    code = f"from dca.cli import main\nassert main({argv + ['--out', str(out)]!r}) == 0"
    assert _loaded_after(code) == []
    assert len(out.read_text().splitlines()) == 3
