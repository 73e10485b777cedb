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
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_model import (BUILD, DIMS, HERE, LAYERS, ROOT, batch_ids, build_model, fmt_grid,  # noqa: E402
                                 grid_spearman, load_tok, log, mean_pool, params, selection_data, selection_score)


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
PROMPTS = {"query": "query: ", "document": "document: "}
QUERY_TEMPLATES = ["{w}", "what is {w}", "what does {w} mean", "define {w}", "{w} meaning", "what is a {w}"]


def load_pairs(kinds=None):
    pairs = []
    with open(BUILD / "pairs.tsv", encoding="utf-8") as f:
        for ln in f:
            k, a, b = ln.rstrip("\n").split("\t")
            if kinds is None or k in kinds:
                pairs.append((a, b))
    return pairs


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


def batch_prompted(tok, texts, prompt, max_len):
    """Token ids with the prompt prepended, plus the pooling mask that leaves [CLS] and the prompt
    out (sentence-transformers' include_prompt: false, as the runtime does)."""
    skip = 0
    if prompt:
        texts = [PROMPTS[prompt] + t for t in texts]
        skip = len(tok.encode(PROMPTS[prompt], max_len)) - 1
    ids, mask = batch_ids(tok, texts, max_len)
    pmask = mask.clone()
    pmask[:, :skip] = 0
    return ids, mask, pmask


def info_nce(x, y, temp):
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = x @ y.t() / temp
    target = torch.arange(x.size(0))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def stage_train_layers(P):
    torch.manual_seed(P["seed"])
    tok = load_tok()
    model = build_model(P, tok)
    # the corpus-statistics token vectors stay frozen: training can only add through the layers,
    # whose residual branches start at zero
    for n, p in model.named_parameters():
        p.requires_grad = not n.startswith("embeddings.")
    sets = training_sets(P)
    log("training sets: " + ", ".join(f"{k} {len(v[0])}" for k, v in sets.items()))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=P["lr"], weight_decay=0.01)
    ckpt = BUILD / "layers-ckpt.pt"
    best_path = BUILD / "layers-best.pt"
    step, best = 0, -1.0
    history = []
    if ckpt.exists():
        st = torch.load(ckpt)
        if st.get("params") == P:
            model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
            step, best, history = st["step"], st["best"], st["history"]
            log(f"resumed at step {step} (best selection score {best:.4f})")
    sel = selection_data(P)
    if step == 0:
        if sel is not None:
            res = grid_spearman(model, tok, sel)
            best = selection_score(res)
            history.append({"step": 0, "score": best, "grid": {f"{l},{d}": v for (l, d), v in res.items()}})
            log(f"init  selection {best:.4f}  {fmt_grid(res)}")
        torch.save({"model": model.state_dict(), "step": 0}, best_path)
    B = P["batch"]
    sched = P["schedule"]
    t_last = time.process_time()
    while step < P["steps"]:
        kind = sched[step % len(sched)]
        data, perm, pa_name, pb_name = sets[kind]
        k = step // len(sched) * sched.count(kind) + sched[: step % len(sched)].count(kind)
        i0 = (k * B) % len(perm)
        idx = perm[i0 : i0 + B]
        f = min(1.0, (step + 1) / P["warmup"]) * 0.5 * (1 + math.cos(math.pi * step / P["steps"]))
        for g in opt.param_groups:
            g["lr"] = P["lr"] * f
        model.train()
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
        loss = loss / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            cpu = time.process_time() - t_last
            t_last = time.process_time()
            log(f"step {step} ({kind}) loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} cpu-s/10 steps {cpu:.1f}")
        if sel is not None and (step % P["eval_every"] == 0 or step == P["steps"]):
            res = grid_spearman(model, tok, sel)
            sc = selection_score(res)
            history.append({"step": step, "score": sc, "grid": {f"{l},{d}": v for (l, d), v in res.items()}})
            log(f"eval step {step} selection {sc:.4f} (best {best:.4f})  {fmt_grid(res)}")
            if sc > best:
                best = sc
                torch.save({"model": model.state_dict(), "step": step}, best_path)
        if step % P["ckpt_every"] == 0 or step == P["steps"]:
            tmp = BUILD / "layers-ckpt.pt.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                        "history": history, "params": P}, tmp)
            os.replace(tmp, ckpt)
    if sel is None:  # no selection data: the last step
        torch.save({"model": model.state_dict(), "step": step}, best_path)
    (BUILD / "layers-history.json").write_text(json.dumps(history, indent=1))
    log(f"training done; selected step {torch.load(best_path)['step']}")


def stage_export_layers(P, out):
    from make_test_models import bert_scopes, bert_tokenizer_json, check_onnx, dir_report, export_onnx, write_bert_aux, write_json
    tok = load_tok()
    model = build_model(P, tok)
    st = torch.load(BUILD / "layers-best.pt")
    model.load_state_dict(st["model"])
    model.eval()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids, mask = batch_ids(tok, ["A man is playing a guitar.", "hi"], 64)
    export_onnx(model, (ids, mask, torch.zeros_like(ids)), names, out / "model.onnx")
    check_onnx(out / "model.onnx", names, P["hidden"], bert_scopes(P["layers"]))
    cfg = model.config
    write_bert_aux(out, cfg, max_seq_length=P["max_pos"], model_max_length=P["max_pos"], prompts=PROMPTS, vocab=tok.vocab)
    # trained with the prompt tokens left out of pooling: they act only through the layers' attention
    pool_cfg = json.loads((out / "1_Pooling" / "config.json").read_text())
    pool_cfg["include_prompt"] = False
    write_json(out / "1_Pooling" / "config.json", pool_cfg)
    write_json(out / "embedder.json", {
        "matryoshka_dimensions": DIMS,
        "exit_layers": LAYERS,
        "training": {
            "data": "Debian wordnet-base + dict-gcide (definitions, examples, synonyms) + sword-text-kjv/sword-text-web (verse-aligned paraphrases)",
            "recipe": "PPMI-SVD + SIF token vectors (frozen), zero-initialised residual pre-LN layers trained with InfoNCE and 2D Matryoshka losses; query/document prompts on word-query -> definition pairs",
            "rebuild": "nice -n 19 /usr/bin/python3 training/train_default_model.py --all",
            "selected_step": st["step"],
        },
    })
    # sanity: ONNX Runtime is not available in Debian python, so compare onnx vs torch via onnx's reference? skip;
    # the service-level check is benchmarks/eval.ts.
    with torch.no_grad():
        hs = model.hidden_states(*batch_ids(tok, ["A man is playing a guitar.", "Someone plays an instrument.",
                                                   "The stock market fell today."], 64))
        ids, mask = batch_ids(tok, ["A man is playing a guitar.", "Someone plays an instrument.",
                                    "The stock market fell today."], 64)
        v = F.normalize(mean_pool(hs[-1], mask), dim=-1)
        log(f"guitar~instrument {float(v[0] @ v[1]):.3f}  guitar~stock market {float(v[0] @ v[2]):.3f}")
    dir_report(out)


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
