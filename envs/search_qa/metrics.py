"""Answer scoring for open-domain QA: SQuAD's normalisation, exact match and token F1.

normalize: lower case, drop punctuation, drop the articles a/an/the, collapse white space
(the SQuAD v1.1 evaluation script's `normalize_answer`, which NQ/HotpotQA/Search-R1 reuse).
With several gold answers a prediction gets its best score over them. `contains_answer` tells
whether a retrieved passage holds a gold answer at all.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation of an answer string."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 of the prediction against the gold answers."""
    return max((_f1(prediction, g) for g in golds), default=0.0)


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a normalised gold answer occurs in the normalised text as whole words (DPR's
    `has_answer` test for a retrieved passage)."""
    padded = f" {normalize_answer(text)} "
    return any(gold and f" {gold} " in padded for gold in map(normalize_answer, golds))


def extract_answer(response: str) -> str | None:
    """The text of the last `<answer>...</answer>` in a response, or None."""
    found = _ANSWER.findall(response)
    return found[-1].strip() if found else None
