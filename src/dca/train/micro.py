"""The micro model: a small Llama with the micro vocabulary, and its cached start checkpoint.

``model: micro`` (in `dca train`, `dca eval`, `dca rollout`, an experiment's ``start.model``)
names the warm-started micro model: `MicroSettings` builds a randomly initialised Llama
(hidden 128, 4 layers: 1.09 M parameters, 38 K of them the embedding), then
`dca.train.warmstart` fine-tunes it on gold CoTs padded by kind (`MICRO_WARMSTART`). Both
are cached (``<cache dir>/micro/base-<hash>``, ``<cache dir>/warmstart/<hash>``), so only the
first use trains. The checkpoint's ``config.json`` carries ``dca_world: micro``, by which
`check_micro_checkpoint` knows a micro checkpoint and refuses one whose tokenizer is not the
shipped micro tokenizer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..files import cache_dir
from ..micro.vocabulary import TOKENIZER_DIR, WORLD, load_micro_tokenizer
from ..model import MODEL_NAMES, save_checkpoint
from .config import PaddingSettings, SyntheticSettings, WarmstartSettings

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "micro" / "start"
"""The shipped warm-started micro checkpoint (`ship` rebuilds it)."""

#: The micro world's problems: 1-2 operations, 1-2 distractors, numbers up to 20.
MICRO_PROBLEMS = {"min_operations": 1, "max_operations": 2, "distractors": (1, 2), "max_value": 20}

#: The warm start that `micro` names. Measured in docs/micro-world.md (start/start.json).
MICRO_WARMSTART = WarmstartSettings(
    steps=1000, batch_size=32, learning_rate=3e-3,
    padding=PaddingSettings(restatement=0.5, off_path=0.5, check=0.5),
    problems=SyntheticSettings(count=1000 * 32, seed=1000, **MICRO_PROBLEMS),
)  # fmt: skip


class MicroSettings(BaseModel):
    """The architecture of a micro model (a Llama with the micro vocabulary)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, ge=16)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int | None = Field(None, ge=16, description="Default: 4 x hidden_size.")
    seed: int = Field(0, description="Seed of the random initialisation.")
    tokenizer: str = Field(WORLD, description="Always 'micro': the micro model reads the task's own vocabulary (dca.micro.vocabulary).")

    @field_validator("tokenizer")
    @classmethod
    def _own_tokenizer(cls, value: str) -> str:
        if value != WORLD:
            raise ValueError(
                f"the micro model uses the micro tokenizer, not {value!r} (a hub model's tokenizer would make it a large-vocabulary "
                "model); drop micro.tokenizer, or start from that hub model with start.model"
            )
        return value


def build_micro_model(out_dir: str | Path, settings: MicroSettings) -> Path:
    """Save a randomly initialised micro Llama with the micro tokenizer to `out_dir` (whole or not at all)."""
    import torch  # heavy: torch and transformers load only when the model is built
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = load_micro_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size or 4 * settings.hidden_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.dca_world = WORLD
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return save_checkpoint(model, tokenizer, Path(out_dir))


def micro_base(settings: MicroSettings) -> Path:
    """The cached random micro model of `settings`."""
    digest = hashlib.sha256(json.dumps(settings.model_dump(exclude={"tokenizer"}), sort_keys=True).encode()).hexdigest()[:16]
    target = cache_dir() / "micro" / f"base-{digest}"
    if not (target / "config.json").exists():
        build_micro_model(target, settings)
    return target


def recipe_hash(settings: MicroSettings, warmstart: WarmstartSettings) -> str:
    """A hash of everything that makes a micro start: architecture, warm start, vocabulary."""
    payload = {
        "micro": settings.model_dump(exclude={"tokenizer"}),
        "warmstart": warmstart.model_dump(mode="json"),
        "tokenizer": hashlib.sha256((TOKENIZER_DIR / "tokenizer.json").read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def shipped_start() -> Path | None:
    """The shipped start checkpoint when it was built by today's default recipe, else None."""
    manifest = SHIPPED_DIR / "recipe.json"
    if not manifest.is_file() or not (SHIPPED_DIR / "model.safetensors").is_file():
        return None
    if json.loads(manifest.read_text(encoding="utf-8")).get("recipe") != recipe_hash(MicroSettings(), MICRO_WARMSTART):
        return None
    return SHIPPED_DIR


def micro_start(
    settings: MicroSettings | None = None, warmstart: WarmstartSettings | None = None, *, log: Callable[[str], None] = print
) -> Path:
    """The warm-started micro checkpoint: the shipped one for the default recipe, else built
    (base and warm start cached) on first use."""
    from .warmstart import warmstart as run_warmstart  # start-up: the warm-start stack (SFT, LLM client) loads only to build one

    settings, warmstart = settings or MicroSettings(), warmstart or MICRO_WARMSTART
    if settings == MicroSettings() and warmstart == MICRO_WARMSTART and shipped_start() is not None:
        return SHIPPED_DIR
    return run_warmstart(str(micro_base(settings)), warmstart, log=log)


WEIGHT_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def ship(log: Callable[[str], None] = print) -> Path:
    """Rebuild the shipped start checkpoint from the default recipe in a fresh cache and
    install it into the package (`install_start`)."""
    from .warmstart import warmstart as run_warmstart  # start-up: the warm-start stack (SFT, LLM client) loads only to build one

    with tempfile.TemporaryDirectory(prefix="micro-ship-") as scratch:
        previous = os.environ.get("DCA_CACHE_DIR")
        os.environ["DCA_CACHE_DIR"] = scratch
        try:
            built = run_warmstart(str(micro_base(MicroSettings())), MICRO_WARMSTART, log=log)
            return install_start(built)
        finally:
            if previous is None:
                del os.environ["DCA_CACHE_DIR"]
            else:
                os.environ["DCA_CACHE_DIR"] = previous


def install_start(built: Path) -> Path:
    """Copy a checkpoint built by the default recipe into the package, with the shipped
    tokenizer files, and write ``recipe.json`` (the recipe's hash, the weights' sha256)."""
    SHIPPED_DIR.mkdir(exist_ok=True)
    for name in WEIGHT_FILES:
        if Path(built).resolve() != SHIPPED_DIR.resolve():
            shutil.copyfile(Path(built) / name, SHIPPED_DIR / name)
    for name in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / name, SHIPPED_DIR / name)
    manifest = {
        "recipe": recipe_hash(MicroSettings(), MICRO_WARMSTART),
        "model.safetensors": hashlib.sha256((SHIPPED_DIR / "model.safetensors").read_bytes()).hexdigest(),
        "rebuild": "PYTHONPATH=src python -m dca.train.micro --ship",
    }
    (SHIPPED_DIR / "recipe.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return SHIPPED_DIR


# The 'micro' model name resolves through this module (dca.model.MODEL_NAMES): the shipped start
# where it matches today's recipe, else the recipe built on first use and cached.
MODEL_NAMES[WORLD] = lambda: micro_start()


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild the shipped micro start checkpoint from its recipe.")
    parser.add_argument("--ship", action="store_true", help="train the default recipe in a fresh cache and copy it into the package")
    parser.add_argument("--install", metavar="DIR", help="install a checkpoint that the default recipe built (e.g. its cached warm start) without training")
    args = parser.parse_args()
    if args.ship:
        print(f"shipped: {ship()}")
    elif args.install:
        print(f"shipped: {install_start(Path(args.install))}")
    else:
        print(f"recipe {recipe_hash(MicroSettings(), MICRO_WARMSTART)}; shipped checkpoint: {shipped_start() or 'none (or stale)'}")


if __name__ == "__main__":
    main()

