"""The Greff et al. (2015) variants, each checked against its equations written out by hand below.

The hand-written steps use only the parameters (in float64) and never call into lstm_lab.
"""

import pytest
import torch

from lstm_lab.models.cell import VARIANTS
from lstm_lab.models.lstm import LSTM

I, H, B = 3, 4, 2


def σ(x):
    return 1 / (1 + torch.exp(-x))


# Each function takes the pre-activations a_* = W_* x + U_* h_{t-1} + b_* (B, H), c_{t-1} (B, H) and the
# peepholes p_i, p_f, p_o (H,), and returns i, f, g, o, c_t, h_t.


def np_(ai, af, ag, ao, c, p):
    i, f, g = σ(ai), σ(af), torch.tanh(ag)
    c = f * c + i * g
    o = σ(ao)
    return i, f, g, o, c, o * torch.tanh(c)


def vanilla(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = σ(ai + pi * c), σ(af + pf * c), torch.tanh(ag)
    c = f * c + i * g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * torch.tanh(c)


def cifg(ai, af, ag, ao, c, p):
    pi, pf, po = p
    f = σ(af + pf * c)
    i = 1 - f
    g = torch.tanh(ag)
    c = f * c + i * g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * torch.tanh(c)


def nfg(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = σ(ai + pi * c), torch.ones_like(c), torch.tanh(ag)
    c = c + i * g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * torch.tanh(c)


def nig(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = torch.ones_like(c), σ(af + pf * c), torch.tanh(ag)
    c = f * c + g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * torch.tanh(c)


def nog(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = σ(ai + pi * c), σ(af + pf * c), torch.tanh(ag)
    c = f * c + i * g
    return i, f, g, torch.ones_like(c), c, torch.tanh(c)


def niaf(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = σ(ai + pi * c), σ(af + pf * c), ag
    c = f * c + i * g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * torch.tanh(c)


def noaf(ai, af, ag, ao, c, p):
    pi, pf, po = p
    i, f, g = σ(ai + pi * c), σ(af + pf * c), torch.tanh(ag)
    c = f * c + i * g
    o = σ(ao + po * c)
    return i, f, g, o, c, o * c


HAND = {"NP": np_, "vanilla": vanilla, "CIFG": cifg, "NFG": nfg, "NIG": nig, "NOG": nog, "NIAF": niaf, "NOAF": noaf}


def params(model):
    d = {k: v.detach().double() for k, v in model.state_dict().items()}
    p = d.get("weight_peep_l0")
    return d, (None if p is None else (p[:H], p[H : 2 * H], p[2 * H :]))


def preacts(d, x, h):
    a = x @ d["weight_ih_l0"].T + h @ d["weight_hh_l0"].T + d["bias_ih_l0"] + d["bias_hh_l0"]  # (B, 4H)
    return a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]


def make(variant, **kw):
    torch.manual_seed(0)
    model = LSTM(I, H, batch_first=True, variant=variant, impl="cell", return_gates=True, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)  # larger than the default init, so every term matters
    return model


def check(model, x, hx, expected_steps):
    out, (h_n, c_n), gates = model(x, hx)
    for t, (i, f, g, o, c, h) in enumerate(expected_steps):
        for name, want in zip("ifgoc", (i, f, g, o, c)):
            torch.testing.assert_close(gates[name][:, t].double(), want, atol=1e-5, rtol=0, msg=f"{name} at {t}")
        torch.testing.assert_close(out[:, t].double(), h, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_n[0].double(), expected_steps[-1][5], atol=1e-5, rtol=0)
    torch.testing.assert_close(c_n[0].double(), expected_steps[-1][4], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", sorted(HAND))
def test_single_step_matches_hand_computation(variant):
    model = make(variant)
    x, h0, c0 = torch.randn(B, 1, I), torch.randn(1, B, H), torch.randn(1, B, H)
    d, p = params(model)
    step = HAND[variant](*preacts(d, x[:, 0].double(), h0[0].double()), c0[0].double(), p)
    check(model, x, (h0, c0), [step])


def test_fgr_two_steps_match_hand_computation():
    """FGR = vanilla + R·[i, f, o]_{t-1} added to the gates' pre-activations (zero gates before t = 0)."""
    model = make("FGR")
    x, h0, c0 = torch.randn(B, 2, I), torch.randn(1, B, H), torch.randn(1, B, H)
    d, p = params(model)
    R = d["weight_gg_l0"]  # (3H, 3H)
    ifo_prev = torch.zeros(B, 3 * H, dtype=torch.float64)
    h, c, steps = h0[0].double(), c0[0].double(), []
    for t in range(2):
        ai, af, ag, ao = preacts(d, x[:, t].double(), h)
        r = ifo_prev @ R.T
        i, f, g, o, c, h = vanilla(ai + r[:, :H], af + r[:, H : 2 * H], ag, ao + r[:, 2 * H :], c, p)
        steps.append((i, f, g, o, c, h))
        ifo_prev = torch.cat([i, f, o], dim=1)
    check(model, x, (h0, c0), steps)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_padding_does_not_change_any_sequence(variant):
    """Bidirectional, 2 layers, lengths=: each sequence gives what it gives when run alone, unpadded."""
    torch.manual_seed(1)
    model = LSTM(I, H, 2, batch_first=True, bidirectional=True, variant=variant, impl="cell")
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, I, requires_grad=True)
    out, (h_n, c_n) = model(x, lengths=lengths)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    for b, n in enumerate(lengths.tolist()):
        alone, (h1, c1) = model(x[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, :n], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(h_n[:, b : b + 1], h1, atol=1e-5, rtol=0)
        torch.testing.assert_close(c_n[:, b : b + 1], c1, atol=1e-5, rtol=0)
        assert (out[b, n:] == 0).all()


@pytest.mark.parametrize(
    "variant, unused",
    [("CIFG", slice(0, H)), ("NIG", slice(0, H)), ("NFG", slice(H, 2 * H)), ("NOG", slice(3 * H, 4 * H))],
)
def test_removed_gate_rows_get_no_gradient(variant, unused):
    model = make(variant)
    out, (h, c), _ = model(torch.randn(B, 4, I))
    (out.sum() + c.sum()).backward()
    assert model.weight_ih_l0.grad[unused].abs().max() == 0
    assert model.weight_hh_l0.grad[unused].abs().max() == 0
    used = torch.ones(4 * H, dtype=torch.bool)
    used[unused] = False
    assert model.weight_ih_l0.grad[used].abs().min() > 0


def test_vanilla_with_zero_peepholes_is_np():
    vanilla_model = make("vanilla")
    np_model = LSTM(I, H, batch_first=True, impl="cell")
    np_model.load_state_dict(vanilla_model.state_dict(), strict=False)
    with torch.no_grad():
        vanilla_model.weight_peep_l0.zero_()
    x = torch.randn(B, 6, I)
    torch.testing.assert_close(vanilla_model(x)[0], np_model(x)[0], atol=1e-6, rtol=0)


def test_cifg_gates_are_coupled():
    _, _, gates = make("CIFG")(torch.randn(B, 5, I))
    torch.testing.assert_close(gates["i"] + gates["f"], torch.ones_like(gates["i"]))
