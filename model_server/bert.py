"""A small BERT-family encoder in plain torch, so fleets can be built without downloading anything.

The layout follows BERT (embeddings, post-LayerNorm transformer layers, tanh pooler, task head) so compute
and memory scale like the real thing from "tiny" (2 layers, 128 hidden) up to bert-base (12 layers, 768 hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BertShape:
    """Architecture hyper-parameters; two models with the same shape share one traced graph."""

    layers: int = 2
    hidden: int = 128
    heads: int = 2
    intermediate: int = 512
    seq_len: int = 128
    vocab_size: int = 2000
    task: str = "classification"
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.task not in ("classification", "qa"):
            raise ValueError(f"task must be 'classification' or 'qa', not {self.task!r}")


SIZES: dict[str, BertShape] = {
    "tiny": BertShape(layers=2, hidden=128, heads=2, intermediate=512),
    "small": BertShape(layers=4, hidden=256, heads=4, intermediate=1024),
    "base": BertShape(layers=12, hidden=768, heads=12, intermediate=3072),
}


class Embeddings(nn.Module):
    position_ids: torch.Tensor

    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.word = nn.Embedding(shape.vocab_size, shape.hidden)
        self.position = nn.Embedding(shape.seq_len, shape.hidden)
        self.norm = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(shape.seq_len).unsqueeze(0), persistent=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.size(1)]
        return self.norm(self.word(input_ids) + self.position(positions))


class Layer(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.qkv = nn.Linear(shape.hidden, 3 * shape.hidden)
        self.attn_out = nn.Linear(shape.hidden, shape.hidden)
        self.attn_norm = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.ff_in = nn.Linear(shape.hidden, shape.intermediate)
        self.ff_out = nn.Linear(shape.intermediate, shape.hidden)
        self.ff_norm = nn.LayerNorm(shape.hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        context = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attn_norm(x + self.attn_out(context.transpose(1, 2).reshape(batch, seq, hidden)))
        return self.ff_norm(x + self.ff_out(nn.functional.gelu(self.ff_in(x))))


class BertModel(nn.Module):
    """``forward(input_ids, attention_mask)`` -> logits (classification) or (start_logits, end_logits) (qa)."""

    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.task = shape.task
        self.embeddings = Embeddings(shape)
        self.layers = nn.ModuleList(Layer(shape) for _ in range(shape.layers))
        self.pooler = nn.Linear(shape.hidden, shape.hidden)
        self.head = nn.Linear(shape.hidden, shape.num_labels if shape.task == "classification" else 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # Additive mask broadcast over heads and query positions: padded keys get -inf-like scores.
        mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x, mask)
        if self.task == "qa":
            start, end = self.head(x).unbind(-1)
            return start, end
        return self.head(torch.tanh(self.pooler(x[:, 0])))


def randomize(model: nn.Module, seed: int) -> None:
    """Give every parameter fresh N(0, 0.02) weights (LayerNorms stay at identity) from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                continue
            if name.endswith("bias"):
                param.zero_()
            else:
                param.normal_(0.0, 0.02, generator=generator)
