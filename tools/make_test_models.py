#!/usr/bin/python3
"""Generate small deterministic ONNX test models plus torch reference outputs.

Run with Debian's python (torch 1.13, onnx 1.12):

    /usr/bin/python3 tools/make_test_models.py                 # tiny-bert, tiny-decoder, tiny-reranker
    /usr/bin/python3 tools/make_test_models.py --only tiny-bert
    /usr/bin/python3 tools/make_test_models.py --minilm [OUT_DIR]   # MiniLM-L6-shaped, for benchmarks
    /usr/bin/python3 tools/make_test_models.py --minilm-reranker [OUT_DIR]   # MiniLM-L6-shaped cross-encoder
    /usr/bin/python3 tools/make_test_models.py --untrained-default OUT_DIR  # random placeholder (eval baseline)

Outputs (relative to the repository root):

  tests/fixtures/models/tiny-bert/     BERT encoder (hidden 64, 4 layers), onnx/model.onnx + reference.json
  tests/fixtures/models/tiny-reranker/ BERT cross-encoder (hidden 64, 2 layers, logits [n, 1]) + reference.json
  tests/fixtures/models/tiny-decoder/  Qwen2-style decoder (hidden 64, 4 layers), onnx/model.onnx + reference.json
  models/minilm-shaped/                (only with --minilm; gitignored) 6 x 384 BERT, 30522 vocab
  OUT_DIR                              (only with --untrained-default) BERT encoder (hidden 128, 4 layers),
                                       model.onnx at top level; models/default is the trained model instead

Everything is deterministic: fixed torch seeds, a vocabulary built from the word
list embedded below, and a pure-Python BERT tokenizer that produces the
reference token ids (the TypeScript tests check that HF tokenizers agree).

The modules mirror Hugging Face's attribute names so that torch.onnx.export
names nodes by module scope, e.g. /embeddings/..., /encoder/layer.0/...,
/model/embed_tokens/..., /model/layers.0/..., /model/norm/....
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import unicodedata
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
# The BERT encoder is defined once, in training/model.py (HF's post-LN layout and the default model's variant).
sys.path.insert(0, str(REPO_ROOT / "training"))
from model import MASK_NEG, BertModel, bert_config  # noqa: E402
MINILM_ASSETS = REPO_ROOT.parent / "shared" / "assets" / "all-MiniLM-L6-v2"

OPSET = 17

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Printable ASCII punctuation, exactly the chars BertPreTokenizer isolates.
ASCII_PUNCT = [chr(c) for c in range(33, 127) if not chr(c).isalnum()]
ASCII_ALNUM = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]

COMMON_WORDS = """
the of and to a in is it you that he was for on are with as i his they be at one have this from
or had by hot but some what there we can out other were all your when up use word how said an each
she which do their time if will way about many then them would write like so these her long make thing
see him two has look more day could go come did my sound no most number who over know water than call
first people may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form much great
think say help low line before turn cause same mean differ move right boy old too does tell sentence set
three want air well also play small end put home read hand port large spell add even land here must big
high such follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school grow study
still learn plant cover food sun four thought let keep eye never last door between city tree cross since
hard start might story saw far sea draw left late run don't while press close night real life few stop
open seem together next white children begin got walk example ease paper often always music those both mark
book letter until mile river car feet care second group carry took rain eat room friend began idea fish
mountain north once base hear horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave song measure state product
black short numeral class wind question happen complete ship area half rock order fire south problem piece
told knew pass farm top whole king size heard best hour better true during hundred am remember step early
hold west ground interest reach fast five sing listen six table travel less morning ten simple several vowel
toward war lay against pattern slow center love person money serve appear road map science rule govern pull
cold notice voice fall power town fine certain fly unit lead cry dark machine note wait plan figure star box
noun field rest correct able pound done beauty drive stood contain front teach week final gave green oh
quick develop sleep warm free minute strong special mind behind clear tail produce fact street inch lot
nothing course stay wheel full force blue object decide surface deep moon island foot yet busy test record
boat common gold possible plane age dry wonder laugh thousand ago ran check game shape yes miss brought heat
snow bed bring sit perhaps fill east weight language among
text vector vectors model models data search query passage document embedding embeddings token tokens
learning neural network language sentence meaning similar similarity capital france paris london city
brown fox jumps lazy over quick today umbrella just case going think rain words become small pieces split
numbers like into turn machine village quiet people lived there walked slowly market buy fresh bread milk
fruit before day began fields evening computer fast server request response batch memory speed test
question answer information retrieval index result results score rank user system service cloud
""".split()

SUBWORD_PIECES = """
##s ##es ##ed ##ing ##ly ##er ##ers ##est ##tion ##tions ##ment ##ments ##ness ##able ##al ##ful ##less
##ity ##ize ##ous ##ive ##y ##en ##ic ##ist ##ism ##ant ##ent ##ance ##ence ##ship ##ward ##ing ##ish
##ation ##ology ##al ##ial ##ical ##ary ##ory ##ure ##age ##ous ##ious ##ent ##ian ##ise ##ity
un re pre dis over under inter super anti sub
""".split()


def build_body_vocab() -> list[str]:
    """Everything except special tokens, in a fixed order, de-duplicated."""
    body: list[str] = []
    seen: set[str] = set()

    def add(tok: str) -> None:
        if tok not in seen:
            seen.add(tok)
            body.append(tok)

    for ch in ASCII_ALNUM + ASCII_PUNCT:
        add(ch)
    for ch in ASCII_ALNUM + ASCII_PUNCT:
        add("##" + ch)
    for w in COMMON_WORDS:
        # words with punctuation (don't) can never be a single pre-token; skip them
        if all(c.isalnum() for c in w):
            add(w.lower())
    for p in SUBWORD_PIECES:
        add(p)
    return body


def bert_vocab() -> list[str]:
    return BERT_SPECIALS + build_body_vocab()


DEC_EOT = "<|endoftext|>"
DEC_PST = "<|pst|>"


def decoder_vocab() -> list[str]:
    # [UNK] first (WordPiece needs it), added special tokens appended at the end like HF does.
    return ["[UNK]"] + build_body_vocab() + [DEC_EOT, DEC_PST]


# ---------------------------------------------------------------------------
# Pure-Python BERT tokenization (reference implementation)
# ---------------------------------------------------------------------------


def _is_whitespace(ch: str) -> bool:
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Co", "Cs")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def bert_pre_tokenize(text: str) -> list[str]:
    """BertNormalizer(clean_text, handle_chinese_chars, lowercase, strip accents) + BertPreTokenizer."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_chinese_char(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = "".join(out)
    # strip_accents=null + lowercase=true => accents are stripped too
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = text.lower()
    words: list[str] = []
    for chunk in text.split():
        cur = ""
        for ch in chunk:
            if _is_punctuation(ch):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def wordpiece(word: str, vocab: dict[str, int], unk: str = "[UNK]", max_chars: int = 100) -> list[str]:
    if len(word) > max_chars:
        return [unk]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        cur = None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return [unk]
        pieces.append(cur)
        start = end
    return pieces


class PyBertTokenizer:
    def __init__(self, vocab: list[str]):
        self.vocab = {t: i for i, t in enumerate(vocab)}

    def tokenize(self, text: str) -> list[str]:
        toks: list[str] = []
        for w in bert_pre_tokenize(text):
            toks.extend(wordpiece(w, self.vocab))
        return toks

    def content_ids(self, text: str) -> list[int]:
        return [self.vocab[t] for t in self.tokenize(text)]

    def encode_bert(self, text: str, max_length: int) -> list[int]:
        ids = self.content_ids(text)[: max_length - 2]
        return [self.vocab["[CLS]"]] + ids + [self.vocab["[SEP]"]]

    def encode_decoder(self, text: str, max_length: int) -> list[int]:
        ids = self.content_ids(text)[: max_length - 1]
        return ids + [self.vocab[DEC_EOT]]


# ---------------------------------------------------------------------------
# tokenizer.json writers (HF tokenizers format)
# ---------------------------------------------------------------------------


def _added_token(tid: int, content: str) -> dict:
    return {
        "id": tid,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _wordpiece_tokenizer_json(vocab: list[str], specials: list[str], post_processor: dict) -> dict:
    v = {t: i for i, t in enumerate(vocab)}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(v[s], s) for s in sorted(specials, key=lambda s: v[s])],
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": None,
            "lowercase": True,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": post_processor,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": v,
        },
    }


def _special(tok: str, type_id: int) -> dict:
    return {"SpecialToken": {"id": tok, "type_id": type_id}}


def _seq(name: str, type_id: int) -> dict:
    return {"Sequence": {"id": name, "type_id": type_id}}


def bert_tokenizer_json(vocab: list[str]) -> dict:
    v = {t: i for i, t in enumerate(vocab)}
    post = {
        "type": "TemplateProcessing",
        "single": [_special("[CLS]", 0), _seq("A", 0), _special("[SEP]", 0)],
        "pair": [_special("[CLS]", 0), _seq("A", 0), _special("[SEP]", 0), _seq("B", 1), _special("[SEP]", 1)],
        "special_tokens": {
            t: {"id": t, "ids": [v[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")
        },
    }
    return _wordpiece_tokenizer_json(vocab, BERT_SPECIALS, post)


def decoder_tokenizer_json(vocab: list[str]) -> dict:
    v = {t: i for i, t in enumerate(vocab)}
    post = {
        "type": "TemplateProcessing",
        "single": [_seq("A", 0), _special(DEC_EOT, 0)],
        "pair": [_seq("A", 0), _special(DEC_EOT, 0), _seq("B", 1), _special(DEC_EOT, 1)],
        "special_tokens": {DEC_EOT: {"id": DEC_EOT, "ids": [v[DEC_EOT]], "tokens": [DEC_EOT]}},
    }
    return _wordpiece_tokenizer_json(vocab, ["[UNK]", DEC_EOT, DEC_PST], post)


# ---------------------------------------------------------------------------
# Qwen2-style decoder (HF Qwen2Model attribute names, wrapped in .model)
# ---------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, h: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h))
        self.variance_epsilon = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids):
        freqs = position_ids[:, :, None].to(torch.float32) * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)  # [b, s, head_dim]
        return emb.cos(), emb.sin()


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DecoderAttention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.head_dim = h // self.num_heads
        self.q_proj = nn.Linear(h, h, bias=True)
        self.k_proj = nn.Linear(h, h, bias=True)
        self.v_proj = nn.Linear(h, h, bias=True)
        self.o_proj = nn.Linear(h, h, bias=False)

    def _split(self, x):
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden, mask, cos, sin):
        q = self._split(self.q_proj(hidden))
        k = self._split(self.k_proj(hidden))
        v = self._split(self.v_proj(hidden))
        cos = cos[:, None, :, :]
        sin = sin[:, None, :, :]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).contiguous()
        return self.o_proj(ctx.view(ctx.size(0), ctx.size(1), self.num_heads * self.head_dim))


class DecoderMLP(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, f = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(h, f, bias=False)
        self.up_proj = nn.Linear(h, f, bias=False)
        self.down_proj = nn.Linear(f, h, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = DecoderAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = DecoderMLP(cfg)

    def forward(self, hidden, mask, cos, sin):
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), mask, cos, sin)
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class DecoderInner(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.rotary_emb = RotaryEmbedding(cfg["hidden_size"] // cfg["num_attention_heads"], cfg["rope_theta"])

    def forward(self, input_ids, attention_mask, position_ids, tp_layers=None, all_states: bool = False):
        """Final-normed last_hidden_state; with all_states=True returns (raw states list, normed final).

        raw states = [embeddings, layer1, ..., layerN] (pre-final-norm).
        tp_layers=(first, last): Token Prepending. The placeholder is expected at
        sequence position 0 (unpadded input). After each 1-based layer l with
        first <= l <= last, the hidden state at position 0 is replaced by that
        layer's output at the last token before layer l+1 consumes it.
        """
        seq_len = input_ids.size(1)
        idx = torch.arange(seq_len, device=input_ids.device)
        causal = idx[None, :] <= idx[:, None]  # [q, k]: key position <= query position
        allowed = causal[None, None, :, :] & (attention_mask[:, None, None, :] > 0)
        mask = (1.0 - allowed.to(torch.float32)) * MASK_NEG
        cos, sin = self.rotary_emb(position_ids)
        h = self.embed_tokens(input_ids)
        states = [h]
        for l, layer in enumerate(self.layers, start=1):
            h = layer(h, mask, cos, sin)
            if tp_layers is not None and tp_layers[0] <= l <= tp_layers[1]:
                h = h.clone()
                h[:, 0, :] = h[:, -1, :].clone()
            states.append(h)
        out = self.norm(h)
        return (states, out) if all_states else out


class DecoderModel(nn.Module):
    """Top-level wrapper: node scopes /model/embed_tokens, /model/layers.N, /model/norm."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.config = cfg
        self.model = DecoderInner(cfg)

    def raw_states(self, input_ids, attention_mask, position_ids, tp_layers: tuple[int, int] | None = None):
        """[embeddings, layer1, ..., layerN] raw (pre-final-norm) outputs; see DecoderInner.forward."""
        return self.model(input_ids, attention_mask, position_ids, tp_layers=tp_layers, all_states=True)[0]

    def forward(self, input_ids, attention_mask, position_ids):
        return self.model(input_ids, attention_mask, position_ids)


# ---------------------------------------------------------------------------
# Deterministic initialisation
# ---------------------------------------------------------------------------


def init_weights(model: nn.Module, seed: int, linear_std: float, emb_std: dict[str, float], bias_std: float = 0.02):
    """Fixed-seed init, walking named parameters in their (deterministic) registration order."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
            if name.endswith("LayerNorm.weight") or name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(bias_std * torch.randn(p.shape, generator=g))
            elif leaf in emb_std:
                p.copy_(emb_std[leaf] * torch.randn(p.shape, generator=g))
            else:
                p.copy_(linear_std * torch.randn(p.shape, generator=g))
    return model


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def f32list(t: torch.Tensor) -> list:
    """float32 tensor -> nested list of Python floats using the shortest float32 round-trip repr."""
    a = t.detach().cpu().numpy().astype(np.float32)
    if a.ndim == 0:
        return float(str(np.float32(a)))
    if a.ndim == 1:
        return [float(str(x)) for x in a]
    return [f32list(torch.from_numpy(x)) for x in a]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a[None], b[None])[0])


def pairwise_cos_range(vecs: list[torch.Tensor]) -> tuple[float, float]:
    cs = [cosine(vecs[i], vecs[j]) for i in range(len(vecs)) for j in range(i + 1, len(vecs))]
    return min(cs), max(cs)


def write_json(path: Path, obj, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def write_vocab_txt(path: Path, vocab: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for t in vocab:
            f.write(t + "\n")


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def export_onnx(model: nn.Module, args: tuple, input_names: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dyn = {n: {0: "batch_size", 1: "sequence_length"} for n in input_names}
    dyn["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=input_names,
            output_names=["last_hidden_state"],
            dynamic_axes=dyn,
            opset_version=OPSET,
            do_constant_folding=True,
            export_params=True,
            verbose=False,
        )


def check_onnx(path: Path, input_names: list[str], hidden: int, scopes: list[str]) -> list[str]:
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    ins = [(i.name, i.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
           for i in m.graph.input]
    outs = [(o.name, o.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim])
            for o in m.graph.output]
    assert [i[0] for i in ins] == input_names, ins
    for name, et, dims in ins:
        assert et == onnx.TensorProto.INT64 and dims == ["batch_size", "sequence_length"], (name, et, dims)
    assert len(outs) == 1 and outs[0][0] == "last_hidden_state", outs
    assert outs[0][1] == onnx.TensorProto.FLOAT and outs[0][2] == ["batch_size", "sequence_length", hidden], outs
    names = [n.name for n in m.graph.node]
    for s in scopes:
        hits = [n for n in names if n.startswith(s)]
        assert hits, f"{path}: no node scoped {s!r}; first names: {names[:10]}"
    examples = []
    for s in scopes:
        examples.append(next(n for n in names if n.startswith(s)))
    print(f"  onnx ok: opset {m.opset_import[0].version}, {len(names)} nodes, inputs {ins}, outputs {outs}")
    print(f"  example nodes: {examples}")
    return examples


def dir_report(path: Path) -> None:
    total = 0
    for p in sorted(path.rglob("*")):
        if p.is_file():
            sz = p.stat().st_size
            total += sz
            print(f"    {sz:>12,d}  {p.relative_to(path)}")
    print(f"    {total:>12,d}  TOTAL {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")


# ---------------------------------------------------------------------------
# Reference sentences
# ---------------------------------------------------------------------------

SENTENCES = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Machine learning models turn text into vectors for semantic search.",
    "I don't think it's going to rain today, but take an umbrella just in case!",
    "Numbers like 42, 3.14 and 2024 are split into pieces.",
    "Supercalifragilisticexpialidocious words become many small pieces",
    "An overly long token " + "z" * 101 + " becomes unknown.",
    "In the early morning the small village was quiet, and the people who lived there walked "
    "slowly to the market to buy fresh bread, milk and fruit before the long day began.",
]

LONG_SENTENCE = (
    "When the search service receives a batch of requests, it splits every document into tokens, "
    "runs the neural network over each group of sentences, and returns one vector per passage so "
    "that the index can rank similar results quickly, even if the user sends very long text that "
    "must be cut at the maximum length."
)


# ---------------------------------------------------------------------------
# BERT generation
# ---------------------------------------------------------------------------

BERT_LINEAR_STD = 0.1  # raised from BERT's 0.02 so attention/FFN visibly change the (post-LN) residual
BERT_EMB_STD = {"word_embeddings": 1.0, "position_embeddings": 0.3, "token_type_embeddings": 0.1}


def write_bert_aux(out: Path, cfg: dict, max_seq_length: int, model_max_length: int, prompts: dict,
                   vocab: list[str] | None) -> None:
    """Everything except the ONNX file and embedder.json/reference.json."""
    write_json(out / "config.json", cfg)
    if vocab is not None:
        write_json(out / "tokenizer.json", bert_tokenizer_json(vocab), indent=2)
        write_vocab_txt(out / "vocab.txt", vocab)
        write_json(out / "tokenizer_config.json", {
            "clean_up_tokenization_spaces": True,
            "cls_token": "[CLS]",
            "do_basic_tokenize": True,
            "do_lower_case": True,
            "mask_token": "[MASK]",
            "model_max_length": model_max_length,
            "never_split": None,
            "pad_token": "[PAD]",
            "padding_side": "right",
            "sep_token": "[SEP]",
            "strip_accents": None,
            "tokenize_chinese_chars": True,
            "tokenizer_class": "BertTokenizer",
            "truncation_side": "right",
            "unk_token": "[UNK]",
        })
        write_json(out / "special_tokens_map.json", {
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "pad_token": "[PAD]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
        })
        write_json(out / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ])
        write_json(out / "1_Pooling" / "config.json", {
            "word_embedding_dimension": cfg["hidden_size"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        })
        write_json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    write_json(out / "config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": "3.0.1", "transformers": "4.41.2", "pytorch": torch.__version__},
        "prompts": prompts,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def build_bert(cfg: dict, seed: int) -> BertModel:
    torch.manual_seed(seed)
    model = BertModel(cfg)
    init_weights(model, seed, BERT_LINEAR_STD, BERT_EMB_STD)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[cfg["pad_token_id"]].zero_()  # like HF padding_idx
    return model.eval()


def bert_dummy_inputs(vocab_size: int):
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 3], [2, 20, 21, 3, 0, 0, 0, 0]], dtype=torch.long)
    ids = ids.clamp(max=vocab_size - 1)
    mask = (ids != 0).long()
    mask[:, 0] = 1
    return ids, mask, torch.zeros_like(ids)


def bert_scopes(n_layers: int) -> list[str]:
    return ["/embeddings/"] + [f"/encoder/layer.{i}/" for i in range(n_layers)]


def gen_tiny_bert() -> None:
    out = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-bert"
    print(f"== tiny-bert -> {out.relative_to(REPO_ROOT)}")
    reset_dir(out)
    vocab = bert_vocab()
    cfg = bert_config(len(vocab), hidden=64, layers=4, heads=4, ffn=128, max_pos=64)
    model = build_bert(cfg, seed=1234)
    max_len = 48

    export_onnx(model, bert_dummy_inputs(len(vocab)), ["input_ids", "attention_mask", "token_type_ids"],
                out / "onnx" / "model.onnx")
    check_onnx(out / "onnx" / "model.onnx", ["input_ids", "attention_mask", "token_type_ids"], 64,
               bert_scopes(cfg["num_hidden_layers"]))

    write_bert_aux(out, cfg, max_seq_length=max_len, model_max_length=64,
                   prompts={"query": "query: ", "passage": "passage: "}, vocab=vocab)
    write_json(out / "embedder.json", {
        "untrained": True,
        "instruction_template": "Instruct: {instruction}\nQuery: {text}",
    })

    # ---- reference outputs, one sentence at a time (no padding)
    tok = PyBertTokenizer(vocab)
    all_ids, pooled = [], {"mean": [], "cls": [], "max": [], "last": []}
    layers = {str(l): {"mean": [], "cls": []} for l in range(1, cfg["num_hidden_layers"] + 1)}
    mean_vecs, cls_vecs = [], []
    with torch.no_grad():
        for s in SENTENCES:
            full = tok.encode_bert(s, 10_000)
            assert len(full) <= max_len, f"reference sentence too long ({len(full)} tokens): {s!r}"
            ids = tok.encode_bert(s, max_len)
            all_ids.append(ids)
            x = torch.tensor([ids])
            states = model.hidden_states(x, torch.ones_like(x), torch.zeros_like(x))
            last = states[-1][0]
            pooled["mean"].append(f32list(last.mean(0)))
            pooled["cls"].append(f32list(last[0]))
            pooled["max"].append(f32list(last.max(0).values))
            pooled["last"].append(f32list(last[-1]))
            mean_vecs.append(last.mean(0))
            cls_vecs.append(last[0])
            for l in range(1, cfg["num_hidden_layers"] + 1):
                layers[str(l)]["mean"].append(f32list(states[l][0].mean(0)))
                layers[str(l)]["cls"].append(f32list(states[l][0][0]))

        # padding invariance: a right-padded batch gives the same real-token outputs
        L = max(len(i) for i in all_ids)
        bid = torch.zeros(len(all_ids), L, dtype=torch.long)
        bmask = torch.zeros_like(bid)
        for r, ids in enumerate(all_ids):
            bid[r, : len(ids)] = torch.tensor(ids)
            bmask[r, : len(ids)] = 1
        bout = model(bid, bmask, torch.zeros_like(bid))
        worst = 0.0
        for r, ids in enumerate(all_ids):
            single = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                           torch.zeros(1, len(ids), dtype=torch.long))[0]
            worst = max(worst, float((bout[r, : len(ids)] - single).abs().max()))
        assert worst < 1e-4, f"padding changes real-token outputs by {worst}"
        print(f"  right-padded batch vs single max|diff| = {worst:.2e}")

        long_full = tok.encode_bert(LONG_SENTENCE, 10_000)
        assert len(long_full) > max_len, len(long_full)
        long_ids = tok.encode_bert(LONG_SENTENCE, max_len)
        assert len(long_ids) == max_len and long_ids[1:-1] == long_full[1 : max_len - 1]
        lx = torch.tensor([long_ids])
        long_mean = model(lx, torch.ones_like(lx), torch.zeros_like(lx))[0].mean(0)

    unk = tok.vocab["[UNK]"]
    assert any(unk in ids for ids in all_ids), "expected at least one [UNK] in the reference sentences"
    lo, hi = pairwise_cos_range(mean_vecs)
    clo, chi = pairwise_cos_range(cls_vecs)
    print(f"  pairwise cosine of mean-pooled references: min {lo:.4f} max {hi:.4f}; cls: min {clo:.4f} max {chi:.4f}")
    assert hi < 0.99 and chi < 0.99, "degenerate outputs: sentences give (nearly) identical vectors"

    write_json(out / "reference.json", {
        "model": "tiny-bert",
        "max_length": max_len,
        "sentences": SENTENCES,
        "token_ids": all_ids,
        "pooled": pooled,
        "layers": layers,
        "long_sentence": {
            "sentence": LONG_SENTENCE,
            "untruncated_length": len(long_full),
            "token_ids": long_ids,
            "mean": f32list(long_mean),
        },
        "notes": {
            "pooling": "computed with torch one sentence at a time (no padding); not normalized",
            "layers": "same pooling on the output of encoder layer N (1-based); layers[N_last] == pooled",
            "cosine_min_max_mean_pooled": [round(lo, 6), round(hi, 6)],
        },
    }, indent=None)
    dir_report(out)


def gen_untrained_default(out: Path) -> None:
    """The former random placeholder for models/default (the 'untrained' baseline of benchmarks/eval.ts).
    Never written over models/default itself: that is the trained model (training/train_default_model.py)."""
    print(f"== untrained default -> {out}")
    reset_dir(out)
    vocab = bert_vocab()
    cfg = bert_config(len(vocab), hidden=128, layers=4, heads=4, ffn=512, max_pos=256)
    model = build_bert(cfg, seed=4321)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    export_onnx(model, bert_dummy_inputs(len(vocab)), names, out / "model.onnx")
    check_onnx(out / "model.onnx", names, 128, bert_scopes(cfg["num_hidden_layers"]))
    write_bert_aux(out, cfg, max_seq_length=256, model_max_length=256, prompts={}, vocab=vocab)
    write_json(out / "embedder.json", {
        "untrained": True,
        "matryoshka_dimensions": [32, 64, 128],
        "exit_layers": [1, 2, 3, 4],
    })
    tok = PyBertTokenizer(vocab)
    with torch.no_grad():
        vecs = []
        for s in SENTENCES:
            x = torch.tensor([tok.encode_bert(s, 256)])
            vecs.append(model(x, torch.ones_like(x), torch.zeros_like(x))[0].mean(0))
    lo, hi = pairwise_cos_range(vecs)
    print(f"  pairwise cosine of mean-pooled sentences: min {lo:.4f} max {hi:.4f}")
    assert hi < 0.99
    dir_report(out)


MINILM_VOCAB_SIZE = 30522


def minilm_tokenizer(out: Path, extra_files: list[str]) -> list[str] | None:
    """all-MiniLM-L6-v2's tokenizer files (and `extra_files`) copied into `out` from ../shared when
    it is there (returns None), else a generated WordPiece vocabulary padded to MiniLM's size."""
    if (MINILM_ASSETS / "tokenizer.json").exists():
        print(f"  copying tokenizer files from {MINILM_ASSETS}")
        for name in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] + extra_files:
            src, dst = MINILM_ASSETS / name, out / name
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.exists():
                    dst.unlink()
                shutil.copyfile(src, dst)  # contents only: the source tree is read-only
        return None
    print(f"  {MINILM_ASSETS} not found: generating a WordPiece vocab padded to {MINILM_VOCAB_SIZE}")
    vocab = bert_vocab()
    return vocab + [f"[unused{i}]" for i in range(MINILM_VOCAB_SIZE - len(vocab))]


def gen_minilm(out: Path) -> None:
    print(f"== minilm-shaped -> {out}")
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = MINILM_VOCAB_SIZE
    cfg = bert_config(vocab_size, hidden=384, layers=6, heads=12, ffn=1536, max_pos=512)
    pooling = MINILM_ASSETS / "1_Pooling"
    sbert = ["sentence_bert_config.json", "modules.json"]
    sbert += [f"1_Pooling/{p.name}" for p in sorted(pooling.iterdir()) if p.is_file()] if pooling.is_dir() else []
    write_bert_aux(out, cfg, 256, 512, prompts={}, vocab=minilm_tokenizer(out, sbert))
    write_json(out / "embedder.json", {"untrained": True})
    model = build_bert(cfg, seed=2024)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    export_onnx(model, bert_dummy_inputs(vocab_size), names, out / "onnx" / "model.onnx")
    check_onnx(out / "onnx" / "model.onnx", names, 384, bert_scopes(cfg["num_hidden_layers"]))
    dir_report(out)


# ---------------------------------------------------------------------------
# Cross-encoder (BertForSequenceClassification, one relevance logit)
# ---------------------------------------------------------------------------


class BertPooler(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])
        self.activation = nn.Tanh()

    def forward(self, hidden):
        return self.activation(self.dense(hidden[:, 0]))


class BertForSequenceClassification(nn.Module):
    """HF's layout (bert.embeddings/encoder/pooler, classifier): logits = classifier(tanh(W·h_CLS))."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.bert = BertModel(cfg)
        self.bert.pooler = BertPooler(cfg)
        self.classifier = nn.Linear(cfg["hidden_size"], cfg["num_labels"])

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.bert.pooler(hidden))


def encode_pair(tok: PyBertTokenizer, query: str, doc: str, max_length: int) -> tuple[list[int], list[int]]:
    """[CLS] q [SEP] d [SEP] with type ids 0…0 1…1, the document cut first (HF `only_second`)."""
    q = tok.content_ids(query)
    d = tok.content_ids(doc)
    room = max_length - 3 - len(q)
    assert room > 0, "reference query too long for the pair budget"
    d = d[:room]
    cls, sep = tok.vocab["[CLS]"], tok.vocab["[SEP]"]
    ids = [cls] + q + [sep] + d + [sep]
    types = [0] * (len(q) + 2) + [1] * (len(d) + 1)
    return ids, types


RERANK_QUERIES = [
    "What is the capital of France?",
    "how do search engines rank documents",
]

RERANK_DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models turn text into vectors for semantic search.",
    "Numbers like 42, 3.14 and 2024 are split into pieces.",
    "In the early morning the small village was quiet.",
    "I don't think it's going to rain today, but take an umbrella just in case!",
    LONG_SENTENCE,
]


def reranker_config(vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, max_pos: int) -> dict:
    cfg = bert_config(vocab_size, hidden, layers, heads, ffn, max_pos)
    cfg.update({
        "architectures": ["BertForSequenceClassification"],
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
        "num_labels": 1,
    })
    return cfg


def build_reranker(cfg: dict, seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    model = BertForSequenceClassification(cfg)
    init_weights(model, seed, BERT_LINEAR_STD, BERT_EMB_STD)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[cfg["pad_token_id"]].zero_()
        # A wide classifier so the logits of different pairs are well apart (order is testable).
        model.classifier.weight.mul_(10.0)
    return model.eval()


def export_reranker(model: nn.Module, vocab_size: int, path: Path) -> None:
    names = ["input_ids", "attention_mask", "token_type_ids"]
    path.parent.mkdir(parents=True, exist_ok=True)
    dyn = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
    dyn["logits"] = {0: "batch_size"}
    with torch.no_grad():
        torch.onnx.export(model, bert_dummy_inputs(vocab_size), str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True, export_params=True)
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    out = m.graph.output[0]
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out.name == "logits" and dims == ["batch_size", 1], (out.name, dims)
    print(f"  onnx ok: output logits {dims}")


def write_reranker_aux(out: Path, cfg: dict, vocab: list[str] | None, model_max_length: int) -> None:
    """A cross-encoder export as optimum writes it: config, tokenizer files, no pooling modules."""
    write_json(out / "config.json", cfg)
    if vocab is None:
        return
    write_json(out / "tokenizer.json", bert_tokenizer_json(vocab), indent=2)
    write_vocab_txt(out / "vocab.txt", vocab)
    write_json(out / "tokenizer_config.json", {
        "cls_token": "[CLS]", "do_lower_case": True, "mask_token": "[MASK]", "model_max_length": model_max_length,
        "pad_token": "[PAD]", "padding_side": "right", "sep_token": "[SEP]", "tokenizer_class": "BertTokenizer",
        "truncation_side": "right", "unk_token": "[UNK]",
    })
    write_json(out / "special_tokens_map.json", {
        "cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]",
    })


def gen_tiny_reranker() -> None:
    out = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-reranker"
    print(f"== tiny-reranker -> {out.relative_to(REPO_ROOT)}")
    reset_dir(out)
    vocab = bert_vocab()
    max_len = 48
    cfg = reranker_config(len(vocab), hidden=64, layers=2, heads=4, ffn=128, max_pos=64)
    model = build_reranker(cfg, seed=777)
    export_reranker(model, len(vocab), out / "onnx" / "model.onnx")
    write_reranker_aux(out, cfg, vocab, model_max_length=max_len)
    write_json(out / "embedder.json", {"untrained": True})

    tok = PyBertTokenizer(vocab)
    pairs = []
    with torch.no_grad():
        for qi, q in enumerate(RERANK_QUERIES):
            for di, d in enumerate(RERANK_DOCUMENTS):
                ids, types = encode_pair(tok, q, d, max_len)
                x = torch.tensor([ids])
                logit = model(x, torch.ones_like(x), torch.tensor([types]))[0, 0]
                full = len(tok.content_ids(q)) + len(tok.content_ids(d)) + 3
                pairs.append({"query": qi, "document": di, "token_ids": ids, "token_type_ids": types,
                              "truncated": full > max_len, "logit": f32list(logit),
                              "score": f32list(torch.sigmoid(logit))})
        # padding invariance of the classifier: a padded batch gives the same logits
        L = max(len(p["token_ids"]) for p in pairs)
        bid = torch.zeros(len(pairs), L, dtype=torch.long)
        btype = torch.zeros_like(bid)
        bmask = torch.zeros_like(bid)
        for r, p in enumerate(pairs):
            n = len(p["token_ids"])
            bid[r, :n] = torch.tensor(p["token_ids"])
            btype[r, :n] = torch.tensor(p["token_type_ids"])
            bmask[r, :n] = 1
        worst = float((model(bid, bmask, btype)[:, 0] - torch.tensor([p["logit"] for p in pairs])).abs().max())
        assert worst < 1e-4, f"padding changes logits by {worst}"
    assert any(p["truncated"] for p in pairs), "expected one pair to need truncation"
    for qi in range(len(RERANK_QUERIES)):
        ls = sorted(p["logit"] for p in pairs if p["query"] == qi)
        gap = min(b - a for a, b in zip(ls, ls[1:]))
        print(f"  query {qi}: logits {[round(x, 3) for x in ls]}, least gap {gap:.4f}")
        assert gap > 1e-2, "logits too close together for an order test"
    write_json(out / "reference.json", {
        "model": "tiny-reranker",
        "max_length": max_len,
        "queries": RERANK_QUERIES,
        "documents": RERANK_DOCUMENTS,
        "pairs": pairs,
        "notes": {"logit": "torch, one pair at a time (no padding)", "score": "sigmoid(logit)",
                  "truncation": "document side first ([CLS] q [SEP] d [SEP] cut to max_length)"},
    }, indent=None)
    dir_report(out)


def gen_minilm_reranker(out: Path) -> None:
    """ms-marco-MiniLM-L-6-v2-shaped cross-encoder (6 × 384) with generated weights, for benchmarks."""
    print(f"== minilm-reranker-shaped -> {out}")
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = MINILM_VOCAB_SIZE
    cfg = reranker_config(vocab_size, hidden=384, layers=6, heads=12, ffn=1536, max_pos=512)
    write_reranker_aux(out, cfg, minilm_tokenizer(out, []), 512)
    write_json(out / "embedder.json", {"untrained": True, "max_length": 512})
    export_reranker(build_reranker(cfg, seed=2025), vocab_size, out / "onnx" / "model.onnx")
    dir_report(out)


# ---------------------------------------------------------------------------
# Decoder generation
# ---------------------------------------------------------------------------

DEC_LINEAR_STD = 0.15
DEC_EMB_STD = {"embed_tokens": 1.0}


def gen_tiny_decoder() -> None:
    out = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-decoder"
    print(f"== tiny-decoder -> {out.relative_to(REPO_ROOT)}")
    reset_dir(out)
    vocab = decoder_vocab()
    v = {t: i for i, t in enumerate(vocab)}
    max_pos = 64
    cfg = {
        "architectures": ["Qwen2Model"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": max_pos,
        "max_window_layers": 4,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": v[DEC_EOT],
        "pad_token_id": v[DEC_EOT],
        "torch_dtype": "float32",
        "use_cache": False,
        "vocab_size": len(vocab),
    }
    torch.manual_seed(99)
    model = DecoderModel(cfg)
    init_weights(model, 99, DEC_LINEAR_STD, DEC_EMB_STD)
    model.eval()

    names = ["input_ids", "attention_mask", "position_ids"]
    ids = torch.tensor([[5, 6, 7, 8, 9, v[DEC_EOT]], [v[DEC_EOT], v[DEC_EOT], 10, 11, 12, v[DEC_EOT]]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    export_onnx(model, (ids, mask, pos), names, out / "onnx" / "model.onnx")
    scopes = ["/model/embed_tokens/"] + [f"/model/layers.{i}/" for i in range(cfg["num_hidden_layers"])] + ["/model/norm/"]
    check_onnx(out / "onnx" / "model.onnx", names, 64, scopes)

    write_json(out / "config.json", cfg)
    write_json(out / "tokenizer.json", decoder_tokenizer_json(vocab))
    write_json(out / "tokenizer_config.json", {
        "add_bos_token": False,
        "add_eos_token": True,
        "additional_special_tokens": [DEC_PST],
        "clean_up_tokenization_spaces": False,
        "eos_token": DEC_EOT,
        "model_max_length": max_pos,
        "pad_token": DEC_EOT,
        "padding_side": "left",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "truncation_side": "right",
        "unk_token": "[UNK]",
    })
    write_json(out / "special_tokens_map.json", {
        "additional_special_tokens": [DEC_PST],
        "eos_token": DEC_EOT,
        "pad_token": DEC_EOT,
        "unk_token": "[UNK]",
    })
    write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(out / "sentence_bert_config.json", {"max_seq_length": max_pos, "do_lower_case": False})
    write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": cfg["hidden_size"],
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    })
    write_json(out / "config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": "3.0.1", "transformers": "4.41.2", "pytorch": torch.__version__},
        "prompts": {},  # instructions come from embedder.json's instruction_template
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    tp_first, tp_last = 1, 3
    write_json(out / "embedder.json", {
        "untrained": True,
        "pooling": "last",
        "final_norm_on_exit": True,
        "instruction_template": "Instruct: {instruction}\nQuery: {text}",
        "token_prepending": {"placeholder": DEC_PST, "first_layer": tp_first, "last_layer": tp_last},
    })

    # ---- references (unpadded, one sentence at a time)
    tok = PyBertTokenizer(vocab)
    all_ids, pooled_last, tp_ids, tp_last_vecs = [], [], [], []
    layers = {str(l): {"last_raw": [], "last_normed": []} for l in range(1, cfg["num_hidden_layers"] + 1)}
    plain_vecs, tp_vecs = [], []
    tp_cos = []
    with torch.no_grad():
        for s in SENTENCES:
            ids = tok.encode_decoder(s, 10_000)
            assert len(ids) + 1 <= max_pos, f"decoder reference sentence too long: {s!r}"
            all_ids.append(ids)
            x = torch.tensor([ids])
            p = torch.arange(len(ids))[None]
            states = model.raw_states(x, torch.ones_like(x), p)
            final = model.model.norm(states[-1])[0, -1]
            assert torch.equal(final, model(x, torch.ones_like(x), p)[0, -1])
            pooled_last.append(f32list(final))
            plain_vecs.append(final)
            for l in range(1, cfg["num_hidden_layers"] + 1):
                layers[str(l)]["last_raw"].append(f32list(states[l][0, -1]))
                layers[str(l)]["last_normed"].append(f32list(model.model.norm(states[l][0, -1])))

            tids = [v[DEC_PST]] + ids
            tp_ids.append(tids)
            tx = torch.tensor([tids])
            tstates = model.raw_states(tx, torch.ones_like(tx), torch.arange(len(tids))[None],
                                       tp_layers=(tp_first, tp_last))
            tvec = model.model.norm(tstates[-1])[0, -1]
            tp_last_vecs.append(f32list(tvec))
            tp_vecs.append(tvec)
            # the same tokens without the TP substitution
            nstates = model.raw_states(tx, torch.ones_like(tx), torch.arange(len(tids))[None])
            tp_cos.append(cosine(tvec, model.model.norm(nstates[-1])[0, -1]))

        # left-padding invariance of the exported forward()
        L = max(len(i) for i in all_ids)
        bid = torch.full((len(all_ids), L), v[DEC_EOT], dtype=torch.long)
        bmask = torch.zeros_like(bid)
        for r, ids in enumerate(all_ids):
            bid[r, L - len(ids):] = torch.tensor(ids)
            bmask[r, L - len(ids):] = 1
        bpos = (bmask.cumsum(-1) - 1).clamp(min=0)
        bout = model(bid, bmask, bpos)
        worst = 0.0
        for r, ids in enumerate(all_ids):
            single = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                           torch.arange(len(ids))[None])[0]
            worst = max(worst, float((bout[r, L - len(ids):] - single).abs().max()))
        assert worst < 1e-4, f"left padding changes real-token outputs by {worst}"
        print(f"  left-padded batch vs single max|diff| = {worst:.2e}")

    lo, hi = pairwise_cos_range(plain_vecs)
    print(f"  pairwise cosine of last-token references: min {lo:.4f} max {hi:.4f}")
    print(f"  token prepending vs plain (same tokens) cosine: min {min(tp_cos):.4f} max {max(tp_cos):.4f}")
    tp_vs_plain = [cosine(a, b) for a, b in zip(tp_vecs, plain_vecs)]
    print(f"  token prepending vs plain (without placeholder) cosine: min {min(tp_vs_plain):.4f} max {max(tp_vs_plain):.4f}")
    assert hi < 0.99, "degenerate decoder outputs"
    assert max(tp_cos) < 0.999, "token prepending has no measurable effect"

    write_json(out / "reference.json", {
        "model": "tiny-decoder",
        "max_length": max_pos,
        "sentences": SENTENCES,
        "token_ids": all_ids,
        "pooled": {"last": pooled_last},
        "layers": layers,
        "token_prepending": {
            "placeholder": DEC_PST,
            "placeholder_id": v[DEC_PST],
            "first_layer": tp_first,
            "last_layer": tp_last,
            "token_ids": tp_ids,
            "last": tp_last_vecs,
        },
        "notes": {
            "pooling": "torch, one sentence at a time (no padding), position_ids 0..n-1; last token of final normed output",
            "layers": "last_raw: last token of layer N output (1-based) before the final norm; last_normed: after model.norm",
            "token_prepending": "placeholder at position 0; after each layer l in [first_layer, last_layer] "
                                "the placeholder's hidden state is replaced by layer l's last-token output",
            "tp_vs_no_tp_cosine_min_max": [round(min(tp_cos), 6), round(max(tp_cos), 6)],
        },
    }, indent=None)
    dir_report(out)


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", nargs="?", const=str(REPO_ROOT / "models" / "minilm-shaped"), default=None,
                    metavar="OUT_DIR", help="only generate the MiniLM-L6-shaped benchmark model")
    ap.add_argument("--minilm-reranker", nargs="?", const=str(REPO_ROOT / "models" / "minilm-reranker-shaped"),
                    default=None, metavar="OUT_DIR", help="only generate the MiniLM-L6-shaped cross-encoder (benchmarks)")
    ap.add_argument("--untrained-default", default=None, metavar="OUT_DIR",
                    help="only generate the untrained placeholder default model (benchmarks/eval.ts baseline)")
    ap.add_argument("--only", choices=["tiny-bert", "tiny-decoder", "tiny-reranker"], default=None)
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    if args.minilm is not None:
        gen_minilm(Path(args.minilm).resolve())
        return 0
    if args.untrained_default is not None:
        gen_untrained_default(Path(args.untrained_default).resolve())
        return 0
    if args.minilm_reranker is not None:
        gen_minilm_reranker(Path(args.minilm_reranker).resolve())
        return 0
    todo = [args.only] if args.only else ["tiny-bert", "tiny-decoder", "tiny-reranker"]
    for name in todo:
        {"tiny-bert": gen_tiny_bert, "tiny-decoder": gen_tiny_decoder, "tiny-reranker": gen_tiny_reranker}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
