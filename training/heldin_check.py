#!/usr/bin/python3
"""Held-in check of a train_layers.py checkpoint: STS-B train (1,500 sampled pairs, as selection),
SICK *train* and the held-in docs slice, per exit layer x width. Development only: untouched
numbers (STS-B dev, SICK-R test, MS MARCO) come from benchmarks/eval.ts through the runtime.

    nice -n 19 /usr/bin/python3 training/heldin_check.py [CHECKPOINT]   (default training/build/layers2-best.pt)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_layers as t  # noqa: E402
from evalsts import load_sick, spearman  # noqa: E402


def main():
    torch.set_num_threads(2)
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else t.BUILD / "layers2-best.pt"
    P = t.params_layers()
    tok = t.load_tok()
    model = t.build_model(P, tok)
    st = torch.load(path)
    model.load_state_dict(st["model"])
    _, held_q = t.load_sets(P)
    sts, ret = t.evaluate(model, tok, t.selection_data(P), held_q)
    print(f"step {st['step']}\n  STS-B train  {t.fmt(sts)}\n  held-in MRR  {t.fmt(ret)}")
    sick = load_sick()
    if sick is not None:
        ea, eb = t.embed(model, tok, sick[0]), t.embed(model, tok, sick[1])
        res = {}
        for l in ea:
            for d in t.DIMS:
                x, y = F.normalize(ea[l][:, :d], dim=-1), F.normalize(eb[l][:, :d], dim=-1)
                res[(l, d)] = spearman((x * y).sum(-1).numpy(), sick[2])
        print(f"  SICK train   {t.fmt(res)}")


if __name__ == "__main__":
    main()
