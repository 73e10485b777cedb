#!/usr/bin/python3
"""Experiment (issue 17): train the encoder's layers, not the token vectors.

Same corpus statistics as train_default_model.py (run its data/vocab/stats stages first), plus
verse-aligned paraphrases from Debian's two English Bibles (prep_bible.py: sword-text-kjv and
sword-text-web through libsword-utils' mod2vpl). The PPMI-SVD + SIF token vectors stay frozen; the
pre-LN layers start as the identity (zero-initialised residual output projections), so training can
only add through them. Homogeneous batches cycle through Bible verse pairs, dictionary sentence
pairs and word-query -> definition pairs that carry the `query: ` / `document: ` prompts (left out of
pooling, as `include_prompt: false`); InfoNCE over every exit layer x Matryoshka width, deeper layers
weighted more. Selection on STS-B *train* only, as for the default.

    nice -n 19 /usr/bin/python3 training/train_layers_experiment.py [--steps N] [--lr X] [--eval-every N] [--out DIR]

Measured results are in benchmarks/EVAL.md ("Issue 17 experiments"); the default recipe does not
use this, because no run beat the corpus-statistics encoder on every layer.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_model import (BUILD, DIMS, HERE, LAYERS, PROMPTS, batch_prompted, layers_only_model, export_model,  # noqa: E402
                                 info_nce, load_pairs, load_tok, log, mean_pool, params, train_loop)


def params_v2():
    P = params()
    P.update({
        "ffn": 512, "batch": 64, "max_len": 32, "steps": 60, "lr": 5e-5,
        "schedule": ["bible", "dict", "bible", "query"],
        "warmup": 30, "ckpt_every": 20, "eval_every": 20,
    })
    return P


def stage_bible(P):
    if not shutil.which("mod2vpl") or not list(Path("/usr/share/sword/mods.d").glob("engWEB*.conf")) \
            or not list(Path("/usr/share/sword/mods.d").glob("engKJV*.conf")):
        log("installing sword-text-kjv sword-text-web libsword-utils with apt")
        cmd = ["apt-get", "install", "-y", "sword-text-kjv", "sword-text-web", "libsword-utils"]
        if os.geteuid() != 0:
            cmd = ["sudo"] + cmd
        subprocess.run(cmd, check=True)
    subprocess.run([sys.executable, str(HERE / "prep_bible.py")], check=True)


# ------------------------------------------------------------------ training
QUERY_TEMPLATES = ["{w}", "what is {w}", "what does {w} mean", "define {w}", "{w} meaning", "what is a {w}"]


def training_sets(P):
    """Homogeneous batch sources: Bible verse paraphrases (symmetric, no prompt), dictionary
    sentence pairs (symmetric, no prompt), and word-query -> definition pairs (asymmetric, with the
    query/document prompts the model ships)."""
    rng = random.Random(P["seed"])
    bible = [tuple(ln.split("\t")) for ln in (BUILD / "bible.tsv").read_text(encoding="utf-8").splitlines() if "\t" in ln]
    dic = load_pairs(P["pair_kinds"])
    query = []
    for head, d in load_pairs(["gc_head_def", "wn_words_def"]):
        w = head.split(",")[0].strip()
        if w and len(d.split()) >= 3:
            query.append((rng.choice(QUERY_TEMPLATES).format(w=w.lower()), d))
    sets = {"bible": (bible, None, None), "dict": (dic, None, None), "query": (query, "query", "document")}
    return {k: (v[0], [int(i) for i in np.random.RandomState(P["seed"] + j).permutation(len(v[0]))], v[1], v[2])
            for j, (k, v) in enumerate(sets.items())}


def stage_train_layers(P):
    tok, model = layers_only_model(P)
    sets = training_sets(P)
    log("training sets: " + ", ".join(f"{k} {len(v[0])}" for k, v in sets.items()))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=P["lr"], weight_decay=0.01)
    B = P["batch"]
    sched = P["schedule"]

    def step_loss(step):
        kind = sched[step % len(sched)]
        data, perm, pa_name, pb_name = sets[kind]
        k = step // len(sched) * sched.count(kind) + sched[: step % len(sched)].count(kind)
        i0 = (k * B) % len(perm)
        idx = perm[i0 : i0 + B]
        ida, ma, pma = batch_prompted(tok, [data[i][0] for i in idx], pa_name, P["max_len"])
        idb, mb, pmb = batch_prompted(tok, [data[i][1] for i in idx], pb_name, P["max_len"])
        ha = model.hidden_states(ida, ma)
        hb = model.hidden_states(idb, mb)
        loss, n = 0.0, 0
        for l in LAYERS:
            xa, xb = mean_pool(ha[l], pma), mean_pool(hb[l], pmb)
            for d in DIMS:
                loss = loss + l * info_nce(xa[:, :d], xb[:, :d], P["temperature"])
                n += l
        return loss / n, f" ({kind})"

    # no selection data: the last step is the result
    train_loop(P, model, tok, opt, step_loss, trainable, BUILD / "layers-ckpt.pt", BUILD / "layers-best.pt",
               BUILD / "layers-history.json", last_without_selection=True)


def stage_export_layers(P, out):
    export_model(P, load_tok(), BUILD / "layers-best.pt", out, {
        "data": "Debian wordnet-base + dict-gcide (definitions, examples, synonyms) + sword-text-kjv/sword-text-web (verse-aligned paraphrases)",
        "recipe": "PPMI-SVD + SIF token vectors (frozen), zero-initialised residual pre-LN layers trained with InfoNCE and 2D Matryoshka losses; query/document prompts on word-query -> definition pairs",
        "rebuild": "nice -n 19 /usr/bin/python3 training/train_default_model.py --all",
    }, prompts=PROMPTS, include_prompt=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--out", default=str(BUILD / "layers-model"), help="export directory")
    a = ap.parse_args()
    torch.set_num_threads(2)
    P = params_v2()
    for k in ("steps", "lr", "eval_every"):
        if getattr(a, k) is not None:
            P[k] = getattr(a, k)
    if not (BUILD / "emb_init.npy").exists():
        raise SystemExit("run training/train_default_model.py --all (or --stage data ... stats) first")
    if not (BUILD / "bible.tsv").exists():
        stage_bible(P)
    stage_train_layers(P)
    stage_export_layers(P, Path(a.out))


if __name__ == "__main__":
    main()
