#!/usr/bin/python3
"""Regenerates the former random placeholder default model (tools/make_test_models.py, seed 4321)
into OUT_DIR, for the 'untrained' baseline of benchmarks/eval.ts.  Usage: make_untrained.py OUT_DIR"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import make_test_models as m  # noqa: E402

out = Path(sys.argv[1]).resolve()
m.REPO_ROOT = out  # gen_default() writes REPO_ROOT/models/default
m.gen_default()
print(out / "models" / "default")
