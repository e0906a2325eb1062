"""Attention pooling and the simple pools: masking, padding invariance, no NaN on empty rows."""

import math

import pytest
import torch

from lstm_lab.models.attention import AdditiveAttention, DotProductAttention, last_state_pool, max_pool, mean_pool

D = 6
MODULES = [DotProductAttention, AdditiveAttention]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def padded(seq, T, fill=0.0):
    """seq (n, D) -> (1, T, D) padded with ``fill``, and its (1, T) mask."""
    n = seq.shape[0]
    out = torch.full((1, T, D), fill)
    out[0, :n] = seq
    return out, (torch.arange(T) < n)[None]


@pytest.mark.parametrize("cls", MODULES)
def test_padding_does_not_change_the_context(cls):
    attn = cls(D)
    seq = torch.randn(4, D)
    ctx0, w0 = attn(seq[None])  # no padding, no mask
    for T, fill in [(4, 0.0), (7, 0.0), (12, 3.0), (9, float("nan"))]:
        x, mask = padded(seq, T, fill)
        ctx, w = attn(x, mask)
        torch.testing.assert_close(ctx, ctx0, atol=1e-6, rtol=0)
        torch.testing.assert_close(w[:, :4], w0, atol=1e-6, rtol=0)
        assert (w[:, 4:] == 0).all()  # exactly zero


@pytest.mark.parametrize("cls", MODULES)
def test_weights_sum_to_one_and_shapes(cls):
    attn = cls(D)
    x = torch.randn(5, 8, D)
    mask = torch.arange(8)[None] < torch.tensor([8, 1, 3, 5, 2])[:, None]  # (B, T)
    ctx, w = attn(x, mask)
    assert ctx.shape == (5, D) and w.shape == (5, 8)
    torch.testing.assert_close(w.sum(1), torch.ones(5))
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    torch.testing.assert_close(ctx[1], x[1, 0])  # one valid step: all the weight on it


@pytest.mark.parametrize("cls", MODULES)
def test_fully_padded_row_gives_zeros_not_nan(cls):
    attn = cls(D)
    x = torch.randn(2, 5, D, requires_grad=True)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    ctx, w = attn(x, mask)
    assert torch.isfinite(ctx).all() and torch.isfinite(w).all()
    assert (w[1] == 0).all() and (ctx[1] == 0).all()
    (ctx.sum() + w.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters())


def test_dot_product_formula():
    attn = DotProductAttention(D)
    x = torch.randn(2, 5, D)
    scores = (x * attn.query).sum(-1) / math.sqrt(D)  # q·h_t / √D
    w = torch.softmax(scores, dim=1)
    ctx, weights = attn(x)
    torch.testing.assert_close(weights, w)
    torch.testing.assert_close(ctx, (w[..., None] * x).sum(1))


def test_additive_formula():
    attn = AdditiveAttention(D, attn_dim=4)
    x = torch.randn(2, 5, D)
    W, b, v = attn.proj.weight, attn.proj.bias, attn.v.weight[0]
    scores = torch.stack([torch.stack([v @ torch.tanh(W @ x[i, t] + b) for t in range(5)]) for i in range(2)])
    _, weights = attn(x)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=1))


def test_last_state_and_mean_pool():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    torch.testing.assert_close(last_state_pool(x, torch.tensor([4, 2])), torch.stack([x[0, 3], x[1, 1]]))
    torch.testing.assert_close(last_state_pool(x), x[:, -1])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    x_nan = x.clone()
    x_nan[1, 2:] = float("nan")
    torch.testing.assert_close(mean_pool(x_nan, mask), torch.stack([x[0].mean(0), x[1, :2].mean(0)]))
    torch.testing.assert_close(mean_pool(x), x.mean(1))
    assert (mean_pool(x, torch.zeros(2, 4, dtype=torch.bool)) == 0).all()


def test_max_pool_ignores_padding_even_when_it_is_larger():
    x = torch.randn(2, 4, D, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    padded = torch.where(mask[..., None], x, torch.full_like(x, 1e6))  # padding larger than any real value
    pooled = max_pool(padded, mask)
    torch.testing.assert_close(pooled, torch.stack([x[0, :3].amax(0), x[1, 0]]))
    torch.testing.assert_close(max_pool(x), x.amax(1))
    pooled.sum().backward()  # the gradient reaches exactly one valid step per (row, feature)
    assert (x.grad[0, 3] == 0).all() and (x.grad[1, 1:] == 0).all() and x.grad.sum() == 2 * D
    empty = max_pool(torch.randn(2, 4, D), torch.zeros(2, 4, dtype=torch.bool))
    assert (empty == 0).all()  # no valid step: zeros, not -inf
