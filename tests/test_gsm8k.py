import json

import pytest

from dca.errors import UserError
from dca.problems.gsm8k import load_gsm8k

SOLUTION = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72"


def _write(tmp_path, *records):
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_parses_answer_reference_steps_and_intermediate_values(tmp_path):
    path = _write(tmp_path, {"question": "How many clips?", "answer": SOLUTION})
    (problem,) = load_gsm8k(str(path))
    assert (problem.id, problem.source, problem.answer) == ("gsm8k-mini-00000", "gsm8k", "72")
    assert [s.text for s in problem.reference_steps] == [
        "Natalia sold 48/2 = 24 clips in May.",
        "Natalia sold 48+24 = 72 clips altogether.",
    ]
    assert [s.expressions for s in problem.reference_steps] == [["48/2"], ["48+24"]]
    assert problem.intermediate_values == [24.0, 72.0]
    assert problem.metadata["line"] == 1


def test_strips_commas_and_reads_fraction_annotations(tmp_path):
    path = _write(tmp_path, {"question": "q", "answer": "It is <<3/4=3/4>>3/4 of <<2*600=1,200>>1,200.\n#### 1,200"})
    (problem,) = load_gsm8k(str(path))
    assert problem.answer == "1200"
    assert problem.intermediate_values == [0.75, 1200.0]


@pytest.mark.parametrize(
    "answer, message",
    [
        ("She sold 3.\n72", "####"),
        ("She sold <<3+4=7 clips.\n#### 7", "unbalanced"),
        ("She sold <<3+4>> clips.\n#### 7", "expression=number"),
        ("She sold <<3+4=seven>> clips.\n#### 7", "expression=number"),
        ("####", "no answer"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, answer, message):
    path = _write(tmp_path, {"question": "q", "answer": SOLUTION}, {"question": "q", "answer": answer})
    with pytest.raises(ValueError, match=rf"mini.jsonl:2: .*{message}"):
        load_gsm8k(str(path))


def test_loads_the_shared_splits_by_name():
    test = load_gsm8k("test")
    assert len(test) == 1319
    assert load_gsm8k("train", limit=5)[4].id == "gsm8k-train-00004"
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in test)


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 5"}) + "\n")
    monkeypatch.setenv("DCA_GSM8K_DIR", str(tmp_path))
    assert [p.answer for p in load_gsm8k("test")] == ["5"]
    with pytest.raises(UserError, match="does not exist"):
        load_gsm8k("train")
