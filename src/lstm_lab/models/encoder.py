"""A stack of LSTM blocks built from a ``ModelSpec``, plus pooling over time.

torch.nn.LSTM stacks layers of one size only; the spec allows 64 → 32 → 16. Consecutive layers of equal size
are grouped into one multi-layer LSTM so the fast path (oneDNN / cuDNN) still fuses them; a size change starts
a new block. Each block is ``lstm_lab.models.lstm.LSTM``, which picks the native or gate-level path itself.
"""

from __future__ import annotations

from itertools import groupby

import torch
from torch import nn

from lstm_lab.models.attention import AdditiveAttention, DotProductAttention
from lstm_lab.models.lstm import LSTM
from lstm_lab.models.spec import ModelSpec


class LSTMEncoder(nn.Module):
    def __init__(self, input_size: int, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList()
        size_in = input_size
        groups = [(size, len(list(run))) for size, run in groupby(spec.hidden_sizes)]
        for g, (size, layers) in enumerate(groups):
            self.blocks.append(
                LSTM(
                    size_in,
                    size,
                    num_layers=layers,
                    batch_first=True,
                    dropout=spec.dropout if layers > 1 else 0.0,
                    bidirectional=spec.bidirectional,
                    impl=spec.impl,
                    variant=spec.variant,
                    forget_bias=spec.forget_bias,
                    recurrent_dropout=spec.recurrent_dropout,
                    input_dropout=spec.input_dropout if g == 0 else 0.0,
                )
            )
            size_in = 2 * size if spec.bidirectional else size
        # Between blocks the same dropout as between layers inside a block.
        self.between = nn.Dropout(spec.dropout)
        width = spec.output_size
        if spec.pooling == "attention":
            self.attend = DotProductAttention(width) if spec.attention == "dot" else AdditiveAttention(width)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        if self.spec.bidirectional and self.spec.merge == "sum":
            forward, backward = out.chunk(2, dim=-1)
            return forward + backward
        return out

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        """x (B, T, F) → (sequence outputs (B, T, D), pooled (B, D)). ``lengths`` (B,) masks padding."""
        out, h_n = x, None
        for b, block in enumerate(self.blocks):
            if b:
                out = self.between(out)
            if lengths is not None:
                out, (h_n, _) = block(out, lengths=lengths)
            else:
                out, (h_n, _) = block(out)
        seq = self._merge(out)  # (B, T, D)
        mask = None
        if lengths is not None:
            mask = torch.arange(seq.shape[1], device=seq.device)[None, :] < lengths[:, None]  # (B, T)
        pooling = self.spec.pooling
        if pooling == "last":
            # The final layer's h_n is the state at each sequence's true end (the backward direction's at t=0).
            if self.spec.bidirectional:
                last = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H)
                pooled = self._merge(last)
            else:
                pooled = h_n[-1]  # (B, H)
        elif pooling == "mean":
            if mask is None:
                pooled = seq.mean(dim=1)
            else:
                weights = mask.to(seq.dtype)
                pooled = (seq * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
        else:
            pooled, _ = self.attend(seq, mask)
        return seq, pooled

    def regularization(self) -> torch.Tensor:
        """L2 penalties on input and recurrent kernels, weighted separately (the seeds' Keras regularizers)."""
        zero = next(self.parameters()).new_zeros(())
        penalty = zero
        for name, param in self.blocks.named_parameters():
            if self.spec.l2_input and name.split(".")[-1].startswith("weight_ih"):
                penalty = penalty + self.spec.l2_input * param.pow(2).sum()
            elif self.spec.l2_recurrent and name.split(".")[-1].startswith("weight_hh"):
                penalty = penalty + self.spec.l2_recurrent * param.pow(2).sum()
        return penalty


def dense_head(width: int, hidden_sizes: list[int], out_features: int, dropout: float) -> nn.Sequential:
    """Optional ReLU dense layers, then a linear output layer."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
