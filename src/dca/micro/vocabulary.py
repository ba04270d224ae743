"""The micro world's tokenizer: one token per word of the synthetic task, one per digit.

The vocabulary is built from the task's own text (`dca.problems.synthetic`'s names, objects,
containers and phrasings; `dca.problems.gold`'s solution, padding and answer sentences; the
arithmetic system prompt), so it holds every word the generator can write and nothing else.
Each word, digit and punctuation mark is a token in two spellings, with and without a leading
space; a newline and a lone space are tokens of their own. Tokens are spelled in the GPT-2
byte-level alphabet with a `ByteLevel` decoder, so decoding is exact and `dca.credit` aligns
tokens to characters by its exact byte-level path.

A run of letters that the model wrote by gluing words together ("hashas", "herest") is split
into vocabulary words by the pre-tokenizer itself (`piece_pattern`: a word matches only where
the rest of the run parses as words, so the regex engine's backtracking finds a parse
whenever one exists); so any text the model writes re-encodes. There is no unknown token:
text that no vocabulary words spell makes encoding raise, so unknown text can never enter
training data as ``<unk>``; `unknown_pieces` names such pieces, and
`dca.rollout.check_micro_problems` refuses problems that have any.

Special tokens: ``<|system|>``, ``<|user|>``, ``<|assistant|>`` open a chat turn, ``<|end|>``
closes one (the end-of-sequence token), ``<pad>`` pads. The chat template writes each turn
as ``<|role|>content<|end|>``.

The tokenizer ships as files in ``dca/micro/tokenizer`` (load it with
``AutoTokenizer.from_pretrained(TOKENIZER_DIR)``); after a change to the task's text, rebuild
them with::

    PYTHONPATH=src python -m dca.micro.vocabulary

(tests/test_micro.py checks that the shipped files equal a fresh build).
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

from ..errors import UserError
from ..problems import synthetic
from ..problems.answer import ANSWER_PREFIX, SYSTEM_PROMPT

TOKENIZER_DIR = Path(__file__).parent / "tokenizer"
WORLD = "micro"
"""The model name of the micro world, and ``dca_world`` in a micro checkpoint's config.json."""
SPECIAL_TOKENS = ("<pad>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
PAD, EOS = "<pad>", "<|end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
#: How text splits into pieces (before the words are known): a possessive, a word (with an
#: optional leading space), a digit, a punctuation mark, a newline or a lone space.
PIECE = r"'s| ?[A-Za-z][A-Za-z-]*| ?[0-9]| ?[^\sA-Za-z0-9]|\s"


def piece_pattern(words: set[str]) -> str:
    """`PIECE` with glued words split: a vocabulary word or possessive (longest first) matches
    where the rest of its run of letters parses as such words; other runs stay whole (and
    unknown)."""
    glueable = (w for w in words if re.fullmatch(r"[A-Za-z][A-Za-z-]*|'s", w))
    word = "(?:" + "|".join(re.escape(w) for w in sorted(glueable, key=lambda w: (-len(w), w))) + ")"
    return rf" ?{word}(?={word}*(?![A-Za-z]))| ?[A-Za-z][A-Za-z-]*| ?[0-9]| ?[^\sA-Za-z0-9]|\s"

# Words of dca.problems.gold's sentences and of padding text not held in synthetic's tables.
_GOLD_TEXT = (
    "Let me double-check: Check: Together, and make Twice would be now has The hold also has buys "
    f"Each holds {ANSWER_PREFIX} Ava's"  # "Ava's pears": distractor entities in padding
)


def task_words() -> set[str]:
    """Every word and punctuation piece the generator, gold CoTs and prompts can write."""
    texts = [SYSTEM_PROMPT, _GOLD_TEXT, "+ - * / = . , : ? '"]
    texts += [f"{name} {subject} {subject.capitalize()} {possessive}" for name, subject, possessive in synthetic.PEOPLE]
    texts += list(synthetic.OBJECTS) + [w for pair in synthetic.CONTAINERS for w in pair]
    texts += [t for ts in synthetic.PHRASINGS.values() for t in ts] + list(synthetic.COMPOUND_PHRASINGS.values())
    texts += list(synthetic.QUESTIONS)
    words: set[str] = set()
    for text in texts:
        text = re.sub(r"\{[a-zA-Z]+\}", " ", text)
        for piece in re.findall(PIECE, text):
            piece = piece.strip(" ")
            if piece and not piece.isspace():
                words.add(piece)
    words |= set(string.digits)
    return words


def build_tokenizer():
    """The micro tokenizer as a `transformers.PreTrainedTokenizerFast`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # heavy: tokenizers and transformers load only to build a tokenizer
    from transformers import PreTrainedTokenizerFast

    # Spelled in the byte-level alphabet: ByteLevel maps ' ' to 'Ġ' and '\n' to 'Ċ'.
    pieces = sorted(task_words())
    spelled = ["Ġ", "Ċ"] + pieces + ["Ġ" + p for p in pieces]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *spelled])}
    backend = Tokenizer(models.WordLevel(vocab))  # no unk_token: unknown words raise
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(piece_pattern(set(pieces))), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, bos_token=None, unk_token=None,
        clean_up_tokenization_spaces=False, model_max_length=1024,
    )  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def load_micro_tokenizer():
    """The shipped micro tokenizer."""
    from transformers import AutoTokenizer  # heavy: transformers loads only when a tokenizer is loaded

    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def unknown_pieces(tokenizer, text: str) -> list[str]:
    """The pieces of `text` that the micro vocabulary lacks (empty when it can encode it all)."""
    vocab = tokenizer.get_vocab()  # whole pieces only: glued or unknown words count as unknown
    special = set(SPECIAL_TOKENS)
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    missing = []
    for chunk in re.split("(" + "|".join(re.escape(t) for t in special) + ")", text):
        if chunk in special or not chunk:
            continue
        missing += [piece for piece, _ in pre.pre_tokenize_str(chunk) if piece not in vocab]
    return missing


def is_micro_checkpoint(path: str | Path) -> bool:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return False
    return json.loads(config_file.read_text(encoding="utf-8")).get("dca_world") == WORLD


def check_micro_checkpoint(path: str | Path) -> None:
    """A micro checkpoint must carry the shipped micro tokenizer (its vocabulary, model and
    splitting); else one-line UserError."""
    shipped = _tokenizer_core(TOKENIZER_DIR / "tokenizer.json")
    own = _tokenizer_core(Path(path) / "tokenizer.json")
    if own != shipped:
        if own is None:
            detail = "no tokenizer.json"
        elif own["vocab"] != shipped["vocab"]:
            detail = f"{len(own['vocab'])} tokens, the micro tokenizer has {len(shipped['vocab'])}"
        else:
            detail = "the same tokens, split or matched differently"
        raise UserError(f"checkpoint {path} is a micro model but its tokenizer does not match the micro vocabulary ({detail}); rebuild it from `model: micro`")


def _tokenizer_core(tokenizer_file: Path) -> dict | None:
    if not tokenizer_file.is_file():
        return None
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    return {"vocab": model.get("vocab"), "model": {k: v for k, v in model.items() if k != "vocab"}, "pre_tokenizer": data.get("pre_tokenizer")}


def main() -> None:
    build_tokenizer().save_pretrained(str(TOKENIZER_DIR))
    print(f"wrote {TOKENIZER_DIR} ({len(build_tokenizer())} tokens)")


if __name__ == "__main__":
    main()
