"""Global probabilistic forecaster for a panel: one model for many series, quantiles for H steps at once.

Direct multi-horizon in the MQ-RNN spirit (Wen et al. 2017, "A Multi-Horizon Quantile Recurrent Forecaster"):

    x (B, L, C+P) ⊕ observed (B, L, 1)
        ── fold m steps into one ──▶ (B, L/m, m(C+P+1)) ⊕ id embedding (B, L/m, E)
        ── LSTMEncoder ──▶ context (B, D)
        ── global MLP ──▶ per-horizon contexts (B, H, K)                  one per step ahead
    [context_h, future_h] (B, H, K + U)
        ── local MLP (the same weights for every h) ──▶ raw (B, H, C, Q) or (B, H, C, P)
        ── monotone_quantiles / constrain + distribution_quantiles ──▶ quantiles (B, H, C, Q)

- Static covariates: an optional learned embedding of the series index, concatenated to every input step.
- Past covariates: the columns of ``x`` after the C targets, over the lookback only.
- Future-known covariates (calendar features, planned prices…): ``future_h`` reaches exactly the local MLP of
  step h, so what is known about step h shapes the forecast of step h and of no other.
- Folding (``fold`` = m > 1, seasonal folding): the LSTM reads m consecutive lookback rows as one step, e.g. a
  whole day of an hourly series (m = 24). The recurrence runs L/m steps instead of L, so a long lookback (two
  weeks of hours: 14 steps) costs less than one week unfolded, and each step sees a whole season side by side,
  its position in the fold standing for its phase. L must be a multiple of m; folds are aligned on the window's
  end (padding is on the left).
- Padding: a ``mask`` (B, L) with False on padded rows zeroes those rows, and a 0/1 "observed" channel tells
  the LSTM which zeros are padding (always there: a batch without a mask is all ones).
- Residual (default, as in LSTMForecaster): the targets are seen relative to an anchor, and the locations (the
  median, the quantiles, a distribution's loc) are predicted as changes from it. The output layer starts at
  zero, so the untrained median is exactly the anchor. ``anchor="last"``: the last observed value (the naive
  forecast; padding is on the left, so the last lookback row is always real). ``anchor="mean"``: the mean of the
  window's observed rows -- per-window mean normalisation (on log values, a division by the window's geometric
  mean, as ES-RNN and DeepAR put every window on one level), which keeps a noisy last value from moving the
  whole forecast.

Calibration: ``quantile_offsets`` (H, C, Q), a buffer saved with the weights, is added to the quantiles of
forecast made in eval mode (zeros until ``conformal_offsets`` fills it after training, from validation windows);
training steps never see it, and the median is not moved.

Heads: ``distribution=None`` is the quantile head (C × Q outputs per step, non-crossing by construction, trained
with the pinball loss); "gaussian" / "student_t" is the parametric head (C × P parameters per step, trained with
the NLL, its quantiles read off the distribution). Either way ``forward`` returns the same quantiles and median,
and ``loss(out, y)`` picks the right criterion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lstm_lab.models.encoder import LSTMEncoder, dense_head
from lstm_lab.models.quantiles import (
    DISTRIBUTIONS,
    apply_offsets,
    check_levels,
    constrain,
    default_levels,
    distribution_nll,
    distribution_quantiles,
    level_index,
    monotone_quantiles,
    pinball_loss,
)
from lstm_lab.models.spec import ModelSpec

ANCHORS = ("last", "mean")  # what a residual forecaster's changes are relative to


class _CalibratedQuantiles(nn.Module):
    """The ``quantile_offsets`` buffer (H, C, Q) of a forecaster or an ensemble, applied to eval-mode forecasts."""

    def _calibrated(self, quantiles: torch.Tensor) -> torch.Tensor:
        """quantiles (B, H, C, Q) with the calibration offsets; training steps see the intervals as trained."""
        if self.training:
            return quantiles
        return apply_offsets(quantiles, self.quantile_offsets, self.median_position)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before interval calibration have no offsets: they forecast uncalibrated (zeros).
        state_dict.setdefault(prefix + "quantile_offsets", torch.zeros_like(self.quantile_offsets))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PanelForecaster(_CalibratedQuantiles):
    """Global direct multi-horizon forecaster with quantile or distribution outputs; see the module docstring.

    n_inputs: C + P columns of ``x``; n_targets: C (the first columns of ``x``, and those of ``y``);
    n_future: U columns of ``future``; n_series / id_embedding: series count and embedding width (0 = none);
    context_size: K per horizon step; local_hidden: hidden width of the local MLP (0 = linear); fold: lookback
    rows per LSTM step (1 = one row per step).
    """

    def __init__(
        self,
        n_inputs: int,
        n_targets: int,
        horizon: int,
        spec: ModelSpec,
        *,
        n_future: int = 0,
        n_series: int = 0,
        id_embedding: int = 0,
        levels: Sequence[float] = default_levels(),
        distribution: str | None = None,
        context_size: int = 16,
        local_hidden: int = 32,
        residual: bool = True,
        anchor: str = "last",
        fold: int = 1,
    ):
        super().__init__()
        if not 1 <= n_targets <= n_inputs:
            raise ValueError(f"n_targets={n_targets}: the targets must be among the {n_inputs} input columns")
        if id_embedding and n_series < 1:
            raise ValueError("an id embedding needs n_series >= 1")
        if fold < 1:
            raise ValueError(f"fold={fold}: expected a number of lookback rows per LSTM step >= 1")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor {anchor!r}; expected one of {list(ANCHORS)}")
        if distribution is not None and distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution {distribution!r}; expected None (quantile head) or one of "
                             f"{list(DISTRIBUTIONS)}")
        self.n_targets, self.horizon, self.n_future, self.residual = n_targets, horizon, n_future, residual
        self.anchor, self.fold = anchor, fold
        self.distribution, self.context_size = distribution, context_size
        self.register_buffer("levels", torch.tensor(check_levels(levels)), persistent=False)  # (Q,)
        # The median's position: the quantile head's anchor (monotone_quantiles), and what `median` reports.
        self.median_index = level_index(self.levels, 0.5) if distribution is None else None
        self.median_position = level_index(self.levels, 0.5)  # of the 0.5 level, whatever the head
        self.n_outputs = len(self.levels) if distribution is None else DISTRIBUTIONS[distribution]  # Q or P
        # Interval calibration (see the module docstring): zeros = the intervals as trained.
        self.register_buffer("quantile_offsets", torch.zeros(horizon, n_targets, len(self.levels)))  # (H, C, Q)

        self.embedding = nn.Embedding(n_series, id_embedding) if id_embedding else None
        # + 1: the observed channel, per folded row; the id embedding once per step
        self.encoder = LSTMEncoder(fold * (n_inputs + 1) + id_embedding, spec)
        self.global_mlp = dense_head(spec.output_size, spec.head_hidden_sizes, horizon * context_size,
                                     spec.head_dropout)
        hidden = [local_hidden] if local_hidden else []
        self.local_mlp = dense_head(context_size + n_future, hidden, n_targets * self.n_outputs, spec.head_dropout)
        if residual:
            # Start as the anchor's forecast: every location is a change of exactly zero from it.
            nn.init.zeros_(self.local_mlp[-1].weight)
            nn.init.zeros_(self.local_mlp[-1].bias)

    def forward(self, batch: dict[str, torch.Tensor], with_quantiles: bool = True) -> dict[str, torch.Tensor]:
        """batch: x (B, L, C+P), optional future (B, H, U), series (B,), mask (B, L) → dict of
        quantiles (B, H, C, Q), median (B, H, C) and, for a parametric head, params (B, H, C, P).

        ``with_quantiles=False`` skips reading quantiles off a parametric head (the NLL needs only ``params``,
        and the Student-t quantiles cost a root search): training steps can pass it. The quantile head
        ignores it.
        """
        x, C, H = batch["x"], self.n_targets, self.horizon
        B, L, _ = x.shape
        mask = batch.get("mask")
        observed = torch.ones(B, L, 1, dtype=x.dtype, device=x.device) if mask is None else \
            mask[..., None].to(x.dtype)  # (B, L, 1) 1 = real row, 0 = padding

        # --- encoder: the lookback, relative to the anchor, padding zeroed ------------------------------------
        if self.residual:
            if self.anchor == "last":
                level = x[:, -1:, :C]  # (B, 1, C) last observed targets (padding is on the left)
            else:  # the mean over the observed rows only
                level = (x[..., :C] * observed).sum(1, keepdim=True) / observed.sum(1, keepdim=True)  # (B, 1, C)
            x = torch.cat([x[..., :C] - level, x[..., C:]], dim=-1)  # (B, L, C+P)
        rows = torch.cat([x * observed, observed], dim=-1)  # (B, L, C+P+1)
        if self.fold > 1:
            if L % self.fold:
                raise ValueError(f"a lookback of {L} rows does not fold into steps of {self.fold}")
            rows = rows.reshape(B, L // self.fold, self.fold * rows.shape[-1])  # (B, L/m, m(C+P+1))
        inputs = [rows]
        if self.embedding is not None:
            ids = self.embedding(batch["series"])  # (B, E)
            inputs.append(ids[:, None, :].expand(B, rows.shape[1], ids.shape[-1]))  # (B, L/m, E) at every step
        _, context = self.encoder(torch.cat(inputs, dim=-1))  # (B, D)

        # --- decoder: one context per step ahead, then the same local MLP at every step ---------------------
        contexts = self.global_mlp(context).view(B, H, self.context_size)  # (B, H, K)
        future = batch.get("future")
        if self.n_future:
            if future is None or future.shape[1:] != (H, self.n_future):
                got = None if future is None else tuple(future.shape)
                raise ValueError(f"future covariates of shape {got}; expected (B, {H}, {self.n_future})")
            contexts = torch.cat([contexts, future.to(contexts.dtype)], dim=-1)  # (B, H, K + U)
        raw = self.local_mlp(contexts).view(B, H, C, self.n_outputs)  # (B, H, C, Q or P)

        # --- outputs: non-crossing quantiles, or a distribution and its quantiles ----------------------------
        shift = level[..., None] if self.residual else 0.0  # (B, 1, C, 1) back to the input's level
        if self.distribution is None:
            quantiles = monotone_quantiles(raw, self.median_index) + shift  # (B, H, C, Q)
            return {"quantiles": self._calibrated(quantiles), "median": quantiles[..., self.median_index]}
        params = constrain(raw, self.distribution)  # (B, H, C, P) loc, scale (, df)
        params = torch.cat([params[..., :1] + shift, params[..., 1:]], dim=-1)  # only loc moves with the level
        out = {"median": params[..., 0], "params": params}  # both distributions are symmetric: median = loc
        if with_quantiles:
            out["quantiles"] = self._calibrated(distribution_quantiles(params, self.levels, self.distribution))
        return out

    def loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """Training criterion for y (B, H, C): the pinball loss over the levels, or the distribution's NLL."""
        if self.distribution is None:
            return pinball_loss(out["quantiles"], y, self.levels)
        return distribution_nll(out["params"], y, self.distribution)

    def regularization(self) -> torch.Tensor:
        return self.encoder.regularization()


class PanelEnsemble(_CalibratedQuantiles):
    """N trained ``PanelForecaster``s answering as one: each quantile is the median over the members (as ES-RNN
    and N-BEATS combine seeds: robust to one bad member), re-sorted along the levels so they never cross."""

    def __init__(self, members: Sequence[PanelForecaster]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        first = self.members[0]
        self.n_targets, self.horizon, self.n_future = first.n_targets, first.horizon, first.n_future
        self.register_buffer("levels", first.levels.clone(), persistent=False)  # (Q,)
        self.register_buffer("quantile_offsets", torch.zeros_like(first.quantile_offsets))  # (H, C, Q) the ensemble's
        self.median_position = first.median_position

    def forward(self, batch: dict[str, torch.Tensor], with_quantiles: bool = True) -> dict[str, torch.Tensor]:
        each = torch.stack([m(batch)["quantiles"] for m in self.members])  # (N, B, H, C, Q)
        quantiles = each.median(dim=0).values.sort(dim=-1).values  # (B, H, C, Q)
        return {"quantiles": self._calibrated(quantiles), "median": quantiles[..., self.median_position]}
