"""Fast torch-side checks of an encoder on the evaluation sets, for development only.

The reported numbers come from benchmarks/eval.ts through the service's runtime. These functions
score any `encode(texts, role) -> [n, d] array` (role: None, "query" or "document") the same way
(cosine of renormalised Matryoshka prefixes; nDCG@10 with linear gains), so an idea can be checked
in seconds. Held-in sets (STS-B train, SICK train) choose between ideas; `untouched()` is run only
on the candidates that held-in selection picked, and says so in benchmarks/EVAL.md.
"""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from evalsts import SHARED, load_sick, load_stsb, spearman

DIMS = (32, 64, 128, 256)


def _unit(X: np.ndarray, d: int) -> np.ndarray:
    X = np.asarray(X[:, :d], dtype=np.float64)
    return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)


def sts_scores(encode, data, dims=DIMS) -> dict[int, float]:
    a, b, gold = data
    A, B = encode(a, None), encode(b, None)
    return {d: spearman((_unit(A, d) * _unit(B, d)).sum(1), gold) for d in dims}


def load_marco():
    root = SHARED / "retrieval-msmarco-5k"
    if not root.exists():
        return None
    docs = [json.loads(ln) for ln in (root / "corpus.jsonl").read_text(encoding="utf-8").split("\n") if ln.strip()]
    queries = [json.loads(ln) for ln in (root / "queries.jsonl").read_text(encoding="utf-8").split("\n") if ln.strip()]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for ln in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").split("\n"):
        c = ln.split("\t")
        if len(c) == 3 and c[2].lstrip("-").isdigit():
            qrels[c[0]][c[1]] = int(c[2])
    queries = [q for q in queries if q["_id"] in qrels]
    doc_text = [((d.get("title") or "") + " " + d["text"]).strip() for d in docs]
    return [q["text"] for q in queries], [q["_id"] for q in queries], doc_text, [d["_id"] for d in docs], qrels


def ndcg_at_10(S: np.ndarray, qids, dids, qrels) -> float:
    tot = 0.0
    for qi, q in enumerate(qids):
        top = np.argsort(-S[qi], kind="stable")[:10]
        rel = qrels[q]
        dcg = sum(rel.get(dids[j], 0) / np.log2(p + 2) for p, j in enumerate(top))
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / np.log2(p + 2) for p, g in enumerate(ideal))
        tot += dcg / idcg if idcg > 0 else 0.0
    return tot / len(qids)


def marco_scores(encode, marco, dims=DIMS, prompts=False) -> dict[int, float]:
    qt, qids, dt, dids, qrels = marco
    Q = encode(qt, "query" if prompts else None)
    D = encode(dt, "document" if prompts else None)
    return {d: ndcg_at_10(_unit(Q, d) @ _unit(D, d).T, qids, dids, qrels) for d in dims}


def heldin(encode, dims=DIMS) -> dict[str, dict[int, float]]:
    out = {}
    for name, data in (("stsb_train", load_stsb("train")), ("sick_train", load_sick())):
        if data is not None:
            out[name] = sts_scores(encode, data, dims)
    return out


def untouched(encode, dims=DIMS, prompts=True) -> dict[str, dict[int, float]]:
    out = {}
    for name, data in (("stsb_dev", load_stsb("dev")), ("sickr_test", load_sick("SICK_test_annotated.txt"))):
        if data is not None:
            out[name] = sts_scores(encode, data, dims)
    marco = load_marco()
    if marco is not None:
        out["marco"] = marco_scores(encode, marco, dims)
        if prompts:
            out["marco_prompts"] = marco_scores(encode, marco, dims, prompts=True)
    return out


def fmt(res: dict[str, dict[int, float]]) -> str:
    return "  ".join(f"{k} " + "/".join(f"{v[d]:.3f}" for d in sorted(v)) for k, v in res.items())
