"""A stack of LSTM blocks built from a ``ModelSpec``, plus pooling over time.

torch.nn.LSTM stacks layers of one size only; the spec allows 64 → 32 → 16. Consecutive layers of equal size
are grouped into one multi-layer LSTM so the fast path (oneDNN / cuDNN) still fuses them; a size change starts
a new block. Each block is ``lstm_lab.models.lstm.LSTM``, which picks the native or gate-level path itself.

Carrying state (a language model generating one character at a time, truncated BPTT): ``sequence(x, state)``
returns the per-step outputs and the final ``(h, c)`` of every block, and accepts them back to continue the
same sequences; ``forward(x, lengths, state=...)`` takes the same initial state. State = one ``(h_n, c_n)`` pair
per block, each ``(layers · directions, B, hidden)`` exactly as torch.nn.LSTM lays it out.
"""

from __future__ import annotations

from itertools import groupby

import torch
from torch import nn

from lstm_lab.models.attention import AdditiveAttention, DotProductAttention, max_pool, mean_pool
from lstm_lab.models.lstm import LSTM
from lstm_lab.models.spec import ModelSpec

# One (h_n, c_n) per block of the encoder, each (layers · directions, B, hidden).
EncoderState = list[tuple[torch.Tensor, torch.Tensor]]


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

    def sequence(
        self, x: torch.Tensor, state: EncoderState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, EncoderState]:
        """x (B, T, F) → (sequence outputs (B, T, D), final state of every block).

        ``state``: the initial state, e.g. the final state of the previous call to continue those sequences
        (None = zeros). With ``lengths`` the final state is taken at each sequence's true end.
        """
        if state is not None and len(state) != len(self.blocks):
            raise ValueError(f"state has {len(state)} entries for an encoder of {len(self.blocks)} block(s)")
        out, final = x, []
        for b, block in enumerate(self.blocks):
            if b:
                out = self.between(out)
            hx = None if state is None else state[b]
            if lengths is not None:
                out, (h_n, c_n) = block(out, hx, lengths=lengths)
            else:
                out, (h_n, c_n) = block(out, hx)
            final.append((h_n, c_n))
        return self._merge(out), final

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, *, state: EncoderState | None = None
    ):
        """x (B, T, F) → (sequence outputs (B, T, D), pooled (B, D)). ``lengths`` (B,) masks padding;
        ``state`` is an optional initial state (see :meth:`sequence`, which also returns the final one)."""
        seq, final = self.sequence(x, state, lengths)  # (B, T, D)
        h_n = final[-1][0]  # the last block's (layers · directions, B, H)
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
            pooled = mean_pool(seq, mask)  # (B, D)
        elif pooling == "max":
            pooled = max_pool(seq, mask)  # (B, D)
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
