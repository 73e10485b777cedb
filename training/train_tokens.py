#!/usr/bin/python3
"""The default model's `table` stage: paraphrastic training of the token table as a word-averaging model.

Wieting et al. (2016, "Towards universal paraphrastic sentence embeddings") trained word averages on
paraphrase pairs and beat both the initial word vectors and LSTMs on STS. Layer 0 of the default
model *is* a (SIF-weighted) word average, so the same can be done here at a tiny cost: a step is an
EmbeddingBag over a batch, thousands of steps a minute on two cores, where the earlier attempts
trained the table through four transformer layers at ~5 s a step.

    E = E0 * exp(g)[:, None] + delta        (g: one log-weight per token; delta: row corrections)

trained with in-batch InfoNCE at every Matryoshka width on Bible verse pairs, dictionary sentence
pairs, manual heading -> paragraph pairs and (DefSent-style) headwords against their definitions,
each definition a second time behind a search-style question about its headword ("what is a lathe",
"define lathe": the `ask` kind, which gave held-in +0.0045 and taught the query prompt the question
form of MS MARCO-like queries). The short verse and dictionary sentences also meet their own
negation ("A jet is flying" -> "A jet is not flying", negation.py) as a hard negative that must score
below the paraphrase, so "not" and "no" stop being noise words (held-in +0.018, SICK train +0.035;
a margin of 0.1 added +0.0016 more, over two seeds).
Selection: STS-B train + SICK train (held-in). `train_default_model.py` runs it as its `table` stage;
the command line is for experiments:

    nice -n 19 /usr/bin/python3 training/train_tokens.py [--steps N] [--lr X] [--kinds bible,dict,docs,define,ask,syn,ict] [--emb IN] [--out OUT]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_default_model import BUILD, DIMS, PROMPTS, load_tok, log, params, warmup_cosine  # noqa: E402
from train_layers import QUERY_TEMPLATES, heldin, heldin_docs, info_nce, near_misses  # noqa: E402
import quick_eval as qe  # noqa: E402
from negation import negate  # noqa: E402

SENT_KINDS = ("wn_gc_def", "wn_ex_sub", "wn_ex_ex", "wn_def_ex", "gc_def_ex")


ASYMMETRIC = ("docs", "define", "ask", "ict")  # query-like text -> passage: trained with the query/document prompts
NEGATED = ("bible", "dict")  # sentence pairs whose first sentence's negation is a hard negative (negation.py)


def negations(sets, seed: int, max_words: int) -> dict[str, list[str | None]]:
    """Per pair of each NEGATED kind, its first sentence negated (None where the rules do not apply).

    Only sentences of up to max_words words: to move a long verse's average below its paraphrase,
    a single "not" would need a row so large that it swamps every sentence that holds it."""
    rng = np.random.RandomState(seed + 1)  # its own stream: the pairs and templates stay as they were
    return {k: [negate(a, rng) if len(a.split()) <= max_words else None for a, _ in sets[k]]
            for k in NEGATED if k in sets}


def load_pairs(kinds=None, prompts=False):
    sets = {"bible": [], "dict": [], "docs": [], "define": [], "syn": [], "ask": [], "ict": []}
    rng = np.random.RandomState(params()["seed"])  # the templates' and the inverse-cloze sentences' draws
    for ln in (BUILD / "bible.tsv").read_text(encoding="utf-8").split("\n"):
        if "\t" in ln:
            a, b = ln.split("\t")[:2]
            sets["bible"].append((a, b))
    with open(BUILD / "pairs.tsv", encoding="utf-8") as f:
        for ln in f:
            k, a, b = ln.rstrip("\n").split("\t")
            if k in SENT_KINDS:
                sets["dict"].append((a, b))
            elif k == "wn_syn":
                sets["syn"].append((a, b))
            elif k in ("gc_head_def", "wn_words_def") and len(b.split()) >= 3:
                # DefSent-style: a word (or its synonyms) against its definition
                sets["define"].append((a, b))
                # the same definition asked for as a search query would ask ("what is a lathe")
                w = a.split(",")[0].strip().lower()
                if w:
                    sets["ask"].append((QUERY_TEMPLATES[rng.randint(len(QUERY_TEMPLATES))].format(w=w), b))
    for ln in (BUILD / "docs.tsv").read_text(encoding="utf-8").split("\n"):
        if not ln:
            continue
        _, t, p = ln.split("\t")
        if not heldin(t):
            sets["docs"].append((t, p))
            # inverse cloze (Lee et al. 2019): one sentence of a paragraph -> the rest of it
            sents = re.split(r"(?<=[.?!])\s+", p)
            if len(sents) >= 2:
                i = rng.randint(len(sents))
                sets["ict"].append((sents[i], " ".join(sents[:i] + sents[i + 1:])))
    # the same for scripture: a KJV verse -> the WEB verses either side of it
    verses = sets["bible"]
    for i in range(1, len(verses) - 1):
        sets["ict"].append((verses[i][0], verses[i - 1][1] + " " + verses[i + 1][1]))
    if prompts:
        for k in ASYMMETRIC:
            sets[k] = [(PROMPTS["query"] + a, PROMPTS["document"] + b) for a, b in sets[k]]
    return {k: v for k, v in sets.items() if kinds is None or k in kinds}


def reciprocal_ranks10(enc, pairs, prompts: bool) -> np.ndarray:
    """Per (query, passage) pair: 1 / the passage's rank among all the pairs' passages, 0 beyond 10."""
    Q = enc([q for q, _ in pairs], "query" if prompts else None)
    D = enc([d for _, d in pairs], "document" if prompts else None)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True) + 1e-12
    D /= np.linalg.norm(D, axis=1, keepdims=True) + 1e-12
    S = Q @ D.T
    rank = (S > np.diag(S)[:, None]).sum(1)
    return np.where(rank < 10, 1.0 / (rank + 1), 0.0)


def mrr10(enc, pairs, prompts: bool) -> float:
    return float(reciprocal_ranks10(enc, pairs, prompts).mean())


def negation_hinge(a, b, n, margin: float):
    """Mean over Matryoshka widths of relu(cos(a, n) - cos(a, b) + margin): each negation n must score
    `margin` below its sentence a's paraphrase b, and no further."""
    loss = 0.0
    for d in DIMS:
        a_, b_, n_ = (F.normalize(x[:, :d], dim=-1) for x in (a, b, n))
        loss = loss + torch.relu((a_ * n_).sum(1) - (a_ * b_).sum(1) + margin).mean() / len(DIMS)
    return loss


class Bags:
    """Texts as flat content-token ids + offsets, for EmbeddingBag."""

    def __init__(self, tok, texts, max_len=64):
        ids = [tok.content_ids(t)[:max_len] or [0] for t in texts]
        self.lens = np.array([len(x) for x in ids])
        self.flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids])
        self.starts = np.concatenate([[0], np.cumsum(self.lens)[:-1]])

    def batch(self, idx):
        parts = [self.flat[self.starts[i]: self.starts[i] + self.lens[i]] for i in idx]
        off = np.concatenate([[0], np.cumsum([len(p) for p in parts])[:-1]])
        return torch.from_numpy(np.concatenate(parts)), torch.from_numpy(off)


class Table(torch.nn.Module):
    """E = E0 * exp(g)[:, None] + delta, rows that are zero in E0 ([PAD], [CLS], [SEP], [MASK]) kept zero."""

    def __init__(self, E0: np.ndarray):
        super().__init__()
        self.register_buffer("E0", torch.from_numpy(E0))
        self.register_buffer("live", (torch.from_numpy(E0).abs().sum(1) > 0).float()[:, None])
        V, H = E0.shape
        self.g = torch.nn.Parameter(torch.zeros(V))
        self.delta = torch.nn.Parameter(torch.zeros(V, H))

    def table(self):
        return (self.E0 * torch.exp(self.g)[:, None] + self.delta) * self.live

    def forward(self, flat, off):
        return F.embedding_bag(flat, self.table(), off, mode="sum")


@torch.no_grad()
def mine_negatives(bags, ref: Table, seed: int, pool: int = 20000) -> dict[str, np.ndarray]:
    """Per kind, one hard negative document per pair under the reference table `ref`: the pair's
    `near_misses` among the pairs of its pool (the kind's training order cut into pools of `pool`)."""
    rng = np.random.RandomState(seed + 2)
    out = {}
    for k, (A, B, perm) in bags.items():
        neg = np.empty(len(perm), dtype=np.int64)
        for p0 in range(0, len(perm), pool):
            ids = perm[p0: p0 + pool]
            neg[ids] = ids[near_misses(*(F.normalize(ref(*X.batch(ids)), dim=-1) for X in (A, B)), rng)]
        out[k] = neg
    return out


def encoder(model, tok, prompts=False):
    @torch.no_grad()
    def encode(texts, role):
        if prompts and role:
            texts = [PROMPTS[role] + t for t in texts]
        b = Bags(tok, texts, 128)
        out = []
        for s in range(0, len(texts), 2048):
            flat, off = b.batch(range(s, min(len(texts), s + 2048)))
            out.append(model(flat, off).numpy())
        return np.concatenate(out)
    return encode


def train_table(P, emb_in: Path, emb_out: Path, kinds=None, eval_every=None) -> dict:
    """Trains the token table from `emb_in`, saves the held-in best to `emb_out`; returns its record."""
    torch.manual_seed(P["seed"])
    tok = load_tok()
    E0 = np.load(emb_in).astype(np.float32)
    model = Table(E0)
    sets = load_pairs(kinds or P["table_kinds"], P["table_prompts"])
    bags = {k: (Bags(tok, [p[0] for p in v]), Bags(tok, [p[1] for p in v]),
                np.random.RandomState(P["seed"]).permutation(len(v))) for k, v in sets.items()}
    log("table pairs: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    negs = {}
    if P.get("table_negations"):
        for k, v in negations(sets, P["seed"], P["table_negation_max_words"]).items():
            has = np.array([n is not None for n in v])
            negs[k] = (Bags(tok, [n or "" for n in v]), has)
        log("table hard negatives (negations): " + ", ".join(f"{k} {h.sum()}" for k, (_, h) in negs.items()))
    hard = None
    if P.get("table_hard_negatives"):
        t = time.time()
        hard = mine_negatives(bags, Table(np.load(P["table_hard_negatives"]).astype(np.float32)), P["seed"])
        log(f"table hard negatives mined in {time.time() - t:.0f} s")
    opt = torch.optim.Adam(model.parameters(), lr=P["table_lr"])
    steps, batch, every = P["table_steps"], P["table_batch"], eval_every or P["table_eval_every"]
    names = list(bags)
    enc = encoder(model, tok, P["table_prompts"])
    held_docs = heldin_docs()
    best = {"score": None, "step": 0}

    def evaluate(step):
        r = qe.heldin(enc, dims=(64, 256))
        if not r:  # no selection data: the last step is the result
            if step == steps:
                np.save(emb_out, model.table().detach().numpy())
                best.update(step=step)
            return
        sc = float(np.mean([v for d in r.values() for v in d.values()]))
        docs = f"docs MRR@10 {mrr10(enc, held_docs, False):.3f}" + (
            f" (prompts {mrr10(enc, held_docs, True):.3f})" if P["table_prompts"] else "")
        log(f"table step {step} held-in {qe.fmt(r)} {docs} score {sc:.4f}")
        if best["score"] is None or sc > best["score"]:
            best.update(score=sc, step=step, heldin=r)
            np.save(emb_out, model.table().detach().numpy())

    evaluate(0)
    t0 = time.time()
    for step in range(1, steps + 1):
        k = names[step % len(names)]
        A, B, perm = bags[k]
        i0 = ((step // len(names)) * batch) % len(perm)
        idx = perm[i0: i0 + batch]
        xa, xb = model(*A.batch(idx)), model(*B.batch(idx))
        cands = xb if hard is None else torch.cat([xb, model(*B.batch(hard[k][idx]))])
        loss = sum(info_nce(xa[:, :d], cands[:, :d], P["temperature"])[0] for d in DIMS) / len(DIMS)
        if k in negs and negs[k][1][idx].any():
            # each negated first sentence must score a margin (0.1 in cosine) below its pair's
            # paraphrase, and no further: a hinge, not another InfoNCE candidate, which kept pushing
            # "not" until "would not stop" no longer matched "would continue" (benchmarks/EVAL.md)
            N, has = negs[k]
            sel = has[idx]
            loss = loss + negation_hinge(xa[sel], xb[sel], model(*N.batch(idx[sel])), P["table_negation_margin"])
        f = warmup_cosine(step, steps, 100)
        for g in opt.param_groups:
            g["lr"] = P["table_lr"] * f
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            log(f"table step {step} ({k}) loss {loss.item():.4f} {time.time() - t0:.0f} s")
        if step % every == 0 or step == steps:
            evaluate(step)
    log(f"table: selected step {best['step']} (score {best['score']})")
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--kinds", help="comma-separated: bible,dict,docs,define,ask,syn,ict")
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--emb", default=str(BUILD / "emb_init.npy"))
    ap.add_argument("--out", default=str(BUILD / "emb_tokens.npy"))
    ap.add_argument("--no-prompts", action="store_true", help="no query/document prompts on the asymmetric pairs")
    ap.add_argument("--no-negations", action="store_true", help="no negated sentences as hard negatives")
    ap.add_argument("--negation-margin", type=float, help="how far below its paraphrase a negation must score")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--seed", type=int, help="another seed, to see how far held-in scores move by chance")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--hard-negatives", metavar="TABLE", help="one mined hard negative per pair, under this token table (.npy)")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    P = params()
    if a.steps is not None:
        P["table_steps"] = a.steps
    if a.lr is not None:
        P["table_lr"] = a.lr
    if a.no_prompts:
        P["table_prompts"] = False
    if a.no_negations:
        P["table_negations"] = False
    for k, v in (("temperature", a.temperature), ("table_batch", a.batch), ("table_negation_margin", a.negation_margin),
                 ("seed", a.seed), ("table_hard_negatives", a.hard_negatives)):
        if v is not None:
            P[k] = v
    train_table(P, Path(a.emb), Path(a.out), a.kinds.split(",") if a.kinds else None, a.eval_every)


if __name__ == "__main__":
    main()
