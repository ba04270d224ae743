"""Problems: synthetic word problems with known structure, GSM8K, gold chains of thought,
and the answer checker that fixes the outcome reward."""

from .answer import AnswerCheck, ExtractedAnswer, check_answer, extract_answer
from .gold import GoldCoT, GoldStep, render_gold_cot
from .gsm8k import load_gsm8k
from .synthetic import SyntheticConfig, generate_problems

__all__ = [
    "AnswerCheck",
    "ExtractedAnswer",
    "GoldCoT",
    "GoldStep",
    "SyntheticConfig",
    "check_answer",
    "extract_answer",
    "generate_problems",
    "load_gsm8k",
    "render_gold_cot",
]
