"""Multi-step forecaster: the seeds' ``LSTM(50) → Dense`` generalised.

    x (B, L, F) ── LSTMEncoder ──▶ pooled (B, D) ── dense head ──▶ (B, H·C) ──▶ ŷ (B, H, C)

Direct multi-step: all H steps come out of one forward pass (no feeding predictions back). Targets are the
first C input channels (covariates follow). With ``residual=True`` the target channels are expressed relative
to the last observed value on the way in, and the head predicts the change from that value on the way out
(the normalisation of NLinear, Zeng et al. 2023). The network then never sees absolute levels, so a model
trained on one range of values keeps working when the series trends past it (Mauna Loa CO2 rises through
its test years, above anything in the training split). Its output layer starts at zero, so the untrained
model *is* the naive forecast, and training (which validates it before the first epoch) can only improve on it.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_lab.models.encoder import LSTMEncoder, dense_head
from lstm_lab.models.spec import ModelSpec


class LSTMForecaster(nn.Module):
    def __init__(self, n_features: int, n_targets: int, horizon: int, spec: ModelSpec, residual: bool = True):
        super().__init__()
        if n_targets > n_features:
            raise ValueError("targets must be among the input features")
        self.n_targets, self.horizon, self.residual = n_targets, horizon, residual
        self.encoder = LSTMEncoder(n_features, spec)
        self.head = dense_head(spec.output_size, spec.head_hidden_sizes, horizon * n_targets, spec.head_dropout)
        if residual:
            # Start as the naive forecast (every step = the last value): the change predicted is exactly zero until
            # training moves the output layer, so training starts from that baseline, not from noise around it.
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = self.n_targets
        if self.residual:
            last = x[:, -1:, :C]  # (B, 1, C) last observed target values
            x = torch.cat([x[..., :C] - last, x[..., C:]], dim=-1)  # targets relative to the last value
        _, pooled = self.encoder(x)  # (B, D)
        y = self.head(pooled).view(x.shape[0], self.horizon, C)  # (B, H, C)
        return y + last if self.residual else y

    def regularization(self) -> torch.Tensor:
        return self.encoder.regularization()
