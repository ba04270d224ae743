"""`dca train` around TRL: the ``trl:`` passthrough from the run YAML, TensorBoard metrics,
resuming after ``kill -9``, and two processes under ``accelerate launch`` (CPU, gloo).

Every run is a real `dca train` in a subprocess on the tiny random model; the refusals run
in this process (`conftest.dca_in_process`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import dca, dca_in_process, one_line_error
from dca.train.resume import DCA_STATE_FILE, last_checkpoint, read_json_lines

HERE = Path(__file__).resolve().parent


def write_config(tmp_path: Path, model: Path, *, steps: int = 2, trl: dict | None = None, name: str = "run.yaml") -> Path:
    config = {
        "model": str(model),
        "credit": {"policy": "conserve"},
        "problems": {"synthetic": {"count": 8, "seed": 1}},
        "grpo": {"steps": steps, "num_generations": 2, "max_completion_length": 12, "learning_rate": 1e-4, "temperature": 1.0},
        "trl": trl or {},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def records(run: Path) -> dict[str, list[dict]]:
    return {name: read_json_lines(run / f"{name}.jsonl") for name in ("traces", "reviews", "credits", "metrics")}


def assert_each_record_once(run: Path, steps: int, per_step: int) -> dict[str, list[dict]]:
    r = records(run)
    ids = [t["id"] for t in r["traces"]]
    assert len(ids) == len(set(ids)) == steps * per_step
    assert Counter(t["step"] for t in r["traces"]) == {s: per_step for s in range(steps)}
    for name in ("reviews", "credits"):
        assert sorted(x["trace_id"] for x in r[name]) == sorted(ids), name
    assert [m["step"] for m in r["metrics"]] == list(range(1, steps + 1))
    return r


# ---------------------------------------------------------------------------------------------
# trl: passthrough


def test_bad_trl_settings_are_one_line_exit_2_and_make_no_run(tmp_path, tiny_model_dir):
    # (Each check of check_trl_options has its unit test in test_grpo_config.py.)
    cases = [
        ({"sav_steps": 2}, ["trl.sav_steps", "not a trl.GRPOConfig field", "save_steps"]),
        ({"importance_sampling_level": "sequence"}, ["trl.importance_sampling_level", "refused"]),
    ]
    for i, (trl, words) in enumerate(cases):
        out = tmp_path / f"r{i}"
        one_line_error(dca_in_process("train", "--config", str(write_config(tmp_path, tiny_model_dir, trl=trl)), "--out", str(out)), *words)
        assert not out.exists()
    # Values TRL itself refuses (GRPOConfig.__post_init__) are one line too, before the run directory.
    out = tmp_path / "r-post-init"
    config = write_config(tmp_path, tiny_model_dir, trl={"generation_batch_size": 3, "steps_per_generation": 2})
    one_line_error(dca_in_process("train", "--config", str(config), "--out", str(out)), "trl settings")
    assert not out.exists()


def test_report_to_tensorboard_receives_dca_metrics(tmp_path, tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    trl = {"report_to": "tensorboard", "gradient_accumulation_steps": 2, "lr_scheduler_type": "constant"}
    result = dca("train", "--config", str(write_config(tmp_path, tiny_model_dir, trl=trl)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["trl"] == trl  # the run holds its exact config
    # gradient_accumulation_steps reached TRL: one generation of 2 x (1 prompt x 2 completions) per step.
    assert_each_record_once(out, 2, 4)

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    dca_tags = {t for t in tags if t.startswith("train/dca/")}
    assert {"train/dca/fraction_credited", "train/dca/traces", "train/dca/reviews_failed", "train/dca/review_seconds"} <= dca_tags
    metrics = read_json_lines(out / "metrics.jsonl")
    for tag in dca_tags:
        points = events.Scalars(tag)
        assert [p.step for p in points] == [1, 2], tag
        expected = [m[tag.removeprefix("train/")] for m in metrics]
        assert [p.value for p in points] == pytest.approx(expected, rel=1e-5), tag
    assert [p.value for p in events.Scalars("train/dca/traces")] == [4, 4]
    assert [p.value for p in events.Scalars("train/learning_rate")] == pytest.approx([1e-4, 1e-4])  # the trl: scheduler


# ---------------------------------------------------------------------------------------------
# Resume


def wait_then_kill(process: subprocess.Popen, run: Path, timeout: float = 300) -> int:
    """kill -9 the run once it has a complete checkpoint and records of a step after it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = last_checkpoint(run / "trainer")
        if found is not None:
            steps = [t.get("step", -1) for t in read_json_lines(run / "traces.jsonl")]
            if steps and max(steps) >= found[1]:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return found[1]
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {process.stderr.read()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no checkpoint appeared")


def test_resume_after_kill_9_holds_every_record_once(tmp_path, tiny_model_dir):
    steps, per_step = 4, 2
    trl = {"save_steps": 2}
    config = write_config(tmp_path, tiny_model_dir, steps=steps, trl=trl)

    reference = tmp_path / "uninterrupted"
    result = dca("train", "--config", str(config), "--out", str(reference))
    assert result.returncode == 0, result.stderr
    expected = assert_each_record_once(reference, steps, per_step)

    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "dca.cli", "train", "--config", str(config), "--out", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoint_step = wait_then_kill(process, run)
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # killed: no chance to say otherwise
    before = records(run)
    replayed = [t for t in before["traces"] if t["step"] >= checkpoint_step]
    assert replayed, "the kill came after records of steps beyond the checkpoint were written"

    # A resume with a config, or with --overwrite, is refused; then the real resume.
    one_line_error(dca_in_process("train", "--resume", "--config", str(config), "--out", str(run)), "--config")
    one_line_error(dca_in_process("train", "--resume", "--overwrite", "--out", str(run)), "--overwrite")
    result = dca("train", "--resume", "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} from step " in result.stdout

    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished"
    (resumed,) = status["resumed"]
    assert resumed["step"] >= checkpoint_step and resumed["checkpoint"].endswith(f"checkpoint-{resumed['step']}")
    assert (Path(resumed["checkpoint"]) / DCA_STATE_FILE).is_file()
    assert resumed["dropped"]["traces.jsonl"] >= len(replayed) > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed"][0]["step"] == resumed["step"]
    assert summary["train"]["traces"] == steps * per_step  # the summary counts the steps before the kill too

    got = assert_each_record_once(run, steps, per_step)
    # Same data order and trace ids as the uninterrupted run: the resumed trainer continues where
    # the checkpoint stopped (TRL restores the sampler; DCA its generation counter).
    assert [t["id"] for t in got["traces"]] == [t["id"] for t in expected["traces"]]
    # Steps before the checkpoint are untouched records of the killed process.
    kept = [t for t in before["traces"] if t["step"] < resumed["step"]]
    assert got["traces"][: len(kept)] == kept

    one_line_error(dca_in_process("train", "--resume", "--out", str(run)), "already finished")


def test_resume_needs_a_run_that_saves_checkpoints(tmp_path, tiny_model_dir):
    one_line_error(dca_in_process("train", "--resume", "--out", str(tmp_path / "nothing")), "no config.yaml")
    run = tmp_path / "run"
    result = dca("train", "--config", str(write_config(tmp_path, tiny_model_dir, steps=1)), "--out", str(run))
    assert result.returncode == 0, result.stderr
    status = run / "run.json"
    status.write_text(json.dumps({"status": "failed"}))  # as if it had died
    one_line_error(dca_in_process("train", "--resume", "--out", str(run)), "saves no checkpoints", "save_steps")


# ---------------------------------------------------------------------------------------------
# Two processes


def test_two_processes_with_accelerate_launch(tmp_path, tiny_model_dir):
    """`accelerate launch` with 2 processes on the CPU (gloo): each process generates and
    reviews its own completions, the main process writes each record once, and the dca/*
    metrics are aggregated over both processes."""
    steps = 2
    out = tmp_path / "run"
    config = write_config(tmp_path, tiny_model_dir, steps=steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # On a machine without GPUs, accelerate's multi-process launcher is selected with --multi_gpu;
    # the processes then run on the CPU with the gloo backend.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
               "-m", "dca.cli", "train", "--config", str(config), "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "over 2 processes" in result.stdout
    assert result.stdout.count("step 1/2") == 1  # only the main process reports

    per_step = 2 * 2  # 2 processes x 1 prompt x 2 completions
    got = assert_each_record_once(out, steps, per_step)
    by_process = Counter(t["id"].rsplit("-p", 1)[1].split("-")[0] for t in got["traces"])
    assert by_process == {"0": steps * 2, "1": steps * 2}  # each process reviewed its own completions
    for metrics in got["metrics"]:
        assert metrics["dca/traces"] == per_step  # summed over the processes
        assert metrics["dca/tokens"] == sum(
            len(c["token_advantages"]) for c in got["credits"] if c["trace_id"] in {t["id"] for t in got["traces"] if t["step"] == metrics["step"] - 1}
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["train"]["traces"] == steps * per_step
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert (out / "checkpoint" / "config.json").exists()
