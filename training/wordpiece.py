"""WordPiece vocabulary training (BPE-style merges with a '##' continuation prefix, as HF
tokenizers' WordPieceTrainer does) and a fast BERT-compatible tokenizer for corpus statistics.

Tokenization matches HF `BertNormalizer(lowercase, strip accents) + BertPreTokenizer + WordPiece`
(greedy longest match first). ASCII lines take a regex fast path; others use the reference
implementation from tools/make_test_models.py.
"""
from __future__ import annotations

import heapq
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from make_test_models import BERT_SPECIALS, bert_pre_tokenize  # noqa: E402

_ASCII_RE = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def pre_tokenize(text: str) -> list[str]:
    if text.isascii():
        return _ASCII_RE.findall(_CTRL_RE.sub("", text).lower())
    return bert_pre_tokenize(text)


def word_counts(lines) -> Counter:
    c: Counter = Counter()
    for ln in lines:
        c.update(pre_tokenize(ln))
    return c


def train_wordpiece(counts: Counter, vocab_size: int, min_count: int = 2, min_char_count: int = 20) -> list[str]:
    """BPE merges over words (continuation symbols carry '##') until the vocabulary has vocab_size entries."""
    words = [(w, c) for w, c in counts.items() if c >= min_count and len(w) <= 40]
    chars: Counter = Counter()
    for w, c in words:
        for i, ch in enumerate(w):
            chars[ch if i == 0 else "##" + ch] += c
    alphabet = sorted(t for t, c in chars.items() if c >= min_char_count)
    vocab = list(BERT_SPECIALS) + alphabet
    vset = set(vocab)
    # symbol sequences
    seqs = []
    freqs = []
    for w, c in words:
        s = [w[0]] + ["##" + ch for ch in w[1:]]
        if any(t not in vset for t in s):
            continue
        seqs.append(s)
        freqs.append(c)
    pair_counts: dict = defaultdict(int)
    where: dict = defaultdict(set)
    for i, s in enumerate(seqs):
        f = freqs[i]
        for a, b in zip(s, s[1:]):
            pair_counts[(a, b)] += f
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    def merged(a: str, b: str) -> str:
        return a + (b[2:] if b.startswith("##") else b)

    while len(vocab) < vocab_size and heap:
        negc, p = heapq.heappop(heap)
        cur = pair_counts.get(p, 0)
        if cur <= 0:
            continue
        if -negc != cur:  # stale entry
            heapq.heappush(heap, (-cur, p))
            continue
        a, b = p
        new = merged(a, b)
        if new not in vset:
            vocab.append(new)
            vset.add(new)
        for i in list(where.pop(p, ())):
            s = seqs[i]
            f = freqs[i]
            j = 0
            out = []
            changed = False
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    out.append(new)
                    j += 2
                    changed = True
                else:
                    out.append(s[j])
                    j += 1
            if not changed:
                continue
            for x, y in zip(s, s[1:]):
                pair_counts[(x, y)] -= f
            for x, y in zip(out, out[1:]):
                q = (x, y)
                pair_counts[q] += f
                where[q].add(i)
                heapq.heappush(heap, (-pair_counts[q], q))
            seqs[i] = out
        pair_counts.pop(p, None)
    return vocab


class FastWordPiece:
    """Greedy longest-match WordPiece with a per-word cache (same result as HF WordPiece)."""

    def __init__(self, vocab: list[str], max_chars: int = 100):
        self.vocab = vocab
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.unk = self.ids["[UNK]"]
        self.cls = self.ids["[CLS]"]
        self.sep = self.ids["[SEP]"]
        self.pad = self.ids["[PAD]"]
        self.max_chars = max_chars
        self.cache: dict[str, list[int]] = {}
        self.max_len = max(len(t) for t in vocab)

    def word_ids(self, w: str) -> list[int]:
        r = self.cache.get(w)
        if r is not None:
            return r
        if len(w) > self.max_chars:
            r = [self.unk]
        else:
            r = []
            start = 0
            while start < len(w):
                end = min(len(w), start + self.max_len)
                cur = None
                while start < end:
                    sub = w[start:end] if start == 0 else "##" + w[start:end]
                    t = self.ids.get(sub)
                    if t is not None:
                        cur = t
                        break
                    end -= 1
                if cur is None:
                    r = [self.unk]
                    break
                r.append(cur)
                start = end
        if len(self.cache) < 2_000_000:
            self.cache[w] = r
        return r

    def content_ids(self, text: str) -> list[int]:
        out: list[int] = []
        for w in pre_tokenize(text):
            out.extend(self.word_ids(w))
        return out

    def encode(self, text: str, max_length: int = 128) -> list[int]:
        return [self.cls] + self.content_ids(text)[: max_length - 2] + [self.sep]
