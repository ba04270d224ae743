"""No silent loss: atomic writes, no-clobber outputs, locked output directories, a run's
status after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dca.errors import UserError
from dca.files import (
    LOCK_NAME,
    check_output_file,
    lock_dir,
    prepare_output_dir,
    publish_dir,
    read_records,
    read_yaml,
    scratch_dir,
    unlock_dir,
    write_json,
    write_text_atomic,
)
from dca.records import Trace
from dca.files import write_jsonl
from lock_holder import held_locks


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("old\n")

    def records():
        yield Trace(id="a", problem_id="p", prompt="", completion="x")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_write_text_atomic_cleans_up_when_the_rename_fails(tmp_path):
    target = tmp_path / "out"
    target.mkdir()  # renaming a file over a directory fails
    with pytest.raises(IsADirectoryError):  # not the environment refusing: a bug keeps its traceback
        write_text_atomic(target, "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_json_is_atomic_and_keeps_text_unescaped(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {"status": "finished", "note": "Größe"})
    assert path.read_text(encoding="utf-8") == '{\n  "status": "finished",\n  "note": "Größe"\n}\n'
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})  # not JSON: the old file stays, nothing partial is left
    assert json.loads(path.read_text(encoding="utf-8"))["status"] == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_a_directory_is_published_whole_or_not_at_all(tmp_path):
    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with scratch_dir(target) as scratch:
            (scratch / "half.bin").write_text("x")
            raise RuntimeError("crash while saving")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"] and (target / "old.txt").exists()
    with scratch_dir(target) as scratch:
        (scratch / "model.bin").write_text("new")
        publish_dir(scratch, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in target.iterdir()) == ["model.bin"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write to directory"):
            check_output_file(folder / "x.jsonl", overwrite=True)
        with pytest.raises(OSError):
            write_jsonl(folder / "x.jsonl", [])
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_output_files_are_never_inputs_and_never_replaced_without_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_text("x\n")
    Path("sub").mkdir()
    os.symlink("in.jsonl", "link.jsonl")
    for spelling in ("in.jsonl", "./in.jsonl", "sub/../in.jsonl", str(tmp_path / "in.jsonl"), "link.jsonl"):
        with pytest.raises(UserError, match="is also an input"):
            check_output_file(spelling, overwrite=True, inputs=["in.jsonl"])
    with pytest.raises(UserError, match="exists; pass --overwrite"):
        check_output_file("in.jsonl", overwrite=False)
    assert check_output_file("in.jsonl", overwrite=True) == Path("in.jsonl")
    assert check_output_file("new.jsonl", overwrite=False, inputs=["in.jsonl"]) == Path("new.jsonl")


def test_input_faults_name_the_path(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    (tmp_path / "l.jsonl").write_bytes(b'{"id": "\xff"}\n')
    (tmp_path / "e.jsonl").write_text("\n")
    for name, message in (("d.jsonl", "is a directory"), ("l.jsonl", "is not UTF-8 text"), ("e.jsonl", "holds no records"), ("n.jsonl", "does not exist")):
        with pytest.raises(UserError, match=f"{name} {message}"):
            read_records(tmp_path / name, Trace, what="traces")


def test_yaml_with_a_repeated_key_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: a\ngrpo:\n  steps: 1\n  steps: 2\n")
    with pytest.raises(UserError, match=r"c.yaml:4: not valid YAML: duplicate key 'steps'"):
        read_yaml(path, what="config")
    path.write_text("model: a\ngrpo: {steps: 1}\n")
    assert read_yaml(path, what="config") == {"model": "a", "grpo": {"steps": 1}}


def test_overwrite_empties_only_our_own_unlocked_directory(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="not a DCA run"):
        prepare_output_dir(foreign, overwrite=True, marker="run.json", kind="a DCA run")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "run.json").write_text("{}")
    (ours / "problems.jsonl").write_text("x")
    with pytest.raises(UserError, match="holds an input"):
        prepare_output_dir(ours, overwrite=True, marker="run.json", kind="a DCA run", inputs=[ours / "problems.jsonl"])
    out = prepare_output_dir(ours, overwrite=True, marker="run.json", kind="a DCA run")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    unlock_dir(out)
    assert list(out.iterdir()) == []


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with held_locks(run, seconds=60) as holder:
        with pytest.raises(UserError, match=rf"is being written by another process \(pid {holder.pid}\)"):
            prepare_output_dir(run, overwrite=True, marker="run.json", kind="a DCA run")
        assert (run / "run.json").exists()
    # The lock died with its holder (as after kill -9): the directory can be taken now.
    prepare_output_dir(run, overwrite=True, marker="run.json", kind="a DCA run")
    unlock_dir(run)
    lock_dir(run)  # and taken again by the same process without deadlock
    lock_dir(run)
    unlock_dir(run)


_SLOW_RUN = """
import sys, time
from dca.train import run as r
from dca.train.config import TrainConfig

def slow_train(*args, **kwargs):
    print("training", flush=True)
    time.sleep(60)

r._train = slow_train
config = TrainConfig.model_validate({"model": sys.argv[2], "problems": {"synthetic": {"count": 2}}})
r.run_training(config, sys.argv[1])
"""


def test_sigterm_marks_the_run_terminated_and_frees_the_lock(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(out), str(tiny_model_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "training"
        status = json.loads((out / "run.json").read_text())
        assert status["status"] == "running" and status["pid"] == child.pid
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "terminated" and "SIGTERM" in status["error"]
    assert not (out / LOCK_NAME).exists()
    assert not list(out.glob("*.partial"))
    started = time.time()
    prepare_output_dir(out, overwrite=True, marker="run.json", kind="a DCA run")  # ours, unlocked: replaceable
    unlock_dir(out)
    assert time.time() - started < 5
