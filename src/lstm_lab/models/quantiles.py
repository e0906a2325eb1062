"""Probabilistic forecasts: quantile levels, the pinball loss, non-crossing quantiles, parametric heads.

A forecaster can say how unsure it is in two ways; both end in the same quantile tensor (…, Q):

    quantile head (MQ-RNN)    raw (…, Q) ── monotone_quantiles ───────────────────────────▶ q (…, Q)
                              trained with pinball_loss(q, y, levels)
    parametric head (DeepAR)  raw (…, P) ── constrain ──▶ params (…, P) ── distribution_quantiles ──▶ q (…, Q)
                              trained with gaussian_nll / student_t_nll (P = 2: loc, scale; P = 3: + df)

Intervals can then be calibrated on held-out windows (``conformal_offsets``, split conformal quantile regression):
each central interval is widened or narrowed by the amount that makes it cover its share of those windows.

Levels are probabilities in (0, 1), sorted, and include the median 0.5: ``default_levels((0.8, 0.95))`` is
(0.025, 0.1, 0.5, 0.9, 0.975), the 80 % interval being [q_0.1, q_0.9] and the 95 % one [q_0.025, q_0.975].
Everything here broadcasts over leading dimensions; forecasts are (B, H, C, Q).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

DISTRIBUTIONS = {"gaussian": 2, "student_t": 3}  # parameters per target: loc, scale (, df)
MIN_SCALE = 1e-4  # keeps the scale of a parametric head strictly positive
MIN_DF = 2.0  # Student-t df = MIN_DF + softplus(raw) >= 2, as in DeepAR: tails no heavier than t_2


# --------------------------------------------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------------------------------------------
def default_levels(intervals: Sequence[float] = (0.8, 0.95)) -> tuple[float, ...]:
    """Sorted quantile levels for central ``intervals`` plus the median: (0.8, 0.95) → (0.025, 0.1, 0.5, 0.9, 0.975)."""
    levels = {0.5}
    for coverage in intervals:
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"interval coverage must be in (0, 1), got {coverage}")
        tail = round((1.0 - coverage) / 2.0, 10)  # round: (1 - 0.8) / 2 is 0.09999999999999998 in floats
        levels |= {tail, round(1.0 - tail, 10)}
    return tuple(sorted(levels))


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """The levels as a tuple of floats, validated: strictly increasing, inside (0, 1)."""
    out = tuple(float(q) for q in levels)
    if not out or any(not 0.0 < q < 1.0 for q in out) or any(a >= b for a, b in zip(out, out[1:])):
        raise ValueError(f"quantile levels must be strictly increasing and inside (0, 1), got {list(out)}")
    return out


def level_index(levels: Sequence[float] | torch.Tensor, level: float) -> int:
    """Position of ``level`` in ``levels`` (compared with a 1e-6 tolerance); ValueError when absent."""
    values = [float(q) for q in levels]
    for i, q in enumerate(values):
        if abs(q - level) < 1e-6:
            return i
    raise ValueError(f"quantile level {level} is not among the levels {values}")


def interval(levels, pred: torch.Tensor, coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The central ``coverage`` interval from quantiles pred (…, Q): (lower (…), upper (…)).

    e.g. coverage 0.8 → the quantiles at levels 0.1 and 0.9, which must be among ``levels``.
    """
    tail = (1.0 - coverage) / 2.0
    return pred[..., level_index(levels, tail)], pred[..., level_index(levels, 1.0 - tail)]


def interval_coverage(y: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Fraction of the points y (…) inside [lower, upper] (same shape): a scalar in [0, 1]."""
    return ((y >= lower) & (y <= upper)).float().mean()


def central_intervals(levels) -> list[tuple[int, int, float]]:
    """``(lower index, upper index, coverage)`` of every central interval among ``levels``: each level q < 0.5
    whose partner 1 - q is there too (compared like ``level_index``), e.g. (0, 4, 0.95) and (1, 3, 0.8)."""
    values = [float(q) for q in levels]
    out = []
    for lo, q in enumerate(values):
        if q >= 0.5:
            break
        try:
            out.append((lo, level_index(values, 1.0 - q), round(1.0 - 2.0 * q, 6)))
        except ValueError:
            continue
    return out


def conformal_offsets(pred: torch.Tensor, y: torch.Tensor, levels) -> torch.Tensor:
    """Offsets (H, C, Q) that calibrate every central interval of quantiles pred (N, H, C, Q) on the held-out
    truths y (N, H, C), per step ahead and target (Romano, Patterson & Candès 2019, conformalized quantile
    regression): for the interval [q_lo, q_hi] of coverage c, the conformity score of a point is
    E = max(q_lo - y, y - q_hi) (negative inside), and Q_c is its ceil((N + 1) c)-th smallest value over the N
    windows (the largest when that exceeds N); the calibrated interval is [q_lo - Q_c, q_hi + Q_c]. Q_c < 0 narrows
    an interval that covered too much. The median's offset is 0; levels without a symmetric partner get 0."""
    N, H, C, Q = pred.shape
    offsets = torch.zeros(H, C, Q, dtype=pred.dtype, device=pred.device)
    if N == 0:
        return offsets
    for lo, hi, coverage in central_intervals(levels):
        scores = torch.maximum(pred[..., lo] - y, y - pred[..., hi])  # (N, H, C)
        k = min(math.ceil((N + 1) * coverage), N)  # the k-th smallest score
        q_c = torch.kthvalue(scores, k, dim=0).values  # (H, C)
        offsets[..., lo], offsets[..., hi] = -q_c, q_c
    return offsets


def apply_offsets(pred: torch.Tensor, offsets: torch.Tensor, median_index: int) -> torch.Tensor:
    """Quantiles pred (…, H, C, Q) moved by ``conformal_offsets`` (H, C, Q), the median kept where it is: a bound
    narrowed past the median stops at it (lower levels <= median <= upper levels), then the levels are sorted on
    each side so that they never cross."""
    moved = pred + offsets.to(pred.dtype)  # (…, H, C, Q)
    median = pred[..., median_index : median_index + 1]  # (…, H, C, 1) offset 0
    lower = torch.minimum(moved[..., :median_index], median).sort(dim=-1).values
    upper = torch.maximum(moved[..., median_index + 1 :], median).sort(dim=-1).values
    return torch.cat([lower, median, upper], dim=-1)


# --------------------------------------------------------------------------------------------------------------
# Quantile head: pinball loss and a monotone parameterisation
# --------------------------------------------------------------------------------------------------------------
def pinball_loss(pred: torch.Tensor, y: torch.Tensor, levels) -> torch.Tensor:
    """Quantile (pinball) loss averaged over everything: pred (B, H, C, Q), y (B, H, C), levels (Q,) → scalar.

    For level q and error e = y - pred:  q · e when e >= 0 (under-forecast), (q - 1) · e when e < 0. Its minimiser
    is the q-quantile of y, so one output per level learns that quantile (Koenker & Bassett 1978).
    """
    q = torch.as_tensor(levels, dtype=pred.dtype, device=pred.device)  # (Q,)
    error = y.unsqueeze(-1) - pred  # (B, H, C, Q)
    return torch.maximum(q * error, (q - 1.0) * error).mean()


def monotone_quantiles(raw: torch.Tensor, center: int | None = None) -> torch.Tensor:
    """Non-crossing quantiles from unconstrained outputs: raw (…, Q) → q (…, Q) with q[..., k] <= q[..., k + 1].

    Parameterisation, with m = ``center`` (the median's position; default Q // 2, the middle level):

        q_m     = raw_m                                          the median, as is
        q_{m+k} = q_m + Σ_{j=1..k} softplus(raw_{m+j})           increments upwards
        q_{m-k} = q_m - Σ_{j=1..k} softplus(raw_{m-j})           increments downwards

    softplus >= 0, so the quantiles cannot cross whatever the raw values (including huge ones: a softplus
    that underflows gives a tie, never a crossing). A zero raw gives the median 0 and gaps of log 2 between
    neighbouring levels, so a zero-initialised output layer starts at a sensible spread around its median.
    """
    Q = raw.shape[-1]
    m = Q // 2 if center is None else center
    if not 0 <= m < Q:
        raise ValueError(f"median position {m} is outside 0..{Q - 1}")
    median = raw[..., m : m + 1]  # (…, 1)
    up = median + torch.cumsum(F.softplus(raw[..., m + 1 :]), dim=-1)  # (…, Q - m - 1)
    down = median - torch.cumsum(F.softplus(raw[..., :m].flip(-1)), dim=-1)  # (…, m), nearest level first
    return torch.cat([down.flip(-1), median, up], dim=-1)  # (…, Q)


# --------------------------------------------------------------------------------------------------------------
# Parametric head (DeepAR style): constrained parameters, NLL, quantiles of the distribution
# --------------------------------------------------------------------------------------------------------------
def constrain(raw: torch.Tensor, distribution: str) -> torch.Tensor:
    """Unconstrained outputs raw (…, P) → parameters (…, P): loc as is, scale = softplus + MIN_SCALE and, for a
    Student-t, df = MIN_DF + softplus. A zero raw is (0, log 2 + MIN_SCALE[, 2 + log 2])."""
    _check_distribution(raw, distribution)
    loc = raw[..., :1]  # (…, 1)
    rest = F.softplus(raw[..., 1:])  # (…, P - 1)
    floors = raw.new_tensor([MIN_SCALE, MIN_DF][: raw.shape[-1] - 1])  # (P - 1,)
    return torch.cat([loc, rest + floors], dim=-1)  # (…, P)


def make_distribution(params: torch.Tensor, distribution: str) -> torch.distributions.Distribution:
    """torch.distributions object from constrained parameters (…, P); batch shape (…)."""
    _check_distribution(params, distribution)
    loc, scale = params[..., 0], params[..., 1]
    if distribution == "gaussian":
        return torch.distributions.Normal(loc, scale)
    return torch.distributions.StudentT(params[..., 2], loc, scale)


def gaussian_nll(params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of y (B, H, C) under N(loc, scale²), params (B, H, C, 2) → scalar."""
    return -make_distribution(params, "gaussian").log_prob(y).mean()


def student_t_nll(params: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of y (B, H, C) under a Student-t, params (B, H, C, 3) = (loc, scale, df)."""
    return -make_distribution(params, "student_t").log_prob(y).mean()


def distribution_nll(params: torch.Tensor, y: torch.Tensor, distribution: str) -> torch.Tensor:
    """``gaussian_nll`` or ``student_t_nll`` by name."""
    return gaussian_nll(params, y) if distribution == "gaussian" else student_t_nll(params, y)


def distribution_quantiles(params: torch.Tensor, levels, distribution: str = "gaussian") -> torch.Tensor:
    """Quantiles of the distribution: params (…, P), levels (Q,) → (…, Q), sorted since the levels are.

    loc + scale · z_q with z_q the standard quantile: the Normal's icdf, or for a Student-t ``student_t_icdf``
    (computed without a gradient through df; loc and scale keep theirs).
    """
    _check_distribution(params, distribution)
    p = torch.as_tensor(levels, dtype=params.dtype, device=params.device)  # (Q,)
    loc, scale = params[..., :1], params[..., 1:2]  # (…, 1)
    if distribution == "gaussian":
        z = torch.distributions.Normal(0.0, 1.0).icdf(p)  # (Q,)
    else:
        with torch.no_grad():
            z = student_t_icdf(p, params[..., 2:3])  # (…, Q)
    return loc + scale * z  # (…, Q)


def student_t_icdf(p: torch.Tensor, df: torch.Tensor, iterations: int = 6, nodes: int = 32) -> torch.Tensor:
    """Quantiles of the standard Student-t (torch has no icdf for it): p and df broadcast, df >= 1.

    Substituting t = √ν · tan θ turns the CDF into an integral over a bounded range:

        F(t) = 1/2 + sign(t) · G(θ),   G(θ) = c_ν ∫₀^θ cos^(ν-1)(u) du,   c_ν = Γ((ν+1)/2) / (√π Γ(ν/2))

    (ν = 1 is the Cauchy: G = θ / π). G is evaluated by Simpson's rule on ``nodes`` intervals and G(θ) = |p - 1/2|
    solved by Newton's method, started from the Cornish-Fisher expansion of t in the normal quantile z. G is
    increasing and concave on [0, π/2), so after at most one step from the right the iterates rise monotonically
    to the root. Accurate to ~1e-4 (relative) for df >= 2 up to the 0.999 level.
    """
    dtype = torch.promote_types(p.dtype, df.dtype)
    p, nu = torch.broadcast_tensors(p.to(torch.float64), df.to(torch.float64))
    target = (p - 0.5).abs()  # (…) G(θ) must reach this
    c = torch.exp(torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2)) / math.sqrt(math.pi)  # (…)
    z = torch.distributions.Normal(0.0, 1.0).icdf(0.5 + target)  # (…) >= 0, the normal quantile
    t = z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)  # Cornish-Fisher start
    theta = torch.atan(t / nu.sqrt())  # (…) in [0, π/2)
    weights = torch.ones(nodes + 1, dtype=torch.float64, device=p.device)  # Simpson: 1, 4, 2, 4, …, 4, 1
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    steps = torch.linspace(0.0, 1.0, nodes + 1, dtype=torch.float64, device=p.device)  # (N + 1,)
    for _ in range(iterations):
        u = theta[..., None] * steps  # (…, N + 1) nodes on [0, θ]
        integral = (torch.cos(u).pow(nu[..., None] - 1) * weights).sum(-1) * theta / (3 * nodes)  # (…)
        slope = c * torch.cos(theta).pow(nu - 1)  # G'(θ) > 0 below π/2
        theta = (theta - (c * integral - target) / slope).clamp(0.0, math.pi / 2 - 1e-9)
    return (torch.sign(p - 0.5) * nu.sqrt() * torch.tan(theta)).to(dtype)


def _check_distribution(t: torch.Tensor, distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution {distribution!r}; expected one of {list(DISTRIBUTIONS)}")
    if t.shape[-1] != DISTRIBUTIONS[distribution]:
        raise ValueError(f"a {distribution} needs {DISTRIBUTIONS[distribution]} parameters, got {t.shape[-1]}")
