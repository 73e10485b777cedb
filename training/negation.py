"""Rule-based negation of an English sentence, for hard negatives in the table stage.

A word average scores "A jet is flying" and "A jet is not flying" as near-duplicates (cosine ~0.95),
and nearly a quarter of SICK train's pairs hold a negation word. Training with each sentence's negation as
a hard negative (the contradiction negatives of supervised SimCSE, built here by rule instead of
from NLI data) teaches the table that "not" / "no" carry meaning. The rules are English grammar,
not any evaluation set's templates:

* "Det Noun is/are ..." -> "There is no Noun ..." or "No Noun is/are ..." (half of those that fit);
* otherwise the first auxiliary or copula gets "not" after it ("he was born" -> "he was not born").

Sentences that already hold a negation are left alone (negating them twice says little).
"""
from __future__ import annotations

import re

import numpy as np

_NEGATED = re.compile(r"\b(not|no|never|nobody|nothing|none|neither|nor|cannot)\b|n't\b", re.I)
_AUX = re.compile(
    r"\b(is|are|was|were|am|can|could|will|would|should|must|may|might|shall|does|do|did|has|have|had)\b", re.I)
_DET_NOUN_BE = re.compile(r"^(a|an|the|some|one|two|three)\s+(\w+)\s+(is|are)\b", re.I)


def negate(sentence: str, rng: np.random.RandomState) -> str | None:
    """The sentence's negation, or None for a question, a sentence without an auxiliary, or one negated already."""
    if _NEGATED.search(sentence) or sentence.rstrip().endswith("?"):  # a question inverts its auxiliary
        return None
    m = _DET_NOUN_BE.match(sentence)
    if m and rng.rand() < 0.5:
        noun, rest = m.group(2), sentence[m.end(2):].lstrip()
        if rng.rand() < 0.5:  # "A man is playing" -> "There is no man playing"
            return f"There is no {noun} {sentence[m.end(3):].lstrip()}".rstrip()
        return f"No {noun} {rest}"  # -> "No man is playing"
    m = _AUX.search(sentence)
    if not m:
        return None
    return sentence[: m.end()] + " not" + sentence[m.end():]
