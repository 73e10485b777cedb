#!/usr/bin/python3
"""Re-export the shipped models/default through the training code, into OUT_DIR.

The shipped model's layers are the identity (training/model.py `init_identity`, fixed seed); only its
token vectors were trained (train_default_model.py's `table` stage). Those vectors are read back from
the shipped ONNX file, the training record and prompts from its embedder.json and sentence-transformers
config; every other weight comes from the seed. The export then runs through train_default_model.py's
`export_model`, so OUT_DIR equals models/default byte for byte exactly when the one model definition
and the export path still produce what `npm run model:train` shipped (tests/default-model.test.ts).

    /usr/bin/python3 training/reexport_default.py OUT_DIR

Exit status 3 when the shipped model's layers are not the seeded identity (they cannot be rebuilt here).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train_default_model as t  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    shipped = t.OUT
    step = json.loads((shipped / "embedder.json").read_text())["training"]["selected_step"]
    if step != 0:
        print(f"models/default is training step {step}, not step 0: its weights cannot be rebuilt here", file=sys.stderr)
        return 3
    graph = onnx.load(str(shipped / "model.onnx")).graph
    emb = next(i for i in graph.initializer if i.name == "embeddings.word_embeddings.weight")
    vocab = (shipped / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as build:
        t.BUILD = Path(build)
        (t.BUILD / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        np.save(t.BUILD / "emb_init.npy", numpy_helper.to_array(emb))
        P = t.params()
        tok = t.load_tok()
        torch.save({"model": t.build_model(P, tok).state_dict(), "step": 0}, t.BUILD / "best.pt")
        training = json.loads((shipped / "embedder.json").read_text())["training"]
        del training["selected_step"]  # export_model writes it from the checkpoint
        prompts = json.loads((shipped / "config_sentence_transformers.json").read_text())["prompts"]
        t.export_model(P, tok, t.BUILD / "best.pt", out, training, prompts=prompts or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
