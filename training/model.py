"""The project's one BERT encoder definition, in the two layouts its models use, chosen by the config:

* HF BertModel (post-LN, the default when the config names no placement): a LayerNorm after the
  embeddings and after each residual sum. The test fixtures and the MiniLM-shaped benchmark models
  (tools/make_test_models.py) use it.
* The default model's variant (`encoder_config`: `layer_norm_placement: "pre"`,
  `embedding_layer_norm: false`), chosen so that every exit layer can start at the
  corpus-statistics baseline (benchmarks/EVAL.md):
    - no LayerNorm after the embeddings: a token's embedding row carries its frequency weight
      (SIF a/(a+p)) in its norm, so mean pooling of layer 0 is a SIF-weighted average;
    - pre-LN layers (h = h + Attn(LN(h)); h = h + FFN(LN(h))) with the residual branches' output
      projections initialised near zero (`init_identity`), so each layer starts as the identity;
    - no final norm: `last_hidden_state` is the residual stream after the last layer, exactly what
      an early exit after layer k returns for layer k.

Module and attribute names are HF's, so that torch.onnx.export names nodes by module scope
(`/embeddings/...`, `/encoder/layer.N/...`): the scopes the service splits on. Parameters are
registered in the same order in both layouts as HF does, which fixed-seed initialisation walks.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# Additive attention-mask value. -1e4 underflows exp() to exactly 0 in float32 (so padded keys never
# affect real tokens) and, unlike finfo(float32).min, survives a later float16 conversion without
# turning into -inf / NaN.
MASK_NEG = -10000.0


def attention_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, seq] 0/1 mask -> the additive [batch, 1, 1, seq] bias every layer's attention takes."""
    return (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * MASK_NEG


def bert_config(vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, max_pos: int,
                layer_norm_eps: float = 1e-12) -> dict:
    """HF BertModel's config.json (post-LN)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": ffn,
        "layer_norm_eps": layer_norm_eps,
        "max_position_embeddings": max_pos,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }


def encoder_config(vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4, ffn: int = 1024,
                   max_pos: int = 256) -> dict:
    """The default model's config.json: the pre-LN variant described above."""
    cfg = bert_config(vocab_size, hidden, layers, heads, ffn, max_pos, layer_norm_eps=1e-6)
    cfg.update({
        "layer_norm_placement": "pre",
        "embedding_layer_norm": False,
        "final_layer_norm": False,
        "note": "pre-LN BERT variant without embedding/final LayerNorm, trained by training/train_default_model.py; "
                "weights ship as ONNX only",
    })
    return cfg


def _pre_ln(cfg: dict) -> bool:
    return cfg.get("layer_norm_placement", "post") == "pre"


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], h, padding_idx=cfg["pad_token_id"])
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg["layer_norm_eps"]) if cfg.get("embedding_layer_norm", True) else None
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"]).unsqueeze(0),
                             persistent=False)

    def forward(self, input_ids, token_type_ids):
        pos = self.position_ids[:, : input_ids.size(1)]
        x = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
             + self.position_embeddings(pos))
        return x if self.LayerNorm is None else self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.head_dim = h // self.num_heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)

    def _split(self, x):
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + ext_mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.size(0), ctx.size(1), self.num_heads * self.head_dim)


class BertOutput(nn.Module):
    """A residual branch's projection back to the hidden size (HF's BertSelfOutput and BertOutput).
    Post-LN: LayerNorm(projection + residual). Pre-LN: the projection alone (the layer adds it)."""

    def __init__(self, cfg: dict, in_features: int, out_features: int | None = None):
        super().__init__()
        self.dense = nn.Linear(in_features, out_features or cfg["hidden_size"])
        self.LayerNorm = None if _pre_ln(cfg) else nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])

    def forward(self, hidden, residual):
        out = self.dense(hidden)
        return out if self.LayerNorm is None else self.LayerNorm(out + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        # HF names this submodule "self"; setattr keeps the exact scope name /attention/self/...
        setattr(self, "self", BertSelfAttention(cfg))
        self.output = BertOutput(cfg, cfg["hidden_size"])

    def forward(self, hidden, ext_mask):
        return self.output(getattr(self, "self")(hidden, ext_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])
        self.intermediate_act_fn = nn.GELU()  # exact (erf) GELU == HF "gelu"

    def forward(self, hidden):
        return self.intermediate_act_fn(self.dense(hidden))


class BertLayer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.pre_ln = _pre_ln(cfg)
        if self.pre_ln:
            self.attention_norm = nn.LayerNorm(h, eps=eps)
        self.attention = BertAttention(cfg)
        if self.pre_ln:
            self.ffn_norm = nn.LayerNorm(h, eps=eps)
        self.intermediate = BertIntermediate(cfg)
        # pre-LN only: `residual_scaling: "gate"` makes the layer a reweighting in context. The attention
        # reads the sentence, the FFN turns each token plus its context into one number z, and the
        # token is scaled by 1 + tanh(z): a layer can then change how much a token counts, never which
        # direction it points (the lexical signal of the trained table survives by construction).
        self.gated = self.pre_ln and cfg.get("residual_scaling") == "gate"
        self.output = BertOutput(cfg, cfg["intermediate_size"], 1 if self.gated else None)
        # pre-LN only: `residual_scaling: "token_norm"` scales each residual branch by the token's own
        # norm (h + |h| * f(LN(h))), so an update is relative to the token's SIF-weighted size and the
        # frequency weighting of the mean pool survives training (benchmarks/EVAL.md, issue 17)
        self.token_norm_scaled = cfg.get("residual_scaling") == "token_norm"

    def forward(self, h, ext_mask):
        if self.gated:
            context = self.attention(self.attention_norm(h), ext_mask)
            return h * (1 + torch.tanh(self.output(self.intermediate(self.ffn_norm(h) + context), h)))
        if self.pre_ln and self.token_norm_scaled:
            h = h + _token_norm(h) * self.attention(self.attention_norm(h), ext_mask)
            return h + _token_norm(h) * self.output(self.intermediate(self.ffn_norm(h)), h)
        if self.pre_ln:
            h = h + self.attention(self.attention_norm(h), ext_mask)
            return h + self.output(self.intermediate(self.ffn_norm(h)), h)
        attn = self.attention(h, ext_mask)
        return self.output(self.intermediate(attn), attn)


def _token_norm(h):
    # + 1e-12: the all-zero rows ([CLS], [SEP]) get a finite gradient and stay (almost) zero
    return torch.sqrt((h * h).sum(-1, keepdim=True) + 1e-12)


class BertEncoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg["num_hidden_layers"])])

    def forward(self, h, ext_mask):
        states = []
        for layer in self.layer:
            h = layer(h, ext_mask)
            states.append(h)
        return states


class BertModel(nn.Module):
    """The encoder. forward() returns last_hidden_state only (what gets exported)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def hidden_states(self, input_ids, attention_mask, token_type_ids=None):
        """List of [embeddings, layer1, ..., layerN] outputs."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        ext = attention_bias(attention_mask)
        h = self.embeddings(input_ids, token_type_ids)
        return [h] + self.encoder(h, ext)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.hidden_states(input_ids, attention_mask, token_type_ids)[-1]


def init_identity(model: BertModel, emb: torch.Tensor, seed: int, out_std: float = 0.0) -> None:
    """Token rows from corpus statistics; every layer starts (almost) as the identity."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    h = cfg["hidden_size"]
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.copy_(emb)
        model.embeddings.position_embeddings.weight.zero_()
        model.embeddings.token_type_embeddings.weight.zero_()
        for layer in model.encoder.layer:
            for lin in (getattr(layer.attention, "self").query, getattr(layer.attention, "self").key,
                        getattr(layer.attention, "self").value, layer.intermediate.dense):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(h))
                lin.bias.zero_()
            for lin in (layer.attention.output.dense, layer.output.dense):
                lin.weight.copy_(out_std * torch.randn(lin.weight.shape, generator=g))
                lin.bias.zero_()


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
