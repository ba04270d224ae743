"""The torch-free core stays torch-free: records, segmentation, the programmatic reviewers and
the review protocol, consensus, agreement, credit and editing import without torch, and
`dca problems` runs without loading it (each check in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
import re
import subprocess
import sys

import pytest

TORCH_FREE = [
    "dca.records",
    "dca.segment",
    "dca.review.protocol",
    "dca.domains.oracles.arithmetic",
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
    "dca.domains.oracles.logic",
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


def test_layers_contract_holds():
    """The one-way layers of pyproject.toml's import-linter contract (README: "The layout"),
    checked on every import, those inside functions included, with no ignored imports."""
    root = Path(__file__).resolve().parents[1]
    assert "ignore_imports" not in (root / "pyproject.toml").read_text().split("[tool.importlinter]", 1)[1]
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_import_cycle_between_modules():
    """No module reaches itself through imports (any import, at any depth of a function)."""
    import grimp

    graph = grimp.build_graph("dca", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} -> {imported}")
    assert cycles == []


def _function_imports(tree):
    """(function, its imports in line order) for each function holding imports of its own."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        inner = {id(n) for f in ast.walk(function) if f is not function and isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
        imports = sorted(
            (n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in inner), key=lambda n: n.lineno
        )
        if imports:
            found.append((function, imports))
    return found


def test_every_import_inside_a_function_says_why():
    """An import inside a function is there for the torch-free core or for start-up time
    (docs/layout.md): the first one of each function carries ``# heavy: ...`` or
    ``# start-up: ...`` on its line, saying what loads late and when."""
    reason = re.compile(r"#\s*(heavy|start-up): \S")
    src = Path(__file__).resolve().parents[1] / "src" / "dca"
    silent = []
    for path in sorted(src.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for function, imports in _function_imports(ast.parse("\n".join(lines))):
            first = imports[0]
            if not any(reason.search(line) for line in lines[first.lineno - 1 : first.end_lineno]):
                silent.append(f"{path.relative_to(src.parent)}:{first.lineno} ({function.name})")
    assert silent == []
