#!/usr/bin/python3
"""Issue 17, second attempt: layers that can only add, trained on retrieval-shaped Debian text.

Starts from the corpus-statistics encoder that train_default_model.py builds (run its data, vocab
and stats stages first; the token vectors stay frozen, so layer 0 is exactly the shipped model) and
trains the four layers on:

  * docs   heading -> paragraph of that section from debian-handbook, python3.11-doc, perl-doc and
           gnome-user-docs (prep_docs.py), trained asymmetrically with the `query: ` / `document: `
           prompts (E5 / KaLM-Embedding weak-supervision pre-training, Debian-sized);
  * bible  KJV <-> WEB verse pairs (prep_bible.py), symmetric, no prompt;
  * define word query -> its WordNet / GCIDE definition, with the prompts.

What differs from train_layers_experiment.py (whose deeper layers lost STS-B; benchmarks/EVAL.md):
  * token-norm-scaled residual branches (model.py `residual_scaling: "token_norm"`):
    h <- h + |h| * f(LN(h)). The first attempt diagnosed that a
    pre-LN branch adds the same-sized update to every token, so a frequent word (small SIF-weighted
    row) is pulled up to a rare word's weight and the frequency weighting that carries STS is
    diluted. Scaling each branch by the token's own norm keeps the update relative: a token's weight
    in the mean pool can change by a factor, not be overwritten. Output projections start at zero, so
    every layer starts as the identity and training can only add;
  * a relational distillation term: each layer's in-batch similarity distribution (cross pairs) is kept
    close (KL) to layer 0's, so the lexical ranking STS rewards is not traded away for the contrastive
    target;
  * selection on STS-B *train* plus a held-in slice of docs pairs never trained on (evaluation sets
    stay evaluation-only).

    nice -n 19 /usr/bin/python3 training/train_layers.py [--steps N] [--lr X] [--distill X] [--out DIR]
        [--token-table emb_tokens.npy] [--schedule docs,bible,define] [--hard-negatives 1] [--tag NAME]

Measured in benchmarks/EVAL.md: on v1's corpus-statistics vectors ("Issue 17, second attempt") the
layers only level them on untouched data (best at layer 2); on v2's trained table ("Layers on top
of the trained table"), even with mined hard negatives, layer 1 is level and deeper layers lose on
held-in data. So `npm run model:train` does not use this recipe: the shipped layers are the identity.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_default_model import (BUILD, DIMS, LAYERS, PROMPTS, batch_prompted, layers_only_model, export_model, load_tok, log, mean_pool,  # noqa: E402
                                 params, selection_data, stage_data)

TAG = "layers2"
QUERY_TEMPLATES = ["{w}", "what is {w}", "what does {w} mean", "define {w}", "{w} meaning", "what is a {w}"]


def params_layers():
    P = params()
    P.update({
        "residual_scaling": "token_norm", "ffn": 512, "batch": 64, "q_len": 32, "d_len": 64, "steps": 160, "lr": 2e-5, "warmup": 10,
        "schedule": ["docs", "bible"], "temperature": 0.05, "distill": 0.5,
        "heldin_docs": 500, "eval_every": 40, "ckpt_every": 20, "hard_negatives": 0, "hard_pool": 20000,
    })
    return P


# ------------------------------------------------------------------ data
def ensure_sources(P):
    if not all((BUILD / f).exists() for f in ("docs.tsv", "bible.tsv", "pairs.tsv")):
        stage_data(P)


def heldin(title: str) -> bool:
    return int(hashlib.sha1(title.encode()).hexdigest()[:8], 16) % 20 == 0


def heldin_docs() -> list[tuple[str, str]]:
    """The held-in manual headings (never trained on), each with its first paragraph."""
    seen, out = set(), []
    for ln in (BUILD / "docs.tsv").read_text(encoding="utf-8").splitlines():
        _, t, p = ln.split("\t")
        if heldin(t) and t not in seen:
            seen.add(t)
            out.append((t, p))
    return out


def load_sets(P):
    rng = random.Random(P["seed"])
    docs = []
    for ln in (BUILD / "docs.tsv").read_text(encoding="utf-8").splitlines():
        _, t, p = ln.split("\t")
        if not heldin(t):
            docs.append((t, p))
    bible = [tuple(ln.split("\t")) for ln in (BUILD / "bible.tsv").read_text(encoding="utf-8").splitlines() if "\t" in ln]
    define = []
    with open(BUILD / "pairs.tsv", encoding="utf-8") as f:
        for ln in f:
            k, a, b = ln.rstrip("\n").split("\t")
            if k in ("gc_head_def", "wn_words_def"):
                w = a.split(",")[0].strip()
                if w and len(b.split()) >= 3:
                    define.append((rng.choice(QUERY_TEMPLATES).format(w=w.lower()), b))
    # one held-in query per heading: the first of its paragraphs is the relevant one
    held_q = heldin_docs()[: P["heldin_docs"]]
    sets = {"docs": (docs, "query", "document", P["d_len"]), "bible": (bible, None, None, P["q_len"]),
            "define": (define, "query", "document", P["d_len"])}
    out = {}
    for j, (k, (data, pa, pb, ml)) in enumerate(sets.items()):
        perm = [int(i) for i in np.random.RandomState(P["seed"] + j).permutation(len(data))]
        out[k] = (data, perm, pa, pb, ml)
    return out, held_q


# ------------------------------------------------------------------ evaluation (held-in only)
@torch.no_grad()
def embed(model, tok, texts, prompt=None, max_len=128, bs=64):
    model.eval()
    n_layers = model.config["num_hidden_layers"]
    res = {l: torch.zeros(len(texts), model.config["hidden_size"]) for l in range(n_layers + 1)}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for s in range(0, len(order), bs):
        idx = order[s : s + bs]
        ids, mask, pmask = batch_prompted(tok, [texts[i] for i in idx], prompt, max_len)
        for l, h in enumerate(model.hidden_states(ids, mask)):
            res[l][idx] = mean_pool(h, pmask)
    return res


def evaluate(model, tok, sel, held_q):
    """{(layer, dim): STS-B train Spearman} and {(layer, dim): held-in docs MRR@10} (with prompts)."""
    from evalsts import spearman
    sts, ret = {}, {}
    if sel is not None:
        a, b, gold = sel
        ea, eb = embed(model, tok, a), embed(model, tok, b)
        for l in ea:
            for d in DIMS:
                x, y = F.normalize(ea[l][:, :d], dim=-1), F.normalize(eb[l][:, :d], dim=-1)
                sts[(l, d)] = spearman((x * y).sum(-1).numpy(), gold)
    eq = embed(model, tok, [q for q, _ in held_q], "query", 32)
    ed = embed(model, tok, [p for _, p in held_q], "document", 128)
    for l in eq:
        for d in DIMS:
            s = F.normalize(eq[l][:, :d], dim=-1) @ F.normalize(ed[l][:, :d], dim=-1).t()
            rank = (s > s.diag()[:, None]).sum(1)  # 0-based rank of the relevant paragraph
            ret[(l, d)] = float(torch.where(rank < 10, 1.0 / (rank + 1).float(), torch.zeros(())).mean())
    return sts, ret


def score(sts, ret):
    """Deeper layers weigh more; full width and 64 dimensions; STS-B train and held-in retrieval alike."""
    tot, n = 0.0, 0
    for l in LAYERS:
        for d in (64, 256):
            tot += l * (sts.get((l, d), 0.0) + ret[(l, d)])
            n += l
    return tot / n


def fmt(res):
    return " | ".join(f"L{l} " + "/".join(f"{res[(l, d)]:.3f}" for d in DIMS)
                      for l in sorted({l for l, _ in res}))


# ------------------------------------------------------------------ training
def info_nce(x, y, temp):
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = x @ y.t() / temp
    target = torch.arange(x.size(0))
    # y may carry hard negatives after the x.size(0) positives: they count against the queries only
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : x.size(0)].t(), target)), logits


@torch.no_grad()
def mine_hard_negatives(P, tok, model, sets):
    """One hard negative per training pair, from the frozen token table (layer 0): `near_misses` in a
    pool of the set. Only the pool is trained on, so the mined negatives are always at hand."""
    table = model.embeddings.word_embeddings.weight

    def layer0(texts):
        ids = [torch.tensor(tok.content_ids(t)[:128] or [0]) for t in texts]
        off = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
        return F.normalize(F.embedding_bag(torch.cat(ids), table, off, mode="sum"), dim=-1)

    rng = np.random.RandomState(P["seed"])
    out = {}
    for kind, (data, perm, pa, pb, ml) in sets.items():
        pool = perm[: P["hard_pool"]]
        picks = near_misses(layer0([data[i][0] for i in pool]), layer0([data[i][1] for i in pool]), rng)
        out[kind] = (data, pool, pa, pb, ml, {pool[i]: pool[int(j)] for i, j in enumerate(picks)})
    return out


@torch.no_grad()
def near_misses(qa, db, rng) -> np.ndarray:
    """For each query of a pool (unit rows of qa), the index of a random one of its 3rd..10th most
    similar documents (unit rows of db, row i being query i's own document, which is excluded).
    Ranks 1-2 are skipped: there sit the near-duplicates and parallel passages that are really
    paraphrases (DebCSE's false negatives)."""
    top_k = min(10, db.size(0) - 1)
    out = np.empty(qa.size(0), dtype=np.int64)
    for s0 in range(0, qa.size(0), 2048):
        sim = qa[s0 : s0 + 2048] @ db.t()
        rows = torch.arange(sim.size(0))
        sim[rows, rows + s0] = -2.0  # its own document
        top = sim.topk(top_k, dim=1).indices.numpy()
        out[s0 : s0 + len(top)] = top[np.arange(len(top)), rng.randint(min(2, top_k - 1), top_k, size=len(top))]
    return out


def train(P):
    tok, model = layers_only_model(P)
    sets, held_q = load_sets(P)
    log("training sets: " + ", ".join(f"{k} {len(v[0])}" for k, v in sets.items()) + f"; held-in docs {len(held_q)}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=P["lr"], weight_decay=0.01)
    ckpt, best_path = BUILD / f"{TAG}-ckpt.pt", BUILD / f"{TAG}-best.pt"
    step, best, history = 0, -1.0, []
    if ckpt.exists():
        st = torch.load(ckpt)
        if st.get("params") == P:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            step, best, history = st["step"], st["best"], st["history"]
            log(f"resumed at step {step} (best {best:.4f})")
    sel = selection_data(P)
    if P.get("hard_negatives"):
        t = time.time()
        sets = mine_hard_negatives(P, tok, model, sets)
        log(f"hard negatives mined in {time.time() - t:.0f} s (pools of {P['hard_pool']})")

    def run_eval():
        t = time.time()
        sts, ret = evaluate(model, tok, sel, held_q)
        sc = score(sts, ret)
        history.append({"step": step, "score": sc, "sts_train": {f"{l},{d}": v for (l, d), v in sts.items()},
                        "heldin_mrr10": {f"{l},{d}": v for (l, d), v in ret.items()}})
        log(f"eval step {step} score {sc:.4f} ({time.time() - t:.0f} s)\n  STS-B train  {fmt(sts)}\n  held-in MRR {fmt(ret)}")
        return sc

    if step == 0:
        best = run_eval()
        torch.save({"model": model.state_dict(), "step": 0}, best_path)
    B, sched = P["batch"], P["schedule"]
    t_last = time.process_time()
    while step < P["steps"]:
        kind = sched[step % len(sched)]
        data, perm, pa_name, pb_name, ml, *neg = sets[kind]
        k = step // len(sched) * sched.count(kind) + sched[: step % len(sched)].count(kind)
        i0 = (k * B) % len(perm)
        idx = perm[i0 : i0 + B]
        f = min(1.0, (step + 1) / P["warmup"]) * 0.5 * (1 + math.cos(math.pi * step / P["steps"]))
        for g in opt.param_groups:
            g["lr"] = P["lr"] * f
        model.train()
        ida, ma, pma = batch_prompted(tok, [data[i][0] for i in idx], pa_name, P["q_len"])
        docs = [data[i][1] for i in idx] + ([data[neg[0][i]][1] for i in idx] if neg else [])
        idb, mb, pmb = batch_prompted(tok, docs, pb_name, ml)
        ha, hb = model.hidden_states(ida, ma), model.hidden_states(idb, mb)
        with torch.no_grad():  # layer 0 = the frozen token vectors: the teacher's similarity distribution
            _, t_logits = info_nce(mean_pool(ha[0], pma), mean_pool(hb[0], pmb), P["temperature"])
            nb = len(idx)
            t_row, t_col = F.log_softmax(t_logits, 1), F.log_softmax(t_logits[:, :nb].t(), 1)
        loss, lnce, lkd, n = 0.0, 0.0, 0.0, 0
        for l in LAYERS:
            xa, xb = mean_pool(ha[l], pma), mean_pool(hb[l], pmb)
            for d in DIMS:
                nce, logits = info_nce(xa[:, :d], xb[:, :d], P["temperature"])
                kd = 0.0
                if d == DIMS[-1]:
                    kd = 0.5 * (F.kl_div(F.log_softmax(logits, 1), t_row, log_target=True, reduction="batchmean")
                                + F.kl_div(F.log_softmax(logits[:, :nb].t(), 1), t_col, log_target=True, reduction="batchmean"))
                loss = loss + l * (nce + P["distill"] * kd)
                lnce, lkd, n = lnce + l * float(nce), lkd + l * float(kd), n + l
        loss = loss / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            cpu = time.process_time() - t_last
            t_last = time.process_time()
            log(f"step {step} ({kind}) nce {lnce / n:.4f} kd {lkd / n:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"cpu-s/10 steps {cpu:.1f}")
        if step % P["eval_every"] == 0 or step == P["steps"]:
            sc = run_eval()
            if sc > best:
                best = sc
                torch.save({"model": model.state_dict(), "step": step}, best_path)
        if step % P["ckpt_every"] == 0 or step == P["steps"]:
            tmp = BUILD / f"{TAG}-ckpt.pt.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                        "history": history, "params": P}, tmp)
            os.replace(tmp, ckpt)
    (BUILD / f"{TAG}-history.json").write_text(json.dumps(history, indent=1))
    log(f"training done; selected step {torch.load(best_path)['step']} (score {best:.4f})")


LAYERS_TRAINING = {
    "data": "Debian wordnet-base + dict-gcide (corpus statistics); debian-handbook, python3.11-doc, perl-doc, "
            "gnome-user-docs (heading -> paragraph); sword-text-kjv + sword-text-web (verse pairs)",
    "recipe": "PPMI-SVD + SIF token vectors (frozen); token-norm-scaled, zero-initialised pre-LN layers trained with "
              "InfoNCE over every exit layer x width plus KL to layer 0's in-batch similarities; query/document prompts",
    "rebuild": "npm run model:train",
}


def export(P, out: Path):
    export_model(P, load_tok(), BUILD / f"{TAG}-best.pt", out, LAYERS_TRAINING, prompts=PROMPTS, include_prompt=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--distill", type=float)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--out", default=str(BUILD / "layers2-model"))
    ap.add_argument("--token-table", help="token vectors under training/build (default emb_init.npy)")
    ap.add_argument("--schedule", help="comma-separated batch sources, e.g. docs,bible,define")
    ap.add_argument("--tag", default="layers2", help="checkpoint name prefix")
    ap.add_argument("--hard-negatives", type=int, help="1: one mined hard negative per pair")
    ap.add_argument("--export-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    P = params_layers()
    for k in ("steps", "lr", "distill", "eval_every", "token_table", "hard_negatives"):
        if getattr(a, k) is not None:
            P[k] = getattr(a, k)
    if a.schedule:
        P["schedule"] = a.schedule.split(",")
    global TAG
    TAG = a.tag
    if not (BUILD / "emb_init.npy").exists():
        raise SystemExit("run training/train_default_model.py --stage data (data, vocab, stats) first")
    if not a.export_only:
        t = time.time()
        ensure_sources(P)
        log(f"docs + bible data {time.time() - t:.0f} s")
        t = time.time()
        train(P)
        log(f"training {(time.time() - t) / 60:.1f} min")
    export(P, Path(a.out))


if __name__ == "__main__":
    main()
