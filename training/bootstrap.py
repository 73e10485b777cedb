#!/usr/bin/python3
"""How far the default model's headline numbers could move by chance: bootstrap 95% intervals.

The issue's goals are thresholds (STS-B dev >= 0.80, MS MARCO nDCG@10 >= 0.73, prompts beating no
prompts), and MS MARCO 5k has only 43 judged queries. Resampling the pairs / queries with
replacement (10,000 draws for means, 2,000 for Spearman; seeded) says which differences these sets
can tell apart. Paired differences resample the same items for both sides. Development only, over a
token table in torch (layer 0 = every exit layer of the shipped model, whose layers are the
identity); the reported numbers themselves come from benchmarks/eval.ts.

    /usr/bin/python3 training/bootstrap.py [TABLE.npy]    (default training/build/emb_tokens.npy)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quick_eval as qe  # noqa: E402
from evalsts import load_sick, load_stsb, spearman  # noqa: E402
from train_layers import heldin_docs  # noqa: E402
from train_tokens import BUILD, Table, encoder, load_tok, reciprocal_ranks10  # noqa: E402

RNG = np.random.RandomState(0)


def interval(draws, signed: bool = False) -> str:
    f = "+.4f" if signed else ".4f"
    return f"[{np.percentile(draws, 2.5):{f}}, {np.percentile(draws, 97.5):{f}}]"


def mean_ci(x: np.ndarray, signed: bool = False) -> str:
    return interval([x[RNG.randint(0, len(x), len(x))].mean() for _ in range(10_000)], signed)


def spearman_ci(c: np.ndarray, g: np.ndarray) -> str:
    draws = []
    for _ in range(2_000):
        i = RNG.randint(0, len(g), len(g))
        draws.append(spearman(c[i], g[i]))
    return interval(draws)


def cosines(enc, a, b):
    return (qe._unit(enc(a, None), 256) * qe._unit(enc(b, None), 256)).sum(1)


def per_query_ndcg(enc, marco, prompts: bool) -> np.ndarray:
    qt, qids, dt, dids, qrels = marco
    S = qe._unit(enc(qt, "query" if prompts else None), 256) @ qe._unit(enc(dt, "document" if prompts else None), 256).T
    return np.array([qe.ndcg_at_10(S[i:i + 1], [q], dids, qrels) for i, q in enumerate(qids)])


def main():
    torch.set_num_threads(2)
    table = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD / "emb_tokens.npy"
    enc = encoder(Table(np.load(table).astype(np.float32)), load_tok(), True)
    for name, data in (("STS-B dev", load_stsb("dev")), ("SICK-R test", load_sick("SICK_test_annotated.txt"))):
        if data is not None:
            c = cosines(enc, data[0], data[1])
            print(f"{name} (256 d): Spearman {spearman(c, data[2]):.4f}, 95% CI {spearman_ci(c, data[2])}")
    marco = qe.load_marco()
    if marco is not None:
        plain, prompted = per_query_ndcg(enc, marco, False), per_query_ndcg(enc, marco, True)
        diff = prompted - plain
        print(f"MS MARCO nDCG@10 ({len(plain)} queries): {plain.mean():.4f}, 95% CI {mean_ci(plain)}; "
              f"with prompts {prompted.mean():.4f}, 95% CI {mean_ci(prompted)}")
        print(f"  prompts - none: {diff.mean():+.4f}, 95% CI {mean_ci(diff, True)}; "
              f"{(diff > 0).sum()} queries gain, {(diff < 0).sum()} lose, {(diff == 0).sum()} tie")
    docs = heldin_docs()
    plain, prompted = reciprocal_ranks10(enc, docs, False), reciprocal_ranks10(enc, docs, True)
    diff = prompted - plain
    print(f"held-in manual headings MRR@10 ({len(docs)}): {plain.mean():.4f} -> {prompted.mean():.4f} with prompts, "
          f"difference {diff.mean():+.4f}, 95% CI {mean_ci(diff, True)}")


if __name__ == "__main__":
    main()
