"""Token -> character alignment: which characters of a completion each token spells.

`token_char_spans` maps each completion token to its half-open character span in the decoded
completion, so that credit (`dca.credit.policies`) can give each token the label of the unit
it belongs to. Exact for byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM2), including
characters split across tokens: every token that holds a byte of a character spans that
character, so the tokens of an emoji or a CJK character all belong to the unit of that
character. Other tokenizers fall back to prefix decoding.

Torch-free: plain lists in, plain lists out.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["token_char_spans"]


# ---------------------------------------------------------------------------------------------
# Token -> character alignment


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte 0..255 as a printable unicode character.

    Printable Latin-1 bytes stand for themselves; the others are shifted to ``256 + n``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


#: Inverse of the byte-level alphabet: token character -> byte.
_BYTE_OF_CHAR = {char: byte for byte, char in _bytes_to_unicode().items()}


def _is_byte_level(tokenizer: Any) -> bool:
    """Whether `tokenizer` is a byte-level BPE whose token strings spell bytes (GPT-2 style)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return False
    from tokenizers.decoders import ByteLevel  # heavy: tokenizers (installed with transformers) loads only for a real tokenizer

    return isinstance(decoder, ByteLevel)


def _byte_level_token_bytes(tokenizer: Any, token_ids: Sequence[int]) -> list[bytes | None]:
    """The exact bytes each token stands for; None for ids the tokenizer does not know.

    Vocabulary tokens are spelled in the byte-level alphabet; added tokens (special or not)
    are stored as their literal text, so their bytes are that text's UTF-8.
    """
    added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    pieces = tokenizer.convert_ids_to_tokens(list(token_ids))
    result: list[bytes | None] = []
    for token_id, piece in zip(token_ids, pieces):
        if token_id in added:
            result.append(added[token_id].encode("utf-8"))
        elif piece is None or any(c not in _BYTE_OF_CHAR for c in piece):
            result.append(None)
        else:
            result.append(bytes(_BYTE_OF_CHAR[c] for c in piece))
    return result


def _byte_level_spans(tokenizer: Any, token_ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """`token_char_spans` for byte-level tokenizers, in O(len(text) + len(token_ids))."""
    # char_start[b]: the character holding byte b (a token starting inside a character spans
    # it: the token helps spell it); char_end[b]: the character offset a token ending just
    # before byte b reaches (the next character when b is inside one).
    encoded = bytearray()
    char_start: list[int] = []
    char_end: list[int] = []
    for index, char in enumerate(text):
        char_bytes = char.encode("utf-8", "surrogatepass")
        encoded += char_bytes
        char_start += [index] * len(char_bytes)
        char_end += [index] + [index + 1] * (len(char_bytes) - 1)
    char_start.append(len(text))
    char_end.append(len(text))

    end = len(text)
    spans = []
    position = 0  # byte offset in `encoded` where the next token must match
    for token_bytes in _byte_level_token_bytes(tokenizer, token_ids):
        if token_bytes and encoded.startswith(token_bytes, position):
            next_position = position + len(token_bytes)
            spans.append((char_start[position], char_end[next_position]))
            position = next_position
        else:
            # Special tokens (text is decoded without them), unknown ids, and bytes that the
            # text does not hold at this point (e.g. a character cut off by the length limit,
            # decoded as U+FFFD): no characters; later tokens still match from `position`.
            spans.append((end, end))
    return spans


def _prefix_decoding_spans(
    tokenizer: Any, token_ids: Sequence[int], text: str
) -> list[tuple[int, int]]:
    """`token_char_spans` for any tokenizer with `decode`: O(n^2) prefix decoding.

    Token i ends where the decoded prefix ``ids[:i+1]`` stops agreeing with `text`; spans are
    kept monotone, so a token whose text was dropped or altered gets a zero-width span.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    end = len(text)
    spans = []
    previous_end = 0
    for i, token_id in enumerate(token_ids):
        if token_id in special:
            spans.append((end, end))
            continue
        prefix = tokenizer.decode(list(token_ids[: i + 1]), skip_special_tokens=True)
        agreed = 0
        for a, b in zip(prefix, text):
            if a != b:
                break
            agreed += 1
        token_end = max(previous_end, agreed)
        if token_end == previous_end < end and prefix[agreed : agreed + 1] == "\ufffd":
            # Part of a character the next tokens complete: the token helps spell it.
            spans.append((previous_end, previous_end + 1))
            continue
        spans.append((previous_end, token_end))
        previous_end = token_end
    return spans


def token_char_spans(tokenizer: Any, token_ids: list[int], text: str) -> list[tuple[int, int]]:
    """Each token's half-open character span in `text`, the decoded completion.

    For byte-level BPE tokenizers the spans are exact: each token's bytes come from its
    byte-level spelling, and byte offsets map to character offsets. A character split over
    several tokens (emoji, CJK) is in the span of every token holding one of its bytes, so
    consecutive spans overlap by that character and no token that helps spell a character
    is left with an empty span. Tokens whose bytes are not in `text` at that point, such as
    EOS and other special tokens, get a zero-width span at the end of `text`. Other
    tokenizers fall back to incremental prefix decoding (a token whose prefix decodes to an
    incomplete character spans that character).

    Spans of the tokens that are found in `text` are in order, each starting at or before
    the previous one's end; when ``text == tokenizer.decode(token_ids,
    skip_special_tokens=True)`` they cover `text`.
    """
    if _is_byte_level(tokenizer):
        return _byte_level_spans(tokenizer, token_ids, text)
    return _prefix_decoding_spans(tokenizer, token_ids, text)
