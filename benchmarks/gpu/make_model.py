"""Generate the MiniLM-shaped benchmark model with the project's generator, on any torch.

    python3 make_model.py OUT_DIR [--tools DIR]

Runs tools/make_test_models.py's MiniLM generation (`--minilm OUT_DIR`) with two adjustments
that the generator itself does not make, so that one script works with Debian's torch 1.13 here
and with torch 2.11 on the device:

- torch >= 2.9 exports through dynamo by default, which loses the module-scoped node names
  (/encoder/layer.0/...) that the layer splitter relies on: force the TorchScript exporter
  (`dynamo=False`) wherever torch.onnx.export takes that argument.
- the generator's onnx checker step needs the `onnx` package: without it, skip the check (the
  model is written before the check runs); a failed check is reported, not fatal, since the
  benchmark does not depend on node names.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--tools", type=Path, default=None, help="folder holding make_test_models.py")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    tools = args.tools or next(
        (p for p in (here / "tools", here.parent.parent / "tools") if (p / "make_test_models.py").exists()), None
    )
    if tools is None:
        print("make_model: no tools/make_test_models.py beside this script or in the repository", file=sys.stderr)
        return 2

    t0 = time.time()
    import torch

    spec = importlib.util.spec_from_file_location("make_test_models", tools / "make_test_models.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    try:
        import onnx  # noqa: F401

        onnx_version = onnx.__version__
    except ImportError:
        onnx_version = None
    print(f"make_model: torch {torch.__version__}, onnx {onnx_version}, python {sys.version.split()[0]}, generator {tools}")

    export = torch.onnx.export
    if "dynamo" in inspect.signature(export).parameters:

        def export_torchscript(*a, **kw):
            kw.setdefault("dynamo", False)
            return export(*a, **kw)

        gen.torch.onnx.export = export_torchscript
        print("make_model: torch.onnx.export(..., dynamo=False)")

    check = gen.check_onnx

    def tolerant_check(*a, **kw):
        if onnx_version is None:
            print("make_model: onnx is not installed: skipping the generator's onnx check")
            return []
        try:
            return check(*a, **kw)
        except Exception as err:  # the model file is already written
            print(f"make_model: WARNING: the generator's onnx check failed: {type(err).__name__}: {err}")
            return []

    gen.check_onnx = tolerant_check
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 8)))
    gen.gen_minilm(args.out.resolve())
    try:
        torch.onnx.export = export
    except Exception:
        pass
    print(f"make_model: done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
