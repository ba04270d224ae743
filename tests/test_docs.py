"""The README and docs/ pages as tests (issue 23, item 1): every ```yaml block validates against
the project's config models (a run config, a reviewers file or an experiment spec), the
smallest complete run config trains one step on the tiny model, every ```bash / ```sh block
parses (``bash -n``) and its cheap commands run, and every relative link resolves.

The pages are globbed (README.md, docs/**/*.md), so a page added later is tested too.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if p.is_file())
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: `dca` commands cheap enough to run from a page as printed (no model, no network).
CHEAP = {"--help", "--version", "domains", "problems"}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(*langs: str) -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1).lower() in langs:
                found.append(Block(page, text.count("\n", 0, m.start()) + 1, m.group(1).lower(), m.group(2)))
    return found


YAML_BLOCKS = blocks("yaml", "yml")
SHELL_BLOCKS = blocks("bash", "sh", "shell")


def kind_of(data: object) -> str:
    if isinstance(data, dict) and "reviewers" in data:
        return "reviewers"
    if isinstance(data, dict) and "arms" in data:
        return "experiment"
    return "run"


def validate(block: Block) -> tuple[str, object]:
    """The block's kind and its validated model; raises on an invalid block."""
    from dca.experiment.spec import parse_spec
    from dca.review.config import ReviewersFile
    from dca.train.config import TrainConfig

    data = yaml.safe_load(block.text)
    kind = kind_of(data)
    if kind == "reviewers":
        return kind, ReviewersFile.model_validate(data)
    if kind == "experiment":
        return kind, parse_spec(data, where=block.id)
    assert isinstance(data, dict), f"{block.id}: a YAML block must be a mapping (a run config, a reviewers file or an experiment spec)"
    return kind, TrainConfig.model_validate(data)


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[b.id for b in YAML_BLOCKS])
def test_yaml_block_validates(block: Block):
    validate(block)


def test_the_pages_hold_a_complete_run_config():
    assert any(kind_of(yaml.safe_load(b.text)) == "run" and "model" in yaml.safe_load(b.text) for b in YAML_BLOCKS)


def test_the_smallest_complete_run_config_trains_one_step_on_the_tiny_model(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """The smallest printed run config (fewest completions), as printed except for the model
    (the tiny one), one step, one warm-start step and few problems."""
    from dca.cli import main

    complete = [yaml.safe_load(b.text) for b in YAML_BLOCKS if kind_of(yaml.safe_load(b.text)) == "run"]
    complete = [c for c in complete if "model" in c and "problems" in c]
    assert complete, "no page prints a complete run config (model and problems)"

    def completions(c: dict) -> int:
        g = c.get("grpo", {})
        return g.get("steps", 10) * g.get("num_generations", 8) * g.get("prompts_per_step", 1)

    config = copy.deepcopy(min(complete, key=completions))
    config["model"] = str(tiny_model_dir)
    config.setdefault("grpo", {}).update(steps=1, num_generations=2, max_completion_length=8)
    if config.get("warmstart"):
        config["warmstart"].update(steps=1, batch_size=2)
        config["warmstart"].setdefault("problems", {})["count"] = 2
    for key in ("problems", "eval_problems"):
        for source in ("synthetic", "domain"):
            if isinstance(config.get(key), dict) and isinstance(config[key].get(source), dict):
                config[key][source]["count"] = 2
    monkeypatch.setenv("DCA_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_shell_block_parses(block: Block):
    result = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert result.returncode == 0, f"{block.id}: {result.stderr}"


def _commands(text: str) -> list[list[str]]:
    """The block's commands (continuation lines joined, comments and prompts dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    commands = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        if line and not line.startswith("#"):
            commands.append(shlex.split(line, comments=True))
    return commands


def _cheap(words: list[str]) -> bool:
    return bool(words) and words[0] == "dca" and len(words) > 1 and (words[1] in CHEAP or "--help" in words) and not any(c in " ".join(words) for c in "|;&><$`")


CHEAP_COMMANDS = [(b, words) for b in SHELL_BLOCKS for words in _commands(b.text) if _cheap(words)]


@pytest.mark.parametrize("block, words", CHEAP_COMMANDS, ids=[f"{b.id}:{' '.join(w[1:3])}" for b, w in CHEAP_COMMANDS])
def test_cheap_shell_commands_run(block: Block, words: list[str], tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "dca.cli", *words[1:]], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{block.id}: {' '.join(words)}\n{result.stderr[-2000:]}"


def _links(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    text_without_code = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return [(text_without_code.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(text_without_code)]


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for line, target in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL, a mail address or an anchor on the same page
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}:{line}: {target}")
    assert not broken, "links that resolve to nothing:\n" + "\n".join(broken)
