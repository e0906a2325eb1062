"""Pooling a sequence of LSTM outputs (B, T, D) into one vector per sequence (B, D).

Why: a classifier or regressor on top of an LSTM needs one vector per sequence. The usual choices are the
last valid hidden state, the mean over valid steps, or attention pooling — a learned, input-dependent
weighted mean, which also shows *which* steps the model used. Attention here is "self-attention with a
learned query" (the query is a parameter, not another sequence):

    DotProductAttention:  score_t = q·h_t / √D                    (Vaswani et al. 2017's scaling)
    AdditiveAttention:    score_t = vᵀ tanh(W h_t + b)           (Bahdanau et al. 2015)
    weights = softmax over valid t of score_t,   context = Σ_t weights_t h_t

Padding: ``mask`` (B, T) is True at valid steps. Padded steps get weight exactly 0 (so padding a sequence to
any length leaves its context unchanged), and a row with no valid step gets all-zero weights and a zero
context — never NaN, in the forward or the backward pass. That is why masked scores are set to the dtype's
most negative finite value rather than -inf (softmax of an all -inf row is 0/0), then the weights are
multiplied by the mask.

Batch-first layout throughout: use ``LSTM(..., batch_first=True)`` or transpose its output.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn


def masked_softmax_pool(outputs: Tensor, scores: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """outputs (B, T, D), scores (B, T), mask (B, T) bool or None -> context (B, D), weights (B, T)."""
    if mask is None:
        weights = torch.softmax(scores, dim=1)  # (B, T)
    else:
        mask = mask.to(torch.bool)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * mask  # exact zeros at padding; all-padded row -> all zeros
        outputs = outputs.masked_fill(~mask.unsqueeze(-1), 0.0)  # 0 · NaN padding would still be NaN
    context = torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)  # (B, 1, T) @ (B, T, D) -> (B, D)
    return context, weights


class DotProductAttention(nn.Module):
    """Scaled dot-product attention pooling with a learned query vector q (D,)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))  # (D,)

    def forward(self, outputs: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        scores = outputs @ self.query / math.sqrt(self.dim)  # (B, T)
        return masked_softmax_pool(outputs, scores, mask)


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention pooling: score_t = vᵀ tanh(W h_t + b), W (A, D), v (A,)."""

    def __init__(self, dim: int, attn_dim: Optional[int] = None):
        super().__init__()
        attn_dim = attn_dim or dim
        self.proj = nn.Linear(dim, attn_dim)  # W, b
        self.v = nn.Linear(attn_dim, 1, bias=False)  # v

    def forward(self, outputs: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        scores = self.v(torch.tanh(self.proj(outputs))).squeeze(-1)  # (B, T, A) -> (B, T)
        return masked_softmax_pool(outputs, scores, mask)


def last_state_pool(outputs: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
    """outputs (B, T, D) -> outputs[b, lengths[b] - 1] (B, D); the last step when lengths is None.

    For a bidirectional LSTM this is the forward direction's final state but the reverse direction's state
    after ONE step; use h_n (or concatenate h_n[-2], h_n[-1]) for the reverse direction's summary.
    """
    if lengths is None:
        return outputs[:, -1]
    B = outputs.shape[0]
    last = torch.as_tensor(lengths, device=outputs.device).long() - 1  # (B,)
    return outputs[torch.arange(B, device=outputs.device), last]


def mean_pool(outputs: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Mean over valid steps: outputs (B, T, D), mask (B, T) -> (B, D). A row with no valid step gives zeros."""
    if mask is None:
        return outputs.mean(dim=1)
    m = mask.to(torch.bool).unsqueeze(-1)  # (B, T, 1)
    total = outputs.masked_fill(~m, 0.0).sum(dim=1)  # (B, D)
    return total / m.sum(dim=1).clamp(min=1).to(outputs.dtype)


def max_pool(outputs: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Max over valid steps, per feature (max-over-time pooling): outputs (B, T, D), mask (B, T) -> (B, D).

    Padding never wins (filled with -inf before the max); a row with no valid step gives zeros, not -inf."""
    if mask is None:
        return outputs.amax(dim=1)
    m = mask.to(torch.bool).unsqueeze(-1)  # (B, T, 1)
    best = outputs.masked_fill(~m, float("-inf")).amax(dim=1)  # (B, D)
    return best.masked_fill(~m.any(dim=1), 0.0)
