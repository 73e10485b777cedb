"""Model selection helpers: STS-B train (and SICK train) loaders and Spearman, for development only.

The reported numbers come from benchmarks/eval.ts through the service runtime; here STS-B *train*
(and the SICK train split) guide choices, and dev/test are printed only for information.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "assets" / "eval"


def load_stsb(split: str):
    p = SHARED / "stsbenchmark" / "train-dev.tsv"
    if not p.exists():
        return None
    a, b, s = [], [], []
    with open(p, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["split"] == split:
                a.append(row["sentence1"]); b.append(row["sentence2"]); s.append(float(row["score"]))
    return a, b, np.asarray(s)


def load_sick(name: str = "SICK_train.txt"):
    p = SHARED / "sick-r" / name
    if not p.exists():
        return None
    a, b, s = [], [], []
    with open(p, encoding="utf-8") as f:
        next(f)
        for ln in f:
            c = ln.rstrip("\n").split("\t")
            a.append(c[1]); b.append(c[2]); s.append(float(c[3]))
    return a, b, np.asarray(s)


def rankdata(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y) -> float:
    rx, ry = rankdata(np.asarray(x, dtype=np.float64)), rankdata(np.asarray(y, dtype=np.float64))
    return float(np.corrcoef(rx, ry)[0, 1])


def cos_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = A / (np.linalg.norm(A, axis=1, keepdims=True) + 1e-12)
    B = B / (np.linalg.norm(B, axis=1, keepdims=True) + 1e-12)
    return (A * B).sum(1)
