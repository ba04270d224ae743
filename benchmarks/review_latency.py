"""How long a DCA training step waits for LLM reviewers, against one call's latency.

    .venv/bin/python benchmarks/review_latency.py

Starts a local OpenAI-compatible server (tests/review_servers.py) that answers every review
request with a valid review after a fixed delay (``--delay``, 0.5 s), declares two LLM
reviewers on it, and trains a tiny random model for 2 steps with 16 completions per step
(`dca.train.run.run_training`, the real trainer, reviews not cached). The trainer records
the wall time of each step's reviewing as ``dca/review_seconds``; the last line is

    ratio = mean review seconds per step / delay

Reviewing one completion after another, as the trainer once did, costs
``completions x reviewers`` delays per step (16 x 2 = 32 here); reviewing every completion by
every reviewer concurrently costs about one delay (each reviewer's ``concurrency`` is 16
here). Goal: <= 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the local review server shared with the tests

from review_servers import ReviewServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the server waits before each answer")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--completions", type=int, default=16, help="completions per step (2 prompts x completions/2)")
    parser.add_argument("--concurrency", type=int, default=16, help="each reviewer's concurrent calls")
    args = parser.parse_args()

    import yaml

    from dca.model import build_tiny_model
    from dca.files import read_jsonl
    from dca.records import Review
    from dca.train.config import TrainConfig
    from dca.train.run import run_training

    with tempfile.TemporaryDirectory() as tmp, ReviewServer(lambda request, attempt: "delay", delay_seconds=args.delay) as server:
        tmp = Path(tmp)
        os.environ["DCA_CACHE_DIR"] = str(tmp / "cache")  # a fresh cache: every review is a real call
        model = build_tiny_model(tmp / "tiny")
        reviewers = [
            {"name": name, "backend": "openai", "model": f"bench-{name}", "base_url": server.url + "/v1",
             "concurrency": args.concurrency, "timeout": 60, "repair_attempts": 0}
            for name in ("first", "second")
        ]  # fmt: skip
        (tmp / "reviewers.yaml").write_text(yaml.safe_dump({"reviewers": reviewers}))
        config = TrainConfig(
            model=str(model),
            reviewer=["first", "second"],
            reviewers_file=str(tmp / "reviewers.yaml"),
            problems={"synthetic": {"count": 8, "seed": 1}},
            grpo={"steps": args.steps, "num_generations": args.completions // 2, "prompts_per_step": 2,
                  "max_completion_length": 24, "learning_rate": 1e-5},
        )  # fmt: skip
        _, run = run_training(config, tmp / "run", log=lambda message: None)
        metrics = [json.loads(line) for line in run.file("metrics.jsonl").read_text().splitlines()]
        reviews = read_jsonl(run.file("reviews.jsonl"), Review)
        seconds = [m["dca/review_seconds"] for m in metrics]
        calls = len(server.requests)
        max_in_flight = server.max_in_flight
    per_step = sum(seconds) / len(seconds)
    failed = sum(r.status != "ok" for r in reviews)
    print(f"steps={len(seconds)} completions/step={args.completions} reviewers=2 delay={args.delay:g}s")
    print(f"review seconds per step: {', '.join(f'{s:.2f}' for s in seconds)} (mean {per_step:.2f})")
    print(f"calls={calls} reviews={len(reviews)} failed={failed} max_in_flight={max_in_flight}")
    print(f"ratio={per_step / args.delay:.2f}")


if __name__ == "__main__":
    main()
