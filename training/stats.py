"""Corpus statistics: token frequencies, PPMI co-occurrence matrix and its truncated SVD."""
from __future__ import annotations

import numpy as np
import torch


def encode_corpus(tok, lines: list[str]) -> list[np.ndarray]:
    return [np.asarray(tok.content_ids(ln), dtype=np.int64) for ln in lines if ln]


def token_probs(seqs: list[np.ndarray], V: int) -> np.ndarray:
    c = np.bincount(np.concatenate(seqs), minlength=V).astype(np.float64)
    return c / c.sum()


def ppmi_svd(seqs: list[np.ndarray], V: int, dim: int, window: int = 5, cds: float = 0.75,
             eig: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Returns (vectors [V, dim] = U * S**eig, singular values)."""
    # one long array with `window` separators (-1) between lines so windows never cross lines
    sep = np.full(window, -1, dtype=np.int64)
    parts = []
    for s in seqs:
        parts.append(s)
        parts.append(sep)
    ids = np.concatenate(parts)
    keys, weights = [], []
    for d in range(1, window + 1):
        a, b = ids[:-d], ids[d:]
        m = (a >= 0) & (b >= 0)
        a, b = a[m], b[m]
        w = 1.0 / d  # harmonic distance weighting
        keys.append(a * V + b)
        keys.append(b * V + a)
        weights.append(np.full(2 * len(a), w, dtype=np.float32))
    keys = np.concatenate(keys)
    weights = np.concatenate(weights)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    weights = weights[order]
    uniq, start = np.unique(keys, return_index=True)
    vals = np.add.reduceat(weights, start).astype(np.float64)
    rows, cols = uniq // V, uniq % V
    total = vals.sum()
    row_sum = np.bincount(rows, weights=vals, minlength=V)
    col_sum = np.bincount(cols, weights=vals, minlength=V) ** cds
    pmi = np.log(vals * col_sum.sum() / (row_sum[rows] * col_sum[cols] + 1e-30) + 1e-30)
    del total
    keep = pmi > 0
    M = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows[keep], cols[keep]])),
        torch.from_numpy(pmi[keep].astype(np.float32)),
        (V, V),
    ).coalesce()
    torch.manual_seed(seed)
    U, S, _ = torch.svd_lowrank(M, q=dim + 20, niter=4)
    U, S = U[:, :dim], S[:dim]
    vec = (U * S.pow(eig)).numpy().astype(np.float32)
    return vec, S.numpy()
