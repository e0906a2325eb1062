"""The global probabilistic forecaster: shapes, naive start, padding, covariate alignment, calibrated intervals."""

import math

import pytest
import torch

from lstm_lab.models.panel_forecaster import PanelForecaster
from lstm_lab.models.quantiles import default_levels, interval, interval_coverage
from lstm_lab.models.spec import ModelSpec

B, L, H = 5, 7, 3
HEADS = [None, "gaussian", "student_t"]


def make_batch(C=2, P=1, U=0, mask=False, n_series=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "x": torch.randn(B, L, C + P, generator=g),  # (B, L, C + P)
        "future": torch.randn(B, H, U, generator=g),  # (B, H, U)
        "series": torch.randint(0, n_series, (B,), generator=g),  # (B,)
    }
    if mask:
        pad = torch.tensor([0, 2, 0, 6, 3])  # leading padded rows per window; the last row is always real
        batch["mask"] = torch.arange(L)[None, :] >= pad[:, None]  # (B, L)
        batch["x"] = batch["x"] * batch["mask"][..., None]  # padding rows are zeros, as the data layer gives them
    return batch


def make_model(C=2, P=1, U=0, seed=0, **kw):
    torch.manual_seed(seed)
    return PanelForecaster(C + P, C, H, ModelSpec(hidden_sizes=[6]), n_future=U, context_size=4, local_hidden=8, **kw)


def scramble_output_layer(model):
    """An output layer away from its zero start, so outputs depend on the inputs."""
    torch.manual_seed(1)
    torch.nn.init.normal_(model.local_mlp[-1].weight)
    torch.nn.init.normal_(model.local_mlp[-1].bias)
    return model


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("U, id_embedding, mask", [(0, 0, False), (3, 0, False), (0, 4, True), (3, 4, True)])
def test_output_shapes(head, U, id_embedding, mask):
    model = scramble_output_layer(make_model(U=U, distribution=head, n_series=4, id_embedding=id_embedding)).eval()
    out = model(make_batch(U=U, mask=mask))
    Q = len(default_levels())
    assert out["quantiles"].shape == (B, H, 2, Q) and out["median"].shape == (B, H, 2)
    assert (out["quantiles"].diff(dim=-1) >= 0).all()  # never crossing
    torch.testing.assert_close(out["median"], out["quantiles"][..., Q // 2])  # the 0.5 level is the median
    if head is None:
        assert "params" not in out
    else:
        assert out["params"].shape == (B, H, 2, 2 if head == "gaussian" else 3)
        assert model(make_batch(U=U, mask=mask), with_quantiles=False).keys() == {"median", "params"}
    loss = model.train().loss(model(make_batch(U=U, mask=mask)), torch.randn(B, H, 2))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.local_mlp.parameters())


@pytest.mark.parametrize("head", HEADS)
def test_untrained_residual_median_is_the_last_value(head):
    model = make_model(U=2, distribution=head, n_series=4, id_embedding=3).eval()
    batch = make_batch(U=2, mask=True)
    out = model(batch)
    last = batch["x"][:, -1:, :2].expand(B, H, 2)  # (B, H, C)
    assert torch.equal(out["median"], last)
    q = out["quantiles"]
    assert (q[..., 0] < last).all() and (q[..., -1] > last).all()  # a spread around it, from the start


@pytest.mark.parametrize("head", HEADS)
def test_untrained_mean_anchored_median_is_the_mean_of_the_observed_rows(head):
    model = make_model(distribution=head, anchor="mean").eval()
    batch = make_batch(mask=True)
    out = model(batch)
    m = batch["mask"][..., None].float()  # (B, L, 1)
    mean = (batch["x"][..., :2] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)  # (B, 1, C) padding left out
    torch.testing.assert_close(out["median"], mean.expand(B, H, 2))
    assert not torch.allclose(mean, batch["x"][:, -1:, :2])  # and not the last value
    # trained or not, a shift of a window's level shifts its forecast by as much (per-window normalisation)
    model = scramble_output_layer(model)
    shifted = dict(batch, x=torch.cat([batch["x"][..., :2] + 5.0, batch["x"][..., 2:]], -1) * m)
    torch.testing.assert_close(model(shifted)["quantiles"], model(batch)["quantiles"] + 5.0)


@pytest.mark.parametrize("head", HEADS)
def test_quantile_offsets_move_the_intervals_not_the_median_and_old_checkpoints_load(head):
    from lstm_lab.models.panel_forecaster import PanelEnsemble

    model = scramble_output_layer(make_model(distribution=head)).eval()
    batch = make_batch()
    before = model(batch)
    state = {k: v for k, v in model.state_dict().items() if k != "quantile_offsets"}  # saved before calibration
    offsets = torch.zeros_like(model.quantile_offsets)  # (H, C, Q)
    offsets[..., 0], offsets[..., -1] = -1.0, 2.0
    model.quantile_offsets.copy_(offsets)
    after = model(batch)
    torch.testing.assert_close(after["median"], before["median"])
    torch.testing.assert_close(after["quantiles"][..., 0], before["quantiles"][..., 0] - 1.0)
    torch.testing.assert_close(after["quantiles"][..., -1], before["quantiles"][..., -1] + 2.0)
    old = make_model(distribution=head)
    old.load_state_dict(state)  # no offsets in the state: zeros, the forecasts as trained
    assert old.quantile_offsets.abs().sum() == 0
    torch.testing.assert_close(old.eval()(batch)["quantiles"], before["quantiles"])
    ensemble = PanelEnsemble([model, old]).eval()
    ensemble.load_state_dict({k: v for k, v in ensemble.state_dict().items() if k != "quantile_offsets"})
    ensemble.quantile_offsets.copy_(offsets)  # the ensemble's own offsets act on its median-of-members answer
    plain = torch.stack([model(batch)["quantiles"], old(batch)["quantiles"]]).median(0).values.sort(-1).values
    torch.testing.assert_close(ensemble(batch)["quantiles"][..., -1], plain[..., -1] + 2.0)


def test_padded_rows_are_ignored_and_flagged():
    model = scramble_output_layer(make_model()).eval()
    batch = make_batch(mask=True)
    garbage = dict(batch, x=torch.where(batch["mask"][..., None], batch["x"], torch.full_like(batch["x"], 1e3)))
    torch.testing.assert_close(model(garbage)["quantiles"], model(batch)["quantiles"])
    unflagged = {k: v for k, v in batch.items() if k != "mask"}  # the same zeros, now claimed to be real rows
    changed = (model(unflagged)["median"] - model(batch)["median"]).abs().amax(dim=(1, 2))  # (B,)
    assert (changed[[1, 3, 4]] > 0).all() and (changed[[0, 2]] == 0).all()  # only the padded windows differ


def test_a_folded_lookback_gives_the_lstm_m_rows_per_step_side_by_side():
    m, L8, E = 4, 8, 3
    torch.manual_seed(0)
    model = PanelForecaster(3, 2, H, ModelSpec(hidden_sizes=[6]), context_size=4, local_hidden=8, n_series=4,
                            id_embedding=E, fold=m).eval()
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(L8)[None, :] >= torch.tensor([0, 2, 0, 5, 3])[:, None]  # (B, L) padding on the left
    batch = {"x": torch.randn(B, L8, 3, generator=g) * mask[..., None], "mask": mask,
             "series": torch.randint(0, 4, (B,), generator=g)}
    seen = []
    hook = model.encoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    out = model(batch)
    hook.remove()
    # Untrained, a folded forecaster is still exactly the anchor (the last row) ...
    torch.testing.assert_close(out["median"], batch["x"][:, -1:, :2].expand(B, H, 2))
    # ... and its LSTM ran L/m = 2 steps, step s holding rows s·m .. s·m + m - 1 in order (each: the targets
    # relative to the last value, the covariate, the observed flag), then the series embedding once.
    (steps,) = seen
    assert steps.shape == (B, L8 // m, m * (3 + 1) + E)
    level = batch["x"][:, -1:, :2]
    rows = torch.cat([torch.cat([batch["x"][..., :2] - level, batch["x"][..., 2:]], -1) * mask[..., None],
                      mask[..., None].float()], -1)  # (B, L, 4)
    torch.testing.assert_close(steps[..., : m * 4], rows.reshape(B, L8 // m, m * 4))
    torch.testing.assert_close(steps[..., m * 4:], model.embedding(batch["series"])[:, None].expand(B, 2, E))
    # Padded rows stay ignored, folded or not.
    model = scramble_output_layer(model)
    garbage = dict(batch, x=torch.where(mask[..., None], batch["x"], torch.full_like(batch["x"], 1e3)))
    torch.testing.assert_close(model(garbage)["quantiles"], model(batch)["quantiles"])
    with pytest.raises(ValueError, match="a lookback of 7 rows does not fold into steps of 4"):
        model(dict(batch, x=batch["x"][:, 1:], mask=mask[:, 1:]))
    with pytest.raises(ValueError, match="fold=0"):
        PanelForecaster(3, 2, H, ModelSpec(), fold=0)


def test_future_covariates_of_step_h_reach_step_h_only():
    model = scramble_output_layer(make_model(U=2)).eval()
    batch = make_batch(U=2)
    base = model(batch)["quantiles"]
    for h in range(H):
        future = batch["future"].clone()
        future[:, h] += 1.0
        moved = (model(dict(batch, future=future))["quantiles"] - base).abs().amax(dim=(0, 2, 3))  # (H,)
        assert moved[h] > 0 and (moved[torch.arange(H) != h] == 0).all()
    with pytest.raises(ValueError, match="future covariates"):
        model({k: v for k, v in batch.items() if k != "future"})


def test_series_embedding_changes_the_forecast():
    model = scramble_output_layer(make_model(n_series=4, id_embedding=3)).eval()
    batch = make_batch()
    other = dict(batch, series=(batch["series"] + 1) % 4)
    assert not torch.allclose(model(batch)["median"], model(other)["median"])


def test_invalid_configurations():
    with pytest.raises(ValueError, match="targets"):
        PanelForecaster(2, 3, H, ModelSpec())
    with pytest.raises(ValueError, match="n_series"):
        PanelForecaster(2, 1, H, ModelSpec(), id_embedding=4)
    with pytest.raises(ValueError, match="distribution"):
        PanelForecaster(2, 1, H, ModelSpec(), distribution="poisson")
    with pytest.raises(ValueError, match="0.5"):
        PanelForecaster(2, 1, H, ModelSpec(), levels=(0.1, 0.9))
    with pytest.raises(ValueError, match="increasing"):
        PanelForecaster(2, 1, H, ModelSpec(), levels=(0.9, 0.5, 0.1))
    with pytest.raises(ValueError, match="anchor 'median'"):
        PanelForecaster(2, 1, H, ModelSpec(), anchor="median")


def train(model, sample, steps, lr, batch_size, seed):
    """Adam with a one-cycle schedule on fresh synthetic batches (no overfitting, no epochs)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        batch = sample(batch_size, g)
        loss = model.loss(model(batch, with_quantiles=False), batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval()


# Two series, y_t = sin(2π t / 6) + σ_s · ε_t with σ = (0.3, 0.8): the calendar (sin, cos of the phase) is a
# future-known covariate, so the mean is learnable exactly; what the model has to get right is each series' σ,
# which only the id embedding tells it. Intervals are then checked per series on fresh held-out windows.
SIGMAS, PERIOD, SL, SH = torch.tensor([0.3, 0.8]), 6, 12, 4


def seasonal_panel(n, g):
    series = torch.randint(0, 2, (n,), generator=g)  # (n,)
    angle = 2 * math.pi * (torch.randint(0, PERIOD, (n, 1), generator=g) + torch.arange(SL + SH)) / PERIOD
    y = torch.sin(angle) + SIGMAS[series][:, None] * torch.randn(n, SL + SH, generator=g)  # (n, L + H)
    calendar = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)  # (n, L + H, 2)
    return {"x": y[:, :SL, None], "future": calendar[:, SL:], "y": y[:, SL:, None], "series": series}


@pytest.mark.parametrize("head", [None, "gaussian"])
def test_intervals_are_calibrated_on_gaussian_noise(head):
    torch.manual_seed(0)
    model = PanelForecaster(1, 1, SH, ModelSpec(hidden_sizes=[8]), n_future=2, n_series=2, id_embedding=4,
                            distribution=head, context_size=8, local_hidden=16, residual=False)
    train(model, seasonal_panel, steps=200, lr=0.01, batch_size=256, seed=0)
    test = seasonal_panel(4000, torch.Generator().manual_seed(123))
    with torch.no_grad():
        quantiles = model(test)["quantiles"]  # (N, H, 1, Q)
    for s in (0, 1):
        rows = test["series"] == s
        for coverage in (0.8, 0.95):
            lower, upper = interval(model.levels, quantiles[rows], coverage)
            observed = interval_coverage(test["y"][rows], lower, upper).item()
            assert abs(observed - coverage) <= 0.03, (s, coverage, observed)


@pytest.mark.parametrize("residual", [False, True])
def test_future_covariate_equal_to_the_target_is_followed(residual):
    """White-noise targets are unpredictable from their past: only a covariate aligned with step h can give
    y_h. With residual=True the model predicts the change from the last value, so the covariate is that change."""
    def sample(n, g):
        y = torch.randn(n, 8 + H, 1, generator=g)  # (n, L + H, 1)
        shift = y[:, 7:8] if residual else 0.0
        return {"x": y[:, :8], "future": y[:, 8:] - shift, "y": y[:, 8:], "series": torch.zeros(n, dtype=torch.long)}

    torch.manual_seed(0)
    model = PanelForecaster(1, 1, H, ModelSpec(hidden_sizes=[8]), n_future=1, context_size=8, local_hidden=16,
                            residual=residual)
    train(model, sample, steps=150, lr=0.03, batch_size=64, seed=0)
    test = sample(2000, torch.Generator().manual_seed(123))
    with torch.no_grad():
        median = model(test)["median"]  # (N, H, 1)
    assert (median - test["y"]).abs().mean() < 0.05 * test["y"].std()
