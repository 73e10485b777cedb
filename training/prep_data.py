#!/usr/bin/python3
"""Turn Debian's wordnet-base and dict-gcide into a text corpus and positive pairs.

Outputs (under training/build/):
  corpus.txt  one text per line (definitions, examples, quotations) for vocabulary + PPMI statistics
  pairs.tsv   kind \t text_a \t text_b   positive pairs for contrastive training

Only Debian-packaged dictionary text is read; nothing from ../shared/assets/eval.
"""
from __future__ import annotations

import gzip
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

WN_DIR = Path("/usr/share/wordnet")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
OUT = Path(__file__).resolve().parent / "build"

POS_WN = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}


def clean_ws(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# ---------------------------------------------------------------- WordNet
def read_wordnet():
    """Yields dicts: pos, words (list), defs (list), examples (list)."""
    for name in ("noun", "verb", "adj", "adv"):
        with open(WN_DIR / f"data.{name}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                head, _, gloss = line.partition(" | ")
                parts = head.split()
                pos = POS_WN[parts[2]]
                n = int(parts[3], 16)
                words = []
                for i in range(n):
                    w = parts[4 + 2 * i]
                    w = re.sub(r"\([a-z]+\)$", "", w)  # adjective markers (a), (p), (ip)
                    words.append(w.replace("_", " "))
                examples = [clean_ws(e) for e in re.findall(r'"([^"]+)"', gloss)]
                rest = re.sub(r'"[^"]*"', "", gloss)
                defs = [clean_ws(d) for d in rest.split(";")]
                defs = [d for d in defs if len(d) > 2]
                yield {"pos": pos, "words": words, "defs": defs, "examples": examples}


# ---------------------------------------------------------------- GCIDE
ACCENTS = {
    "[a^]": "a", "[e^]": "e", "[i^]": "i", "[o^]": "o", "[u^]": "u", "[=a]": "a", "[=e]": "e",
    "[=i]": "i", "[=o]": "o", "[=u]": "u", "[ae]": "ae", "[oe]": "oe", "[AE]": "AE", "[OE]": "OE",
    "[\"e]": "e", "[\"a]": "a", "[\"o]": "o", "[\"u]": "u", "[\"i]": "i", "[ng]": "ng", "[deg]": " degrees",
    "[.a]": "a", "[.e]": "e", "[.o]": "o", "[.u]": "u", "[-]": "-", "[--]": " - ",
}


def gc_clean(s: str) -> str:
    for k, v in ACCENTS.items():
        s = s.replace(k, v)
    s = re.sub(r"\[[^\]]{0,4}\]", "", s)  # other accent codes
    s = re.sub(r"\[(?:Obs|R|Colloq|Archaic|Poetic|Prov\. Eng|Scot|U\. S|Eng|Local|Low|Slang|Cant)[^\]]*\]", "", s)
    s = re.sub(r"\[(?:1913 Webster|Webster 1913 Suppl\.|PJC|WordNet 1\.5|Century Dict\.|Chambers 1881|Whitney)[^\]]*\]", "", s)
    s = s.replace("{", "").replace("}", "").replace("\\", "")
    s = re.sub(r"--\s?[A-Z][\w.' ]{0,40}\.?", " ", s)  # --Shak. citations
    s = re.sub(r"\((?:[A-Z][a-z]+\.?\s?)+\)", " ", s)  # (Zool.) (Mining) field labels
    return clean_ws(s)


def read_gcide():
    """Yields (headword, pos, [sense definitions], [examples], [quotations])."""
    raw = gzip.open(GCIDE).read().decode("utf-8", errors="replace")
    lines = raw.split("\n")
    entries, cur = [], []
    for ln in lines:
        if ln and not ln[0].isspace() and " \\" in ln and cur and (not cur[-1].strip()):
            entries.append(cur)
            cur = []
        cur.append(ln)
    if cur:
        entries.append(cur)
    for ent in entries:
        m = re.match(r"^([^\\]+?) \\", ent[0])
        if not m:
            continue
        head = m.group(1).strip()
        if head.startswith("00-"):
            continue
        hdr = ent[0]
        pm = re.search(r"\\,?\s*(?:\([^)]*\),?\s*)?(n|v\. ?t|v\. ?i|v|a|adv|prep|conj|interj|pron|p\. ?p|imp)\.", hdr)
        pos = pm.group(1)[0] if pm else "?"
        pos = {"n": "n", "v": "v", "a": "a", "p": "v", "i": "v"}.get(pos, pos)
        if pos == "a" and pm and pm.group(1) == "adv":
            pos = "r"
        # body: skip header lines up to the first line that closes the etymology bracket
        body = []
        quotes = []
        in_hdr = True
        for ln in ent[1:]:
            if in_hdr:
                if ln.startswith("   ") and not ln.startswith("      ") and not ln.rstrip().endswith("]") and ("]" not in ln or ln.strip().startswith("1.")):
                    in_hdr = False
                else:
                    # header continuation lines end with '.]' etc.
                    if ln.strip().endswith("]") or ln.strip().endswith("].") or not ln.strip():
                        in_hdr = False
                    continue
            if ln.startswith("            "):  # quotation block
                quotes.append(ln.strip())
                continue
            body.append(ln)
        text = "\n".join(body)
        senses = re.split(r"\n\s*\d+\.\s", "\n" + text)
        defs, exs = [], []
        for s in senses:
            s = gc_clean(s)
            if not s or s.startswith("Syn:") or s.startswith("Note:"):
                continue
            s = s.split(" Syn: ")[0].split(" Note: ")[0]
            # "as, a bank of clouds; a bank of snow."
            d, _, ex = s.partition("; as, ")
            if not _:
                d, _, ex = s.partition(": as, ")
            d = d.strip(" ;:.")
            if 3 < len(d) < 400 and not d.startswith("See "):
                defs.append(d)
            if ex:
                for e in ex.split(";"):
                    e = e.strip(" .")
                    if len(e) > 8:
                        exs.append(e)
        qs = []
        if quotes:
            q = gc_clean(" ".join(quotes))
            if len(q) > 20:
                qs.append(q)
        yield head, pos, defs, exs, qs


def main() -> int:
    rng = random.Random(1234)
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = []
    pairs = []
    wn_by_word = defaultdict(list)  # (lemma lower, pos) -> [definition]
    n_syn = 0
    for syn in read_wordnet():
        n_syn += 1
        words, defs, exs = syn["words"], syn["defs"], syn["examples"]
        full_def = "; ".join(defs)
        corpus.append(full_def)
        corpus.extend(exs)
        for w in words:
            wn_by_word[(w.lower(), syn["pos"])].append(full_def)
        if not defs:
            continue
        # lemma + synonyms <-> definition (DefSent-style)
        pairs.append(("wn_words_def", ", ".join(words), full_def))
        if len(words) > 1:
            a, b = rng.sample(words, 2)
            pairs.append(("wn_syn", a, b))
        for e in exs:
            pairs.append(("wn_def_ex", full_def, e))
            # paraphrase by synonym substitution inside the example
            low = e.lower()
            for w in words:
                if len(words) > 1 and re.search(r"\b" + re.escape(w.lower()) + r"\b", low):
                    other = rng.choice([x for x in words if x != w])
                    para = re.sub(r"\b" + re.escape(w) + r"\b", other, e, flags=re.I)
                    if para != e:
                        pairs.append(("wn_ex_sub", e, para))
                    break
        if len(exs) > 1:
            a, b = rng.sample(exs, 2)
            pairs.append(("wn_ex_ex", a, b))
    print(f"wordnet: {n_syn} synsets")

    n_ent = 0
    for head, pos, defs, exs, qs in read_gcide():
        n_ent += 1
        corpus.extend(defs)
        corpus.extend(exs)
        corpus.extend(qs)
        if not defs:
            continue
        for d in defs[:4]:
            pairs.append(("gc_head_def", head, d))
        for e in exs[:2]:
            pairs.append(("gc_def_ex", defs[0], e))
        # the same word's definitions in the two dictionaries: align by word overlap
        wn = wn_by_word.get((head.lower(), pos))
        if wn:
            for d in defs[:3]:
                dw = set(re.findall(r"[a-z]+", d.lower()))
                best, bs = None, 0.0
                for w in wn:
                    ww = set(re.findall(r"[a-z]+", w.lower()))
                    j = len(dw & ww) / (len(dw | ww) + 1e-9)
                    if j > bs:
                        best, bs = w, j
                if best is not None and (bs > 0.12 or (len(wn) == 1 and len(defs) == 1)):
                    pairs.append(("wn_gc_def", d, best))
    print(f"gcide: {n_ent} entries")

    corpus = [c for c in corpus if c]
    with open(OUT / "corpus.txt", "w", encoding="utf-8") as f:
        for c in corpus:
            f.write(c.replace("\n", " ") + "\n")
    seen = set()
    out = []
    for k, a, b in pairs:
        a, b = clean_ws(a), clean_ws(b)
        if not a or not b or a.lower() == b.lower() or (a, b) in seen:
            continue
        seen.add((a, b))
        out.append((k, a, b))
    rng.shuffle(out)
    with open(OUT / "pairs.tsv", "w", encoding="utf-8") as f:
        for k, a, b in out:
            f.write(f"{k}\t{a}\t{b}\n")
    kinds = defaultdict(int)
    for k, _, _ in out:
        kinds[k] += 1
    ntok = sum(len(c.split()) for c in corpus)
    print(f"corpus: {len(corpus)} lines, {ntok} whitespace tokens; pairs: {len(out)} {dict(kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
