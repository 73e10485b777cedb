#!/usr/bin/python3
"""Retrieval-shaped pairs from Debian-packaged prose: section heading -> a paragraph of that section.

E5 and KaLM-Embedding pre-train on (title, passage) pairs mined from the web; Debian ships the same
shape of text in its manuals. Sources (all from apt; installed by the training script when missing):

  debian-handbook   /usr/share/doc/debian-handbook/html/en-US/*.html     DocBook HTML: h1-h4 titles, div.para
  python3.11-doc    /usr/share/doc/python3.11/html/_sources/**/*.rst.txt reStructuredText: underlined titles
  perl-doc          /usr/share/perl/5.36/pod/*.pod                       POD: =head1/=head2 (perlfaq: questions)
  gnome-user-docs   /usr/share/help/C/*/*.page                           Mallard XML: page/section titles, desc, p

A pair is (heading, paragraph) for up to the first three prose paragraphs (>= 8 words) under each
heading; the heading is prefixed by its page title when it is too generic to stand alone (< 3 words).
Inline markup is reduced to its text; code blocks, tables and lists of options are skipped.

Output: training/build/docs.tsv   source \t heading \t paragraph   (deterministic file order)
"""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

OUT = Path(__file__).resolve().parent / "build"
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
PYDOC = Path("/usr/share/doc/python3.11/html/_sources")
PERLPOD = Path("/usr/share/perl/5.36/pod")
MALLARD = Path("/usr/share/help/C")
PARAS_PER_HEADING = 3
MIN_WORDS = 8
MAX_CHARS = 600


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def keep_para(p: str) -> bool:
    words = p.split()
    if len(words) < MIN_WORDS:
        return False
    letters = sum(c.isalpha() for c in p)
    return letters >= 0.6 * len(p)  # mostly prose, not code or paths


def clip(p: str) -> str:
    if len(p) <= MAX_CHARS:
        return p
    cut = p[:MAX_CHARS]
    dot = cut.rfind(". ")
    return cut[: dot + 1] if dot > 200 else cut.rsplit(" ", 1)[0]


# ------------------------------------------------------------------ debian-handbook (DocBook HTML)
class HandbookParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections: list[tuple[str, list[str]]] = []
        self.mode = None  # "title" | "para" | None
        self.depth = 0
        self.buf: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "pre":
            self.skip += 1
        if self.mode is None and tag in ("h1", "h2", "h3", "h4") and "title" in (a.get("class") or ""):
            self.mode, self.buf = "title", []
        elif self.mode is None and tag == "div" and a.get("class") == "para":
            self.mode, self.buf, self.depth = "para", [], 0
        elif self.mode == "para" and tag == "div":
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "pre":
            self.skip -= 1
        if self.mode == "title" and tag in ("h1", "h2", "h3", "h4"):
            t = re.sub(r"^(Chapter )?[\d.A-Z]*\d\.?\s+", "", clean("".join(self.buf)))
            self.sections.append((t, []))
            self.mode = None
        elif self.mode == "para" and tag == "div":
            if self.depth == 0:
                if self.sections:
                    self.sections[-1][1].append(clean("".join(self.buf)))
                self.mode = None
            else:
                self.depth -= 1

    def handle_data(self, data):
        if self.mode and not self.skip:
            self.buf.append(data)


def handbook():
    for f in sorted(HANDBOOK.glob("*.html")):
        p = HandbookParser()
        p.feed(f.read_text(encoding="utf-8", errors="replace"))
        page = p.sections[0][0] if p.sections else ""
        for title, paras in p.sections:
            yield "handbook", page, title, paras


# ------------------------------------------------------------------ python3.11-doc (reST sources)
RST_ROLE = re.compile(r":[a-z:]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`")
RST_UNDER = re.compile(r"^([=\-~^\"'*+#])\1{2,}\s*$")


def rst_inline(t: str) -> str:
    t = RST_ROLE.sub(r"\1", t)
    t = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", t)
    t = t.replace("``", "").replace("`", "").replace("**", "").replace("|", "")
    return clean(t.replace("\\", ""))


def python_docs():
    for f in sorted(PYDOC.rglob("*.rst.txt")):
        if f.parts[-2] in ("whatsnew", "c-api") or f.name.startswith("changelog"):
            continue
        lines = f.read_text(encoding="utf-8", errors="replace").split("\n")
        sections: list[tuple[str, list[str]]] = []
        i = 0
        para: list[str] = []

        def flush():
            if para and sections:
                sections[-1][1].append(rst_inline(" ".join(para)))
            para.clear()

        while i < len(lines):
            ln = lines[i]
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if RST_UNDER.match(ln) and i + 2 < len(lines) and RST_UNDER.match(lines[i + 2]):  # over+underline
                flush()
                sections.append((rst_inline(nxt), []))
                i += 3
                continue
            if ln.strip() and not ln.startswith(" ") and RST_UNDER.match(nxt) and len(nxt.strip()) >= len(ln.strip()) - 2:
                flush()
                sections.append((rst_inline(ln), []))
                i += 2
                continue
            if not ln.strip():
                flush()
            elif ln.startswith((" ", "\t", "..", ">>>", "*", "-", "+", "|", "=")) or re.match(r"^\d+\.\s", ln):
                flush()  # directives, code, lists, tables: not prose paragraphs
                while i + 1 < len(lines) and (not lines[i + 1].strip() or lines[i + 1].startswith((" ", "\t"))):
                    if not ln.startswith((" ", "\t")) and not lines[i + 1].strip():
                        break
                    i += 1
            else:
                para.append(ln.strip())
            i += 1
        flush()
        page = sections[0][0] if sections else ""
        for title, paras in sections:
            yield "python", page, title, [p.rstrip(":") + ("." if p.endswith("::") else "") for p in paras]


# ------------------------------------------------------------------ perl-doc (POD)
POD_FMT = re.compile(r"[A-Z]<<+\s(.*?)\s>>+|[A-Z]<([^<>]*)>")
GENERIC = {"NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO", "AUTHOR", "AUTHORS", "COPYRIGHT", "LICENSE",
           "BUGS", "AUTHOR AND COPYRIGHT", "COPYRIGHT AND LICENSE", "ACKNOWLEDGEMENTS", "REVISION", "VERSION"}


def pod_inline(t: str) -> str:
    t = re.sub(r"X<+[^<>]*>+", "", t)  # index entries are not text
    for _ in range(4):
        t2 = POD_FMT.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], t)
        if t2 == t:
            break
        t = t2
    return clean(t)


def perl_docs():
    for f in sorted(PERLPOD.glob("*.pod")):
        if re.match(r"perl5?\d+delta|perlapi|perlintern|perltoc|perluni", f.stem):
            continue
        blocks = re.split(r"\n\s*\n", f.read_text(encoding="utf-8", errors="replace"))
        sections: list[tuple[str, list[str]]] = []
        in_over = 0
        for b in blocks:
            if b.startswith("=head"):
                t = pod_inline(b.split(None, 1)[1] if len(b.split(None, 1)) > 1 else "")
                sections.append((t, []))
            elif b.startswith("=over"):
                in_over += 1
            elif b.startswith("=back"):
                in_over = max(0, in_over - 1)
            elif b.startswith("=") or b.startswith((" ", "\t")) or in_over:
                continue
            elif sections and sections[-1][0].upper() not in GENERIC:
                sections[-1][1].append(pod_inline(b))
        page = f.stem
        for title, paras in sections:
            yield "perl", page, title, paras


# ------------------------------------------------------------------ gnome-user-docs (Mallard)
NS = "{http://projectmallard.org/1.0/}"


def text_of(el) -> str:
    return clean("".join(el.itertext()))


def mallard_docs():
    for f in sorted(MALLARD.glob("*/*.page")):
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError:
            continue
        title_el = root.find(f"{NS}title")
        if title_el is None:
            continue
        page = text_of(title_el)
        desc = root.find(f"{NS}info/{NS}desc")
        paras = ([text_of(desc)] if desc is not None else []) + [text_of(p) for p in root.findall(f"{NS}p")]
        yield "gnome", page, page, paras
        for sec in root.iter(f"{NS}section"):
            st = sec.find(f"{NS}title")
            if st is not None:
                yield "gnome", page, text_of(st), [text_of(p) for p in sec.findall(f"{NS}p")]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    seen = set()
    counts: dict[str, int] = {}
    rows = []
    for gen in (handbook, python_docs, perl_docs, mallard_docs):
        for src, page, title, paras in gen():
            title = html.unescape(title).strip().rstrip(":")
            if not title or len(title) > 150 or not any(c.isalpha() for c in title):
                continue
            if len(title.split()) < 3 and page and page != title:
                title = f"{page}: {title}"
            n = 0
            for p in paras:
                p = clip(html.unescape(p))
                if n >= PARAS_PER_HEADING or not keep_para(p) or (title, p) in seen:
                    continue
                seen.add((title, p))
                rows.append(f"{src}\t{clean(title)}\t{p}")
                counts[src] = counts.get(src, 0) + 1
                n += 1
    (OUT / "docs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"docs: {len(rows)} heading -> paragraph pairs {counts}")


if __name__ == "__main__":
    main()
