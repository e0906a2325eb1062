"""Quantile levels, the pinball loss, non-crossing quantiles, parametric heads and their quantiles."""

import math

import pytest
import torch

from lstm_lab.models.quantiles import (
    apply_offsets,
    conformal_offsets,
    constrain,
    default_levels,
    distribution_quantiles,
    gaussian_nll,
    interval,
    interval_coverage,
    monotone_quantiles,
    pinball_loss,
    student_t_icdf,
    student_t_nll,
)


def test_default_levels_are_the_80_and_95_intervals_and_the_median():
    assert default_levels() == (0.025, 0.1, 0.5, 0.9, 0.975)
    assert default_levels((0.5,)) == (0.25, 0.5, 0.75)
    assert default_levels(()) == (0.5,)
    with pytest.raises(ValueError, match="coverage"):
        default_levels((1.2,))


def test_pinball_loss_by_hand():
    levels = [0.1, 0.5, 0.9]
    pred = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)  # (B, H, C, Q)
    y = torch.tensor([2.0]).view(1, 1, 1)
    # errors y - pred = (1, 0, -1): 0.1 · 1, 0, (0.9 - 1) · (-1) → mean 0.2 / 3
    torch.testing.assert_close(pinball_loss(pred, y, levels), torch.tensor(0.2 / 3))
    y = torch.tensor([4.0]).view(1, 1, 1)  # errors (3, 2, 1): 0.3, 1.0, 0.9 → mean 2.2 / 3
    torch.testing.assert_close(pinball_loss(pred, y, levels), torch.tensor(2.2 / 3))
    two = torch.cat([pred, pred]), torch.tensor([2.0, 4.0]).view(2, 1, 1)  # mean over the batch as well
    torch.testing.assert_close(pinball_loss(*two, levels), torch.tensor(1.2 / 3))


def test_pinball_loss_is_minimised_at_the_empirical_quantile():
    y = torch.arange(1.0, 101.0).view(100, 1, 1)  # 1 … 100
    grid = torch.linspace(0.0, 101.0, 1011)
    losses = torch.stack([pinball_loss(torch.full((100, 1, 1, 1), float(g)), y, [0.1]) for g in grid])
    best = grid[losses.argmin()].item()
    assert 10.0 <= best <= 11.0  # any point between the 10th and 11th order statistics


@pytest.mark.parametrize("magnitude", [1.0, 1e3, 1e6, 1e20])
@pytest.mark.parametrize("center", [None, 0, 4])
def test_monotone_quantiles_never_cross(magnitude, center):
    torch.manual_seed(0)
    raw = torch.randn(64, 7, 5) * magnitude  # (…, Q)
    q = monotone_quantiles(raw, center)
    m = 2 if center is None else center
    assert q.shape == raw.shape and torch.isfinite(q).all()
    assert (q.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(q[..., m], raw[..., m])  # the median is the raw value as is


def test_monotone_quantiles_from_zeros_are_log2_apart():
    q = monotone_quantiles(torch.zeros(2, 5))
    torch.testing.assert_close(q[0], torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]) * math.log(2))
    with pytest.raises(ValueError, match="median position"):
        monotone_quantiles(torch.zeros(2, 5), center=5)


def test_interval_reads_the_right_levels():
    levels = default_levels()
    pred = torch.arange(5.0).expand(3, 5)  # level k → value k
    lower, upper = interval(levels, pred, 0.8)
    assert lower.tolist() == [1.0] * 3 and upper.tolist() == [3.0] * 3
    lower, upper = interval(levels, pred, 0.95)
    assert lower.tolist() == [0.0] * 3 and upper.tolist() == [4.0] * 3
    with pytest.raises(ValueError, match="not among"):
        interval(levels, pred, 0.5)
    y = torch.tensor([0.5, 2.0, 3.5])
    assert interval_coverage(y, torch.ones(3), torch.full((3,), 3.0)).item() == pytest.approx(1 / 3)


def test_gaussian_quantiles_match_the_closed_form():
    levels = default_levels()
    p = torch.tensor(levels)
    params = torch.tensor([[0.0, 1.0], [2.0, 0.5], [-1.0, 3.0]])  # (3, 2) loc, scale
    q = distribution_quantiles(params, levels, "gaussian")  # (3, Q)
    expected = params[:, :1] + params[:, 1:] * torch.distributions.Normal(0.0, 1.0).icdf(p)
    torch.testing.assert_close(q, expected)
    erfinv = params[:, :1] + params[:, 1:] * math.sqrt(2) * torch.erfinv(2 * p - 1)
    torch.testing.assert_close(q, erfinv)
    assert q[0, 3].item() == pytest.approx(1.2815516, abs=1e-5)  # z_0.9


def test_gaussian_nll_matches_the_closed_form():
    params = torch.tensor([1.0, 2.0]).expand(2, 3, 1, 2)  # (B, H, C, 2)
    y = torch.tensor([0.0, 1.0, 3.0]).view(1, 3, 1).expand(2, 3, 1)
    z2 = ((y - 1.0) / 2.0) ** 2
    expected = (0.5 * math.log(2 * math.pi) + math.log(2.0) + 0.5 * z2).mean()
    torch.testing.assert_close(gaussian_nll(params, y), expected)


@pytest.mark.parametrize("nu, closed_form", [
    (1.0, lambda p: torch.tan(math.pi * (p - 0.5))),  # Cauchy
    (2.0, lambda p: (2 * p - 1) / torch.sqrt(2 * p * (1 - p))),
    (4.0, lambda p: torch.sign(p - 0.5) * 2 * torch.sqrt(
        torch.cos(torch.arccos(torch.sqrt(4 * p * (1 - p))) / 3) / torch.sqrt(4 * p * (1 - p)) - 1)),
])
def test_student_t_quantiles_match_closed_forms(nu, closed_form):
    p = torch.tensor([0.001, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.999], dtype=torch.float64)
    t = student_t_icdf(p, torch.tensor(nu, dtype=torch.float64))
    torch.testing.assert_close(t, closed_form(p), rtol=1e-4, atol=1e-6)


def test_student_t_approaches_the_gaussian_and_reads_location_scale():
    levels = default_levels()
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(levels))
    params = torch.tensor([[1.0, 2.0, 1e6]])  # (1, 3) loc, scale, df
    torch.testing.assert_close(distribution_quantiles(params, levels, "student_t")[0], 1.0 + 2.0 * z,
                               rtol=1e-4, atol=1e-4)
    params = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    q = distribution_quantiles(params, levels, "student_t")
    assert q[0, 4].item() == pytest.approx(1.0 + 2.0 * 3.182446, rel=1e-4)  # t_3(0.975) = 3.182446
    q.sum().backward()  # gradients reach loc and scale (not df)
    assert params.grad[0, 0].item() == pytest.approx(5.0) and params.grad[0, 2].item() == 0.0


def test_constrained_parameters_stay_valid_for_any_raw_output():
    raw = torch.tensor([[0.0, -1e4, -1e4], [5.0, 1e4, 1e4], [0.0, 0.0, 0.0]])
    params = constrain(raw, "student_t")
    assert (params[:, 1] > 0).all() and (params[:, 2] >= 2).all() and torch.isfinite(params).all()
    torch.testing.assert_close(params[2], torch.tensor([0.0, math.log(2) + 1e-4, 2 + math.log(2)]))
    assert constrain(raw[:, :2], "gaussian").shape == (3, 2)
    y = torch.zeros(3)
    nll = student_t_nll(params, y)
    expected = -torch.distributions.StudentT(params[:, 2], params[:, 0], params[:, 1]).log_prob(y).mean()
    torch.testing.assert_close(nll, expected)
    with pytest.raises(ValueError, match="needs 3 parameters"):
        constrain(raw[:, :2], "student_t")
    with pytest.raises(ValueError, match="distribution"):
        constrain(raw, "poisson")


@pytest.mark.parametrize("spread", [0.5, 2.0])  # intervals half / twice as wide as they should be
def test_conformal_offsets_give_each_interval_its_coverage(spread):
    """Quantiles of a N(0, spread²) for data that is N(0, 1): the calibrated intervals cover 80 % and 95 % of new
    data (± 2 points on 20,000 points), per step ahead, whichever way the raw intervals were wrong."""
    levels = default_levels()
    z = torch.tensor([distribution_quantiles(torch.tensor([0.0, 1.0]), levels).tolist()])  # (1, Q) N(0, 1)
    g = torch.Generator().manual_seed(0)
    N, H, C = 4000, 3, 2
    pred = (spread * z).expand(N, H, C, len(levels))  # (N, H, C, Q)
    offsets = conformal_offsets(pred, torch.randn(N, H, C, generator=g), levels)  # (H, C, Q)
    assert offsets.shape == (H, C, len(levels)) and (offsets[..., 2] == 0).all()  # the median never moves
    assert ((offsets[..., 0] < 0) == (spread < 1)).all()  # too narrow: the lower bound goes down
    fresh = torch.randn(20_000 // (H * C), H, C, generator=g)
    calibrated = apply_offsets(pred[: len(fresh)], offsets, 2)
    assert (calibrated.diff(dim=-1) >= 0).all()
    for coverage in (0.8, 0.95):
        raw = float(interval_coverage(fresh, *interval(levels, pred[: len(fresh)], coverage)))
        assert abs(raw - coverage) > 0.04  # the raw intervals were off ...
        covered = float(interval_coverage(fresh, *interval(levels, calibrated, coverage)))
        assert covered == pytest.approx(coverage, abs=0.02)  # ... the calibrated ones are not


def test_conformal_offsets_on_few_windows_take_the_largest_score():
    levels = default_levels((0.95,))  # (0.025, 0.5, 0.975)
    pred = torch.tensor([[-1.0, 0.0, 1.0]]).expand(10, 1, 1, 3)  # (10, 1, 1, 3)
    y = torch.linspace(-3.0, 3.0, 10).view(10, 1, 1)  # ceil(11 · 0.95) = 11 > 10 windows: the largest score
    offsets = conformal_offsets(pred, y, levels)
    assert offsets[0, 0].tolist() == pytest.approx([-2.0, 0.0, 2.0])
    assert conformal_offsets(pred[:0], y[:0], levels).abs().sum() == 0  # no window: nothing moves


def test_a_bound_narrowed_past_the_median_stops_at_it():
    pred = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0]])  # (1, Q) levels 0.025 .. 0.975
    offsets = torch.tensor([[0.3, 0.8, 0.0, -0.9, -0.2]])  # the 80 % interval narrowed by more than its half-width
    out = apply_offsets(pred, offsets, 2)
    torch.testing.assert_close(out, torch.tensor([[-0.7, 0.0, 0.0, 0.0, 0.8]]))  # the median stays, nothing crosses
