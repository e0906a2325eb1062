"""Networks built from the model spec: stacking, bidirectional merge, pooling with padding, L2, forecaster."""

import pytest
import torch

from lstm_lab.models.encoder import LSTMEncoder, dense_head
from lstm_lab.models.forecaster import LSTMForecaster
from lstm_lab.models.spec import ModelSpec


def encoder(**kw):
    torch.manual_seed(0)
    return LSTMEncoder(3, ModelSpec(**kw)).eval()


def test_stack_of_different_sizes_groups_equal_neighbours():
    enc = encoder(hidden_sizes=[8, 8, 6, 4])
    assert [(b.hidden_size, b.num_layers) for b in enc.blocks] == [(8, 2), (6, 1), (4, 1)]
    seq, pooled = enc(torch.randn(2, 5, 3))
    assert seq.shape == (2, 5, 4) and pooled.shape == (2, 4)


@pytest.mark.parametrize("merge,width", [("concat", 10), ("sum", 5)])
def test_bidirectional_merge(merge, width):
    enc = encoder(hidden_sizes=[5], bidirectional=True, merge=merge)
    x = torch.randn(2, 7, 3)
    seq, pooled = enc(x)
    assert seq.shape == (2, 7, width) and pooled.shape == (2, width)
    out, (h_n, _) = enc.blocks[0](x)
    fwd_last, bwd_first = out[:, -1, :5], out[:, 0, 5:]
    expected = torch.cat([fwd_last, bwd_first], -1) if merge == "concat" else fwd_last + bwd_first
    torch.testing.assert_close(pooled, expected)  # "last" = forward's end and backward's start


@pytest.mark.parametrize("pooling,attention", [("last", "dot"), ("mean", "dot"), ("max", "dot"), ("attention", "dot"),
                                               ("attention", "additive")])
@pytest.mark.parametrize("impl", ["native", "cell"])
def test_padding_does_not_change_pooled_output(pooling, attention, impl):
    enc = encoder(hidden_sizes=[6, 4], bidirectional=True, pooling=pooling, attention=attention, impl=impl)
    x = torch.randn(1, 5, 3)
    _, alone = enc(x, lengths=torch.tensor([5]))
    padded = torch.cat([x, torch.randn(1, 9, 3)], dim=1)  # garbage after the true end
    _, in_batch = enc(padded, lengths=torch.tensor([5]))
    torch.testing.assert_close(in_batch, alone, atol=1e-5, rtol=1e-5)


def test_l2_penalties_are_separate():
    enc = encoder(hidden_sizes=[4], l2_input=0.5, l2_recurrent=0.0)
    w_ih = sum(p.pow(2).sum() for n, p in enc.named_parameters() if "weight_ih" in n)
    torch.testing.assert_close(enc.regularization(), 0.5 * w_ih)
    enc = encoder(hidden_sizes=[4], l2_input=0.0, l2_recurrent=2.0)
    w_hh = sum(p.pow(2).sum() for n, p in enc.named_parameters() if "weight_hh" in n)
    torch.testing.assert_close(enc.regularization(), 2.0 * w_hh)
    assert encoder(hidden_sizes=[4]).regularization().item() == 0.0


def test_spec_features_reach_the_lstm():
    enc = encoder(hidden_sizes=[4], variant="CIFG", recurrent_dropout=0.2, forget_bias=2.0)
    block = enc.blocks[0]
    assert block.resolved_impl == "cell" and block.variant == "CIFG" and block.recurrent_dropout == 0.2
    assert encoder(hidden_sizes=[4]).blocks[0].resolved_impl == "native"


def test_dense_head_shapes():
    head = dense_head(8, [16, 4], 6, 0.1)
    assert head(torch.randn(3, 8)).shape == (3, 6)


def test_forecaster_shapes_and_level_invariance():
    torch.manual_seed(0)
    model = LSTMForecaster(n_features=3, n_targets=2, horizon=4, spec=ModelSpec(hidden_sizes=[8])).eval()
    x = torch.randn(5, 10, 3)
    y = model(x)
    assert y.shape == (5, 4, 2)
    shifted = x.clone()
    shifted[..., :2] += 100.0  # targets moved to a level never seen: the forecast moves with them
    torch.testing.assert_close(model(shifted), y + 100.0, atol=1e-4, rtol=0)
    plain = LSTMForecaster(3, 2, 4, ModelSpec(hidden_sizes=[8]), residual=False).eval()
    assert plain(x).shape == (5, 4, 2)
