"""The `dca` console command.

    dca problems   write problems of any domain (synthetic, GSM8K, logic, puzzles, ...) to JSON-lines
    dca domains    the registered problem domains and what each supports
    dca generate   novel problems with known structure from an LLM (checked, deduplicated, contamination report)
    dca rollout    sample traces from a model for a problems file
    dca warmstart  SFT a model on gold CoTs of synthetic problems (cached)
    dca train      DCA-GRPO from a YAML config
    dca demo       the whole loop in the micro world (--world smollm2: on the embedded model), on the CPU
    dca review     review a traces file with the reviewers of a YAML file (cached, fault-tolerant)
    dca consensus  merge several reviewers' reviews of each trace into a consensus
    dca agreement  agreement between reviewers (alpha, kappa, pairs) and quality against a truth
    dca bench-reviewers  score reviewers at finding the first wrong step (planted errors, ProcessBench files)
    dca show       an HTML page to read traces with their reviews, consensus and credit
    dca edit       cut what reviewers found useless out of solved traces (or the rft / random-drop baselines)
    dca sft        fine-tune a model on an edit set (TRL SFTTrainer, completion-only loss, optional LoRA)
    dca persona-train  SFT reviewer persona tokens of the policy toward external reviews (`dca.cli.train`)
    dca eval       accuracy, tokens per insight, faithfulness probes and performative-reasoning figures per problem set
    dca experiment run the arms x seeds of an experiment spec (resumable), and report them with intervals

A user mistake prints one line (``dca: error: ...``) and exits with code 2; an output the
environment refused (a full disk, a read-only filesystem) prints one line naming the path and
the cause and exits with code 3 (docs/hostile-environments.md).

One module per command group (`data`, `review`, `train`, `experiment`), shared helpers in
`common`; `python -m dca.cli` runs `main`."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..durable import ENVIRONMENT_EXIT_CODE, failure_line
from ..errors import Terminated, UserError
from ..files import check_unlocked
from ..train import micro as _micro  # noqa: F401 (registers the 'micro' model name: rollout, eval, show)
from . import data, experiment, review, train
from .common import _Parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dca", description="Deliberative Credit Assignment for chain-of-thought training.")
    parser.add_argument("--version", action="version", version=f"dca {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data.add_parsers(sub)
    review.add_parsers(sub)
    train.add_parsers(sub)
    experiment.add_parsers(sub)
    return parser


#: Commands whose --out is a directory they lock (`dca.files.lock_dir`) while they write it.
_LOCKING_COMMANDS = ("cmd_train", "cmd_sft", "cmd_eval", "cmd_demo", "cmd_experiment_run", "cmd_persona_train")


def _refuse_a_second_writer(args: argparse.Namespace) -> None:
    """A directory another process is writing is refused first, before any config is read or
    library imported (in well under a second; benchmarks/refusal_latency.py)."""
    out = getattr(args, "out", None)
    if getattr(args.func, "__name__", "") in _LOCKING_COMMANDS and out and Path(out).is_dir():
        check_unlocked(Path(out))


def _silence_third_party() -> None:
    """Once, at start: library notices that say nothing to a DCA user (math-verify's "Timeout is
    disabled", printed by its parser and its grader each: DCA turns the timeout off on purpose
    outside the main thread, see dca.problems.answer; deprecation notices of the libraries)."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _silence_third_party()
    try:
        _refuse_a_second_writer(args)
        return args.func(args)
    except UserError as e:  # an OutputFailure (full disk, read-only filesystem) exits 3
        print(f"dca: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except Exception as e:
        line = failure_line(e)  # an OS error on output that no command named: still one line
        if line is None:
            raise
        print(f"dca: error: {line}", file=sys.stderr)
        return ENVIRONMENT_EXIT_CODE
    except KeyboardInterrupt:
        print("dca: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("dca: terminated", file=sys.stderr)
        return 143
