"""lstm_lab.models.lstm.LSTM against torch.nn.LSTM: equivalence, state_dict, dropout, gates, impl choice."""

import logging

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from lstm_lab.errors import LstmLabError
from lstm_lab.models import cell, fused_scan
from lstm_lab.models.lstm import LSTM, gate_saturation

ATOL = 1e-5  # fp32


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pair(I=5, H=4, L=1, bi=False, bf=False, **kw):
    """A torch.nn.LSTM and our LSTM with identical weights."""
    ref = torch.nn.LSTM(I, H, L, batch_first=bf, bidirectional=bi)
    ours = LSTM(I, H, L, batch_first=bf, bidirectional=bi, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def run(model, x, hx=None, **kw):
    """Forward + backward of a loss touching output, h_n and c_n; returns tensors and gradients."""
    x = x.detach().clone().requires_grad_()
    hx = None if hx is None else tuple(s.detach().clone().requires_grad_() for s in hx)
    out, (h, c) = model(x if "packer" not in kw else kw.pop("packer")(x), hx, **kw)
    data = out
    if hasattr(out, "batch_sizes"):  # the loss is defined on the padded layout, for packed and padded alike
        data = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=model.batch_first)[0]
    loss = (data * torch.linspace(-1, 1, data.numel()).view_as(data)).sum() + 2 * h.sum() + 3 * (c**2).sum()
    loss.backward()
    grads = {"x": x.grad} | ({} if hx is None else {"h0": hx[0].grad, "c0": hx[1].grad})
    grads |= {n: p.grad for n, p in model.named_parameters()}
    return out, h, c, grads


def assert_close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def assert_same_results(r1, r2):
    (o1, h1, c1, g1), (o2, h2, c2, g2) = r1, r2
    if hasattr(o1, "batch_sizes"):
        assert torch.equal(o1.batch_sizes, o2.batch_sizes)
        assert torch.equal(o1.sorted_indices, o2.sorted_indices)
        o1, o2 = o1.data, o2.data
    assert_close(o1, o2)
    assert_close(h1, h2)
    assert_close(c1, c2)
    assert g1.keys() == g2.keys()
    for k in g1:
        assert_close(g1[k], g2[k])


# --------------------------------------------------------------------------------------------------------
# Equivalence with torch.nn.LSTM


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("bf", [False, True])
def test_cell_matches_torch(L, bi, bf):
    ref, ours = pair(L=L, bi=bi, bf=bf, impl="cell")
    B, T = 3, 7
    x = torch.randn(B, T, 5) if bf else torch.randn(T, B, 5)
    hx = (torch.randn(L * (1 + bi), B, 4), torch.randn(L * (1 + bi), B, 4))
    assert_same_results(run(ref, x), run(ours, x))
    assert_same_results(run(ref, x, hx), run(ours, x, hx))


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("bf", [False, True])
def test_cell_matches_torch_on_variable_lengths(L, bi, bf):
    ref, ours = pair(L=L, bi=bi, bf=bf, impl="cell")
    lengths = torch.tensor([4, 9, 1, 9, 6])  # unsorted, with ties and a length-1 sequence
    B, T = len(lengths), int(lengths.max())
    x = torch.randn(B, T, 5) if bf else torch.randn(T, B, 5)
    hx = (torch.randn(L * (1 + bi), B, 4), torch.randn(L * (1 + bi), B, 4))

    def packer(x):
        return pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)

    expected = run(ref, x, hx, packer=packer)
    assert_same_results(expected, run(ours, x, hx, packer=packer))  # PackedSequence in, PackedSequence out

    # Padded input + lengths=: same numbers, outputs zero past each end, on both implementations.
    torch.manual_seed(1)
    x_nan = x.clone()
    valid = torch.arange(T)[:, None] < lengths[None, :]  # (T, B)
    x_nan[(valid.T if bf else valid) == 0] = float("nan")  # padding must never reach the arithmetic
    for impl in ("cell", "native"):
        model = LSTM(5, 4, L, batch_first=bf, bidirectional=bi, impl=impl)
        model.load_state_dict(ref.state_dict())
        o, h, c, g = run(model, x_nan if impl == "cell" else x, hx, lengths=lengths)
        assert_close(h, expected[1])
        assert_close(c, expected[2])
        padded_expected = torch.nn.utils.rnn.pad_packed_sequence(expected[0], batch_first=bf)[0]
        assert_close(o, padded_expected)
        assert (o.transpose(0, 1) if bf else o)[~valid].abs().max() == 0
        assert_close(g["weight_hh_l0"], expected[3]["weight_hh_l0"])
        if impl == "cell":
            xg = g["x"]
            assert_close(torch.where(torch.isnan(xg), 0, xg), expected[3]["x"])


def test_unbatched_input_matches_torch():
    ref, ours = pair(L=2, bi=True, impl="cell")
    x, hx = torch.randn(6, 5), (torch.randn(4, 4), torch.randn(4, 4))
    (o1, (h1, c1)), (o2, (h2, c2)) = ref(x, hx), ours(x, hx)
    assert o2.shape == o1.shape and h2.shape == h1.shape
    assert_close(o1, o2)
    assert_close(c1, c2)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_native_is_torch_including_proj_size():
    ref = torch.nn.LSTM(5, 6, 2, proj_size=3, batch_first=True)
    ours = LSTM(5, 6, 2, proj_size=3, batch_first=True)
    assert isinstance(ours, torch.nn.LSTM) and ours.resolved_impl == "native"
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 5)
    assert_same_results(run(ref, x), run(ours, x))


@pytest.mark.parametrize("backend", ["python", "auto"])  # auto: the compiled kernel where it builds
def test_fused_scan_gradcheck_and_matches_reference(backend, monkeypatch):
    """The hand-written backward of the fused path, checked numerically (float64), masks included."""
    monkeypatch.setattr(fused_scan, "LOOP_BACKEND", backend)
    T, B, H = 4, 2, 3
    dt = torch.float64
    xp = torch.randn(T, B, 4 * H, dtype=dt, requires_grad=True)
    w = torch.randn(4 * H, H, dtype=dt, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dt, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dt, requires_grad=True)
    valid = (torch.arange(T)[:, None] < torch.tensor([4, 2])[None]).unsqueeze(-1)  # (T, B, 1)
    rmask = torch.bernoulli(torch.full((B, H), 0.5, dtype=dt)) * 2
    for v, m in [(None, None), (valid, None), (None, rmask), (valid, rmask)]:
        torch.autograd.gradcheck(lambda *a: fused_scan.FusedLSTMScan.apply(*a, v, m), (xp, w, h0, c0))
        fused = fused_scan.FusedLSTMScan.apply(xp, w, h0, c0, v, m)
        ref = cell.scan_reference(xp, w, h0, c0, cell.get_variant("NP"), valid=v, rmask=m)[:3]
        for a, b in zip(fused, ref):
            assert_close(a, b, atol=1e-12)


def test_torchscript_loops_give_the_same_result(monkeypatch):
    ref, ours = pair(L=1, bi=True, impl="cell")
    x = torch.randn(6, 2, 5)
    expected = run(ours, x)
    monkeypatch.setattr(fused_scan, "LOOP_BACKEND", "script")
    assert_same_results(expected, run(ours, x))


# --------------------------------------------------------------------------------------------------------
# state_dict, forget_bias


@pytest.mark.parametrize("impl", ["native", "cell"])
def test_state_dict_round_trip_both_ways(impl):
    ref = torch.nn.LSTM(3, 5, 2, bidirectional=True)
    ours = LSTM(3, 5, 2, bidirectional=True, impl=impl)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())  # torch -> ours
    back = torch.nn.LSTM(3, 5, 2, bidirectional=True)
    back.load_state_dict(ours.state_dict())  # ours -> torch
    x = torch.randn(4, 2, 3)
    assert_close(back(x)[0], ours(x)[0])
    assert_close(ref(x)[0], ours(x)[0])


def test_variant_parameters_get_extra_keys_only_when_needed():
    base = set(torch.nn.LSTM(3, 5, 2, bidirectional=True).state_dict())
    assert set(LSTM(3, 5, 2, bidirectional=True, variant="NP", impl="cell").state_dict()) == base
    vanilla = set(LSTM(3, 5, 2, bidirectional=True, variant="vanilla").state_dict())
    assert vanilla - base == {"weight_peep_l0", "weight_peep_l0_reverse", "weight_peep_l1", "weight_peep_l1_reverse"}
    fgr = LSTM(3, 5, 1, variant="FGR").state_dict()
    assert fgr["weight_peep_l0"].shape == (15,) and fgr["weight_gg_l0"].shape == (15, 15)


@pytest.mark.parametrize("impl", ["native", "cell"])
def test_forget_bias_added_on_both_paths(impl):
    H = 4
    torch.manual_seed(3)
    ref = torch.nn.LSTM(3, H, 2)
    torch.manual_seed(3)
    ours = LSTM(3, H, 2, impl=impl, forget_bias=1.0)
    torch.manual_seed(3)
    plain = LSTM(3, H, 2, impl=impl, forget_bias=0.0)
    shift = torch.zeros(4 * H)
    shift[H : 2 * H] = 1.0  # the f block of the i, f, g, o layout
    for layer in range(2):
        assert_close(getattr(ours, f"bias_ih_l{layer}"), getattr(ref, f"bias_ih_l{layer}") + shift)
        assert torch.equal(getattr(ours, f"bias_hh_l{layer}"), getattr(ref, f"bias_hh_l{layer}"))
    for (n, a), b in zip(plain.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n  # forget_bias=0 draws exactly torch's initial weights
    ours.reset_parameters()
    assert getattr(ours, "bias_ih_l1")[H : 2 * H].min() > 1.0 - 2 / H**0.5


# --------------------------------------------------------------------------------------------------------
# Dropout


def _probe(recurrent_dropout=0.0, input_dropout=0.0, H=8, I=8):
    """Weights that make dropped units visible: with every other weight zero, i_t = σ(3·(mask ⊙ probe)), so
    i_t == 0.5 exactly where the mask is zero. Probe = h_{t-1} (recurrent) or x_t (input)."""
    m = LSTM(I, H, batch_first=True, return_gates=True, forget_bias=0.0,
             recurrent_dropout=recurrent_dropout, input_dropout=input_dropout)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        if recurrent_dropout:
            m.weight_ih_l0[2 * H : 3 * H] = torch.randn(H, I)  # g: gives c, h something to hold
            m.weight_hh_l0[:H] = 3 * torch.eye(H)  # i sees h_{t-1}
        else:
            m.weight_ih_l0[:H] = 3 * torch.eye(H)  # i sees x_t
    return m


def _dropped(gates, t0):
    return gates["i"][:, t0:] == 0.5  # (B, T - t0, H)


@pytest.mark.parametrize("kind", ["recurrent_dropout", "input_dropout"])
def test_variational_mask_same_every_step_differs_across_sequences(kind):
    model = _probe(**{kind: 0.5}).train()
    x = torch.randn(16, 7, 8)
    t0 = 1 if kind == "recurrent_dropout" else 0  # h_0 = 0: step 0 cannot show the recurrent mask
    d1 = _dropped(model(x)[2], t0)
    assert torch.equal(d1, d1[:, :1].expand_as(d1)), "mask changed within a sequence"
    per_seq = d1[:, 0]  # (B, H)
    assert 0.2 < per_seq.float().mean() < 0.8
    assert len({tuple(r.tolist()) for r in per_seq}) > 1, "all sequences got the same mask"
    assert not torch.equal(per_seq, _dropped(model(x)[2], t0)[:, 0]), "same mask on the next call"
    assert not _dropped(model.eval()(x)[2], t0).any(), "dropout active in eval()"


def test_dropout_off_in_eval_and_on_in_train():
    kw = dict(dropout=0.5, recurrent_dropout=0.5, input_dropout=0.5)
    model = LSTM(5, 6, 2, bidirectional=True, **kw)
    plain = LSTM(5, 6, 2, bidirectional=True, impl="cell")
    plain.load_state_dict(model.state_dict())
    x = torch.randn(7, 3, 5)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    assert_close(model(x)[0], plain(x)[0])
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])


def test_recurrent_dropout_gradients_match_reference_path(monkeypatch):
    """Fused path (hand-written backward) vs reference path (autograd), with the same dropout masks."""
    import lstm_lab.models.lstm as lstm_mod

    model = LSTM(5, 4, 1, bidirectional=True, recurrent_dropout=0.3, input_dropout=0.2).train()
    x = torch.randn(6, 3, 5)
    lengths = torch.tensor([6, 2, 4])
    torch.manual_seed(7)
    fused = run(model, x, lengths=lengths)
    monkeypatch.setattr(lstm_mod, "lstm_layer", lambda *a, **k: cell.lstm_layer(*a, **k, fused=False))
    torch.manual_seed(7)  # same masks
    assert_same_results(fused, run(model, x, lengths=lengths))


# --------------------------------------------------------------------------------------------------------
# Gates


@pytest.mark.parametrize("bf", [False, True])
def test_return_gates_shapes_and_consistency(bf):
    B, T, H = 3, 5, 4
    model = LSTM(5, H, 2, bidirectional=True, batch_first=bf, return_gates=True)
    x = torch.randn(B, T, 5) if bf else torch.randn(T, B, 5)
    out, (h, c), gates = model(x)
    expected = (B, T, 2 * H) if bf else (T, B, 2 * H)
    assert set(gates) == {f"{g}{s}" for g in "ifgoc" for s in ("", "_l0", "_l1")}
    assert all(v.shape == expected for v in gates.values())
    assert_close(out, gates["o"] * torch.tanh(gates["c"]))  # h = o ⊙ tanh(c), per step
    last = gates["c"][:, -1] if bf else gates["c"][-1]
    assert_close(last[:, :H], c[-2])  # forward direction of the last layer ends at T
    first = gates["c"][:, 0] if bf else gates["c"][0]
    assert_close(first[:, H:], c[-1])  # reverse direction ends at t = 0
    assert torch.equal(gates["i"], gates["i_l1"])
    out2, (h2, _) = model(x, return_gates=False)  # per-call override
    assert_close(out2, out)


def test_native_model_can_return_gates_on_demand():
    model = LSTM(3, 4)
    assert model.resolved_impl == "native"
    x = torch.randn(5, 2, 3)
    out, _, gates = model(x, return_gates=True)
    assert_close(out, model(x)[0])
    assert gates["f"].shape == (5, 2, 4)


def test_gates_with_lengths_are_zero_past_the_end():
    model = LSTM(3, 4, batch_first=True, return_gates=True)
    lengths = torch.tensor([5, 2])
    out, _, gates = model(torch.randn(2, 5, 3), lengths=lengths)
    assert gates["f"][1, 2:].abs().max() == 0 and gates["f"][1, :2].abs().min() > 0


def test_gate_saturation_values():
    f = torch.tensor([0.05, 0.5, 0.95, 0.2]).view(1, 4, 1)  # 2 of 4 saturated
    i = torch.tensor([0.5, 0.5, 0.5, 0.0]).view(1, 4, 1)  # 1 of 4 (the padding zero)
    o = torch.tensor([0.99, 0.999, 0.01, 0.5]).view(1, 4, 1)
    gates = {"i": i, "f": f, "o": o}
    assert gate_saturation(gates) == {"i": 0.25, "f": 0.5, "o": 0.75}
    mask = torch.tensor([[True, True, True, False]])
    assert gate_saturation(gates, mask=mask) == pytest.approx({"i": 0.0, "f": 2 / 3, "o": 1.0})
    assert gate_saturation(gates, low=0.3, high=0.7)["f"] == 0.75

    model = LSTM(3, 4, batch_first=True, return_gates=True)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    _, _, zero = model(torch.randn(2, 5, 3))
    assert model.gate_saturation(zero) == {"i": 0.0, "f": 0.0, "o": 0.0}  # all gates exactly 0.5
    with torch.no_grad():
        model.weight_ih_l0.fill_(50.0)
    _, _, big = model(torch.randn(2, 5, 3))
    assert all(v > 0.9 for v in model.gate_saturation(big).values())


# --------------------------------------------------------------------------------------------------------
# impl resolution and errors


@pytest.mark.parametrize(
    "kw, impl",
    [
        ({}, "native"),
        ({"proj_size": 2}, "native"),
        ({"dropout": 0.3, "num_layers": 2}, "native"),
        ({"variant": "CIFG"}, "cell"),
        ({"recurrent_dropout": 0.1}, "cell"),
        ({"input_dropout": 0.1}, "cell"),
        ({"return_gates": True}, "cell"),
        ({"impl": "cell"}, "cell"),
        ({"impl": "native"}, "native"),
    ],
)
def test_impl_auto_resolution(kw, impl, caplog):
    with caplog.at_level(logging.INFO, logger="lstm_lab.models.lstm"):
        model = LSTM(3, 4, **kw)
    assert model.resolved_impl == impl
    logged = [r.getMessage() for r in caplog.records if r.name == "lstm_lab.models.lstm"]
    assert len(logged) == 1 and f"impl={impl} (requested {kw.get('impl', 'auto')!r}" in logged[0]
    model(torch.randn(2, 1, 3))
    model(torch.randn(2, 1, 3))
    assert len([r for r in caplog.records if r.name == "lstm_lab.models.lstm"]) == 1  # once, not per call


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"impl": "fast"}, "unknown LSTM impl 'fast'"),
        ({"variant": "LSTM5"}, "unknown LSTM variant 'LSTM5'"),
        ({"impl": "native", "variant": "NOG"}, "impl='native'"),
        ({"impl": "native", "recurrent_dropout": 0.2}, "recurrent_dropout>0"),
        ({"impl": "cell", "proj_size": 2}, "proj_size"),
        ({"variant": "vanilla", "proj_size": 2}, "proj_size"),
        ({"recurrent_dropout": 1.0}, "recurrent_dropout must be in"),
        ({"input_dropout": -0.1}, "input_dropout must be in"),
    ],
)
def test_bad_arguments_raise_clear_errors(kw, message):
    with pytest.raises(LstmLabError, match=message.replace("(", r"\(")):
        LSTM(3, 4, **kw)


@pytest.mark.parametrize("impl", ["native", "cell"])
def test_bad_forward_arguments(impl):
    model = LSTM(3, 4, impl=impl)
    x = torch.randn(5, 2, 3)
    with pytest.raises(LstmLabError, match="lengths must lie in"):
        model(x, lengths=torch.tensor([6, 2]))
    with pytest.raises(LstmLabError, match="lengths has 3 entries"):
        model(x, lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(LstmLabError, match="not both"):
        model(pack_padded_sequence(x, torch.tensor([5, 2])), lengths=torch.tensor([5, 2]))
    if impl == "cell":
        with pytest.raises(LstmLabError, match="expected h0 of shape"):
            model(x, (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))


def test_packed_input_gates_are_padded_in_batch_first_layout():
    model = LSTM(3, 4, batch_first=True, bidirectional=True, return_gates=True)
    x = torch.randn(2, 5, 3)
    packed = pack_padded_sequence(x, torch.tensor([2, 5]), batch_first=True, enforce_sorted=False)
    out, (h, c), gates = model(packed)
    assert hasattr(out, "batch_sizes") and gates["f"].shape == (2, 5, 8)
    assert (gates["f"][0, 2:] == 0).all()
    _, (h2, c2), gates2 = model(x, lengths=torch.tensor([2, 5]))
    assert_close(h, h2)
    assert_close(gates["c"], gates2["c"])


def test_frozen_recurrent_weights_and_deepcopy():
    import copy

    model = LSTM(3, 4, impl="cell")
    model.weight_hh_l0.requires_grad_(False)
    x = torch.randn(5, 2, 3, requires_grad=True)
    model(x)[0].sum().backward()
    assert model.weight_hh_l0.grad is None and model.weight_ih_l0.grad is not None
    clone = copy.deepcopy(model)
    assert clone.resolved_impl == "cell" and clone.forget_bias == 1.0
    assert_close(clone(x)[0], model(x)[0])


def test_no_bias_matches_torch():
    ref = torch.nn.LSTM(5, 4, 2, bias=False)
    ours = LSTM(5, 4, 2, bias=False, impl="cell")  # forget_bias has nothing to go into: ignored
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 3, 5)
    assert_same_results(run(ref, x), run(ours, x))
