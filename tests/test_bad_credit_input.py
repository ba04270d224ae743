"""Bad credit, reward and reviewer settings in a run config: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest
import yaml

from dca.cli import main


@pytest.mark.parametrize(
    "change, words",
    [
        ({"credit": {"policy": "sigend"}}, ["credit.policy", "unknown credit policy", "capo"]),
        ({"credit": {"policy": "signed", "max_weight": 0.5}}, ["max_weight"]),
        ({"credit": {"policy": "oar", "oar_strength": 1.0}}, ["oar_strength"]),
        ({"credit": {"policy": "capo", "capo_penalty": -1}}, ["capo_penalty"]),
        ({"length_penalty": {"strength": 2}}, ["length_penalty.strength"]),
        ({"reviewer": "oracle-flip-1.5"}, ["oracle-flip-1.5", "oracle-flip-R with R in [0, 1]"]),
    ],
)
def test_bad_credit_settings_are_one_line_exit_2(tmp_path, capsys, change, words) -> None:
    config = {"model": "tiny", "problems": {"synthetic": {"count": 4, "seed": 1}}, **change}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["train", "--config", str(path), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()
