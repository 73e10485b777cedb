#!/usr/bin/python3
"""Rebuilds models/default from scratch, from Debian-packaged text only:

  data    WordNet + GCIDE (definitions, examples, synonyms), KJV <-> WEB verse pairs, manual
          heading -> paragraph pairs (debian-handbook, python3.11-doc, perl-doc, gnome-user-docs)
  vocab   WordPiece vocabulary from the dictionary corpus
  stats   PPMI-SVD token vectors over the dictionary corpus plus the Bibles' and manuals' prose, SIF
          weights from the dictionary corpus, an exact-match component per token (emb_init.npy)
  table   paraphrastic training of the token table as a word-averaging model (train_tokens.py):
          InfoNCE at every Matryoshka width on verse pairs, dictionary sentence pairs, heading ->
          paragraph pairs, headword -> definition pairs (DefSent-style) and search-style questions
          about a headword -> its definition; held-in selection
  export  the identity-initialised pre-LN encoder over the trained table -> ONNX + tokenizer + configs

    nice -n 19 /usr/bin/python3 training/train_default_model.py --all      # everything (~8 min on 2 cores)
    ... --stage table|export [--only]                                      # resume from a stage

Intermediate files go to training/build/ (git-ignored). Nothing depends on wall-clock time, so the
process may be paused (SIGSTOP/SIGCONT) at any point. Evaluation sets from ../shared are read only
for selection on STS-B *train* and SICK *train* (never for training); without them the last step
is exported. Layer training (train_layers.py) is an experiment: it did not beat the trained table
on held-in data (benchmarks/EVAL.md), so the shipped layers are the identity.
"""
from __future__ import annotations

import argparse
import glob
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
OUT = ROOT / "models" / "default"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tools"))

from model import BertModel, encoder_config, init_identity, mean_pool  # noqa: E402
from wordpiece import FastWordPiece, train_wordpiece, word_counts  # noqa: E402

DIMS = [32, 64, 128, 256]
LAYERS = [1, 2, 3, 4]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def params():
    return {
        "vocab_size": 16000, "hidden": 256, "layers": 4, "heads": 4, "ffn": 1024, "max_pos": 256,
        "svd_window": 5, "sif_a": 1e-3, "lexical_beta": 2.0, "seed": 20240611,
        # table stage (train_tokens.py): batches cycle through the kinds; selection every eval_every steps
        "table_kinds": ["bible", "dict", "docs", "define", "ask"], "table_steps": 4000, "table_lr": 2e-3,
        "table_batch": 512, "table_eval_every": 2000, "table_prompts": True, "temperature": 0.05,
        "table_negations": True, "table_negation_margin": 0.1, "table_negation_max_words": 15,
        # shared with the layer experiments (train_layers.py)
        "batch": 128, "warmup": 50, "ckpt_every": 30, "eval_every": 30, "select_pairs": 1500,
    }


# ------------------------------------------------------------------ stages
def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """The learning-rate factor of the training stages: linear warm-up, then cosine decay to 0."""
    return min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


def apt_install(packages: list[str]) -> None:
    log(f"installing {' '.join(packages)} with apt")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + packages
    subprocess.run(cmd if os.geteuid() == 0 else ["sudo"] + cmd, check=True)


# the Debian packages each source needs, and a file (pattern) that shows it is installed
SOURCES = {
    "wordnet-base": "/usr/share/wordnet/data.noun", "dict-gcide": "/usr/share/dictd/gcide.dict.dz",
    "sword-text-kjv": "/usr/share/sword/mods.d/engKJV*.conf", "sword-text-web": "/usr/share/sword/mods.d/engWEB*.conf",
    "libsword-utils": "/usr/bin/mod2vpl", "debian-handbook": "/usr/share/doc/debian-handbook/html/en-US",
    "python3.11-doc": "/usr/share/doc/python3.11/html/_sources", "perl-doc": "/usr/share/perl/5.36/pod/perlfaq4.pod",
    "gnome-user-docs": "/usr/share/help/C/gnome-help",
}


def stage_data(P):
    missing = [pkg for pkg, pattern in SOURCES.items() if not glob.glob(pattern)]
    if missing:
        apt_install(missing)
    for script in ("prep_data.py", "prep_bible.py", "prep_docs.py"):
        subprocess.run([sys.executable, str(HERE / script)], check=True)


def read_corpus():
    return [ln for ln in (BUILD / "corpus.txt").read_text(encoding="utf-8").split("\n") if ln]


def read_prose():
    """Both Bibles' verses and the manuals' headings and paragraphs, one text per line."""
    out = []
    for ln in (BUILD / "bible.tsv").read_text(encoding="utf-8").split("\n"):
        out += [x for x in ln.split("\t")[:2] if x]
    for ln in (BUILD / "docs.tsv").read_text(encoding="utf-8").split("\n"):
        out += [x for x in ln.split("\t")[1:3] if x]
    return out


def stage_vocab(P):
    lines = read_corpus()
    counts = word_counts(lines)
    vocab = train_wordpiece(counts, P["vocab_size"])
    (BUILD / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    log(f"vocab: {len(vocab)} tokens from {len(counts)} word types")


def load_tok():
    return FastWordPiece(json.loads((BUILD / "vocab.json").read_text(encoding="utf-8")))


def stage_stats(P):
    from stats import encode_corpus, ppmi_svd, token_probs
    tok = load_tok()
    V = len(tok.vocab)
    dictionary = encode_corpus(tok, read_corpus())
    # frequencies (the SIF weights) from the dictionary corpus; co-occurrences from it and the prose
    p = token_probs(dictionary, V)
    seqs = dictionary + encode_corpus(tok, read_prose())
    vec, S = ppmi_svd(seqs, V, P["hidden"], window=P["svd_window"], seed=P["seed"])
    nv = vec / (np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9)
    # exact-match (lexical) component: a random direction per token, as a sketch of TF-IDF
    R = np.random.RandomState(P["seed"]).randn(V, P["hidden"])
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    w = P["sif_a"] / (P["sif_a"] + p)
    emb = (nv + P["lexical_beta"] * R) * w[:, None]
    for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"):
        emb[tok.ids[t]] = 0.0
    np.save(BUILD / "emb_init.npy", emb.astype(np.float32))
    np.save(BUILD / "token_probs.npy", p)
    log(f"stats: {sum(len(s) for s in seqs)} tokens, top singular values {S[:4].round(1).tolist()}")


# ------------------------------------------------------------------ model helpers
def build_model(P, tok):
    cfg = encoder_config(len(tok.vocab), P["hidden"], P["layers"], P["heads"], P["ffn"], P["max_pos"])
    if P.get("residual_scaling"):
        cfg["residual_scaling"] = P["residual_scaling"]
        what = {"token_norm": "with token-norm-scaled residual branches", "gate": "whose layers only rescale tokens"}
        cfg["note"] = cfg["note"].replace("pre-LN BERT variant", f"pre-LN BERT variant {what[P['residual_scaling']]}")
    torch.manual_seed(P["seed"])
    model = BertModel(cfg)
    init_identity(model, torch.from_numpy(np.load(BUILD / P.get("token_table", "emb_init.npy"))), P["seed"])
    return model


def batch_ids(tok, texts, max_len):
    enc = [tok.encode(t, max_len) for t in texts]
    L = max(len(e) for e in enc)
    ids = torch.zeros(len(enc), L, dtype=torch.long)
    mask = torch.zeros(len(enc), L, dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return ids, mask


def selection_data(P):
    from evalsts import load_stsb
    d = load_stsb("train")
    if d is None:
        return None
    rng = random.Random(P["seed"])
    idx = sorted(rng.sample(range(len(d[2])), min(P["select_pairs"], len(d[2]))))
    return [d[0][i] for i in idx], [d[1][i] for i in idx], d[2][idx]


# ------------------------------------------------------------------ layer experiments (train_layers.py)
def layers_only_model(P):
    """The seeded model with its corpus-statistics token vectors frozen (the layer-training
    experiments): training can only add through the layers, whose residual branches start at zero."""
    torch.manual_seed(P["seed"])
    tok = load_tok()
    model = build_model(P, tok)
    for n, p in model.named_parameters():
        p.requires_grad = not n.startswith("embeddings.")
    return tok, model


# The query/document prompts the table stage trains with (and the default ships), also used by train_layers.py.
PROMPTS = {"query": "query: ", "document": "document: "}


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


# ------------------------------------------------------------------ export
def export_model(P, tok, best_path, out, embedder_training, prompts=None, include_prompt=True):
    """The selected checkpoint as a model directory: ONNX, tokenizer and sentence-transformers files,
    embedder.json with the Matryoshka dimensions, exit layers and `embedder_training`."""
    from make_test_models import bert_scopes, check_onnx, dir_report, export_onnx, write_bert_aux, write_json
    model = build_model(P, tok)
    st = torch.load(best_path)
    model.load_state_dict(st["model"])
    model.eval()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids, mask = batch_ids(tok, ["A man is playing a guitar.", "hi"], 64)
    export_onnx(model, (ids, mask, torch.zeros_like(ids)), names, out / "model.onnx")
    check_onnx(out / "model.onnx", names, P["hidden"], bert_scopes(P["layers"]))
    write_bert_aux(out, model.config, max_seq_length=P["max_pos"], model_max_length=P["max_pos"],
                   prompts=prompts or {}, vocab=tok.vocab)
    if not include_prompt:
        # trained with the prompt tokens left out of pooling: they act only through the layers' attention
        pool_cfg = json.loads((out / "1_Pooling" / "config.json").read_text())
        pool_cfg["include_prompt"] = False
        write_json(out / "1_Pooling" / "config.json", pool_cfg)
    write_json(out / "embedder.json", {
        "matryoshka_dimensions": DIMS,
        "exit_layers": LAYERS,
        "training": {**embedder_training, "selected_step": st["step"]},
    })
    # ONNX Runtime is not available in Debian python, so the ONNX file is checked at the service
    # level (benchmarks/eval.ts); this is torch's own sanity line.
    with torch.no_grad():
        ids, mask = batch_ids(tok, ["A man is playing a guitar.", "Someone plays an instrument.",
                                    "The stock market fell today."], 64)
        v = F.normalize(mean_pool(model.hidden_states(ids, mask)[-1], mask), dim=-1)
        log(f"guitar~instrument {float(v[0] @ v[1]):.3f}  guitar~stock market {float(v[0] @ v[2]):.3f}")
    dir_report(out)


DEFAULT_TRAINING = {
    "data": "Debian wordnet-base + dict-gcide (definitions, examples, synonyms), sword-text-kjv + sword-text-web "
            "(verse pairs), debian-handbook + python3.11-doc + perl-doc + gnome-user-docs (heading -> paragraph)",
    "recipe": "PPMI-SVD + SIF token vectors, trained as a word-averaging model with InfoNCE at every Matryoshka "
              "width (paraphrase, heading -> paragraph, headword -> definition and question -> definition pairs), "
              "each short sentence's rule-built negation a hard negative 0.1 below its paraphrase (hinge); "
              "identity pre-LN layers",
    "rebuild": "npm run model:train",
}


def stage_table(P):
    from train_tokens import train_table
    rec = train_table(P, BUILD / "emb_init.npy", BUILD / "emb_tokens.npy")
    (BUILD / "table.json").write_text(json.dumps({"selected_step": rec["step"], "score": rec["score"]}))


def stage_export(P):
    """The encoder over the trained table; its layers are the identity (no layer training beat the table)."""
    tok = load_tok()
    P = {**P, "token_table": "emb_tokens.npy"}
    torch.save({"model": build_model(P, tok).state_dict(), "step": 0}, BUILD / "best.pt")
    table = json.loads((BUILD / "table.json").read_text())
    # with prompts, the prompt's own tokens are pooled (include_prompt: true): at layer 0 a prompt is
    # the trained offset its tokens add to the sum, the only way a word average can tell queries apart
    export_model(P, tok, BUILD / "best.pt", OUT, {**DEFAULT_TRAINING, "table_step": table["selected_step"]},
                 prompts=PROMPTS if P["table_prompts"] else None)


STAGES = ["data", "vocab", "stats", "table", "export"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="run every stage from scratch (clears training/build)")
    ap.add_argument("--stage", choices=STAGES, help="start at this stage")
    ap.add_argument("--only", action="store_true", help="run only --stage")
    ap.add_argument("--steps", type=int, help="override the number of table training steps")
    a = ap.parse_args()
    torch.set_num_threads(2)
    P = params()
    if a.steps is not None:
        P["table_steps"] = a.steps
    if a.all:
        if BUILD.exists():
            shutil.rmtree(BUILD)
        start = 0
    elif a.stage:
        start = STAGES.index(a.stage)
    else:
        ap.error("give --all or --stage")
    BUILD.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    todo = STAGES[start : start + 1] if a.only else STAGES[start:]
    for s in todo:
        log(f"== stage {s}")
        globals()[f"stage_{s}"](P)
    log(f"done in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
