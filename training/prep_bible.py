#!/usr/bin/python3
"""Verse-aligned paraphrase pairs from the two English Bibles Debian ships as SWORD modules.

`sword-text-kjv` (King James Version) and `sword-text-web` (World English Bible) say the same
thing verse by verse in different words (1611 vs modern English): ~30k sentence-level paraphrase
pairs. `mod2vpl` (libsword-utils) dumps a module as one "Book C:V text" line per verse; the markup
(Strong's numbers, translators' additions, paragraph marks) is stripped and WEB's footnotes
(<note>...</note>) are dropped with their text.

Output: training/build/bible.tsv   kjv \t web   (verse order; deterministic)
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "build"
MODS = Path("/usr/share/sword/mods.d")
REF = re.compile(r"^((?:[1-4] )?[A-Z][A-Za-z ()]*?) (\d+):(\d+) (.*)$")


def module_name(conf_prefix: str) -> str:
    """The module's name is the [section] of its .conf file (engKJV2006eb, engWEB2015eb, ...)."""
    for conf in sorted(MODS.glob(f"{conf_prefix}*.conf")):
        for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("[") and line.rstrip().endswith("]"):
                return line.strip()[1:-1]
    raise SystemExit(f"no SWORD module {conf_prefix}* in {MODS} (apt-get install sword-text-kjv sword-text-web)")


def clean(markup: str) -> str:
    s = re.sub(r"<note\b.*?</note>", " ", markup, flags=re.S)
    s = re.sub(r"<[^>]+>", " ", s)
    s = s.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r"\s+([,.;:?!])", r"\1", s)


def verses(module: str) -> dict[str, str]:
    dump = subprocess.run(["mod2vpl", module, "1"], check=True, capture_output=True, text=True).stdout
    out: dict[str, str] = {}
    for line in dump.splitlines():
        m = REF.match(line)
        if not m or m.group(3) == "0":
            continue
        text = clean(m.group(4))
        if len(text) >= 12:
            out[f"{m.group(1)} {m.group(2)}:{m.group(3)}"] = text
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    kjv = verses(module_name("engKJV"))
    web = verses(module_name("engWEB"))
    n = 0
    with open(OUT / "bible.tsv", "w", encoding="utf-8") as f:
        for ref, a in kjv.items():
            b = web.get(ref)
            if b and a.lower() != b.lower():
                f.write(f"{a}\t{b}\n")
                n += 1
    print(f"bible: {len(kjv)} KJV verses, {len(web)} WEB verses, {n} aligned pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
