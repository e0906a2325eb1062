"""Gate-level LSTM: the recurrence written out, its variants, and a fused fast path.

Why this file exists
--------------------
``torch.nn.LSTM`` runs one opaque fused kernel (oneDNN on CPU, cuDNN on GPU). It is the fastest way to
run the standard LSTM, but it cannot express the variants compared by Greff et al. (2015), "LSTM: A Search
Space Odyssey", nor variational (one mask per sequence) dropout on the recurrent state (Gal & Ghahramani
2016), nor hand back the gate activations (Karpathy et al. 2015, "Visualizing and Understanding Recurrent
Networks"). This file implements the recurrence itself so all of that is possible, while keeping
torch.nn.LSTM's parameter layout — rows of ``W_ih`` (4H, I) and ``W_hh`` (4H, H) ordered i, f, g, o, two bias
vectors — so weights move freely between the two implementations.

The equations, one layer, one direction (⊙ is the element-wise product)::

    a_t = W x_t + b_ih + b_hh + U h_{t-1}          (B, 4H), split into a_i, a_f, a_g, a_o
    i_t = σ(a_i + p_i ⊙ c_{t-1})                      input gate      (p_* = peepholes, variants only)
    f_t = σ(a_f + p_f ⊙ c_{t-1})                      forget gate
    g_t = tanh(a_g)                                   candidate ("block input" z in Greff et al.)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                   cell state
    o_t = σ(a_o + p_o ⊙ c_t)                          output gate (peeps at the *new* cell)
    h_t = o_t ⊙ tanh(c_t)

Variants (Greff et al. 2015, Table 1; each is "vanilla" = the equations above *with* peepholes, changed in
exactly one way; NP is the one torch.nn.LSTM implements)::

    NP    no peepholes                    NIAF  g_t = a_g (no tanh on the candidate)
    CIFG  i_t = 1 - f_t                   NOAF  h_t = o_t ⊙ c_t
    NFG   f_t = 1                         FGR   i, f, o also get R [i, f, o]_{t-1} (9 extra H×H matrices,
    NIG   i_t = 1                               stored as one (3H, 3H) matrix; gates at t=0 are zero)
    NOG   o_t = 1

A removed gate keeps its rows in W_ih / W_hh (so the state_dict keeps torch's shape); they get no gradient.

The time loop runs in ``scan_reference`` (every variant, gates returned, autograd) or, for NP, in
``lstm_lab.models.fused_scan.FusedLSTMScan``: hand-written backpropagation through time, on CPU in compiled C++
(``fused_kernel``, built once with the system's compiler; Python loops where there is none). How it was chosen
is measured in fused_scan.py: a training step of the cell takes 0.83-1.14x torch.nn.LSTM's on the three
benchmark shapes (2 threads; 1.4-2.1x with the Python loops), benchmarks/results/lstm_throughput.md.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from lstm_lab.errors import LstmLabError
from lstm_lab.models.fused_scan import FusedLSTMScan

# ----------------------------------------------------------------------------------------------------------
# Variants


@dataclasses.dataclass(frozen=True)
class Variant:
    """Which parts of the vanilla LSTM are present. See the table in the module docstring."""

    name: str
    peepholes: bool = True
    coupled_input_forget: bool = False  # CIFG: i = 1 - f
    no_forget_gate: bool = False  # NFG: f = 1
    no_input_gate: bool = False  # NIG: i = 1
    no_output_gate: bool = False  # NOG: o = 1
    no_input_activation: bool = False  # NIAF: g = a_g
    no_output_activation: bool = False  # NOAF: h = o * c
    full_gate_recurrence: bool = False  # FGR: [i, f, o]_{t-1} feed the gates through R (3H, 3H)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("NP", peepholes=False),
        Variant("vanilla"),
        Variant("CIFG", coupled_input_forget=True),
        Variant("NFG", no_forget_gate=True),
        Variant("NIG", no_input_gate=True),
        Variant("NOG", no_output_gate=True),
        Variant("NIAF", no_input_activation=True),
        Variant("NOAF", no_output_activation=True),
        Variant("FGR", full_gate_recurrence=True),
    )
}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise LstmLabError(f"unknown LSTM variant {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


# ----------------------------------------------------------------------------------------------------------
# Reference path: one readable step, a loop over it, autograd does the rest.


def lstm_step(
    a_t: Tensor,  # (B, 4H) W x_t + b, precomputed for all t
    h: Tensor,  # (B, H) h_{t-1} (already multiplied by the recurrent dropout mask, if any)
    c: Tensor,  # (B, H) c_{t-1}
    w_hh: Tensor,  # (4H, H) U, rows i, f, g, o
    variant: Variant,
    peep: Optional[Tensor] = None,  # (3H,) p_i, p_f, p_o
    w_gg: Optional[Tensor] = None,  # (3H, 3H) FGR: previous [i, f, o] -> current [i, f, o]
    gates_prev: Optional[Tensor] = None,  # (B, 3H) FGR: [i, f, o]_{t-1}
) -> Tuple[Tensor, Tensor, Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """One time step of any variant. Returns h_t, c_t and the activations (i, f, g, o), each (B, H)."""
    a = torch.addmm(a_t, h, w_hh.t())  # (B, 4H), the one fused recurrent matmul
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)  # each (B, H)
    if variant.full_gate_recurrence:
        r_i, r_f, r_o = (gates_prev @ w_gg.t()).chunk(3, dim=1)  # each (B, H)
        a_i, a_f, a_o = a_i + r_i, a_f + r_f, a_o + r_o
    if variant.peepholes:
        p_i, p_f, p_o = peep.chunk(3)  # each (H,)
        a_i, a_f = a_i + p_i * c, a_f + p_f * c

    f = torch.ones_like(a_f) if variant.no_forget_gate else torch.sigmoid(a_f)
    if variant.coupled_input_forget:
        i = 1.0 - f
    elif variant.no_input_gate:
        i = torch.ones_like(a_i)
    else:
        i = torch.sigmoid(a_i)
    g = a_g if variant.no_input_activation else torch.tanh(a_g)
    c = f * c + i * g  # (B, H)

    if variant.peepholes:
        a_o = a_o + p_o * c  # the output gate looks at the new cell state
    o = torch.ones_like(a_o) if variant.no_output_gate else torch.sigmoid(a_o)
    h = o * (c if variant.no_output_activation else torch.tanh(c))
    return h, c, (i, f, g, o)


def scan_reference(
    xp: Tensor,  # (T, B, 4H) input projection incl. both biases
    w_hh: Tensor,  # (4H, H)
    h: Tensor,  # (B, H) h_0
    c: Tensor,  # (B, H) c_0
    variant: Variant,
    peep: Optional[Tensor] = None,
    w_gg: Optional[Tensor] = None,
    valid: Optional[Tensor] = None,  # (T, B, 1) bool, False past each sequence's end
    rmask: Optional[Tensor] = None,  # (B, H) recurrent dropout mask, the same at every step
    return_gates: bool = False,
) -> Tuple[Tensor, Tensor, Tensor, Optional[dict[str, Tensor]]]:
    """Run ``lstm_step`` over time. Returns out (T, B, H), h_T, c_T and optionally gates {i,f,g,o,c}: (T, B, H).

    Past a sequence's end (``valid`` False) the state is frozen and outputs/gates are zero, so h_T, c_T are
    the state at each sequence's last valid step.
    """
    H = h.shape[1]
    gates_prev = h.new_zeros(h.shape[0], 3 * H) if variant.full_gate_recurrence else None  # (B, 3H)
    outs: List[Tensor] = []
    rec: dict[str, List[Tensor]] = {k: [] for k in "ifgoc"}
    for t in range(xp.shape[0]):
        h_in = h if rmask is None else h * rmask
        h_new, c_new, (i, f, g, o) = lstm_step(xp[t], h_in, c, w_hh, variant, peep, w_gg, gates_prev)
        ifo = torch.cat([i, f, o], dim=1) if gates_prev is not None else None  # (B, 3H)
        if valid is None:
            h, c, gates_prev = h_new, c_new, ifo
            step = {"i": i, "f": f, "g": g, "o": o, "c": c_new}
            outs.append(h_new)
        else:
            v = valid[t]  # (B, 1)
            h, c = torch.where(v, h_new, h), torch.where(v, c_new, c)
            if gates_prev is not None:
                gates_prev = torch.where(v, ifo, gates_prev)
            step = {"i": i * v, "f": f * v, "g": g * v, "o": o * v, "c": c_new * v}
            outs.append(h_new * v)
        if return_gates:
            for k, val in step.items():
                rec[k].append(val)
    gates = {k: torch.stack(vals) for k, vals in rec.items()} if return_gates else None
    return torch.stack(outs), h, c, gates


def reverse_time(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse (T, B, ...) along time, each sequence within its own length (padding stays in place).

    Applying it twice gives back x. With lengths, the reverse direction starts at each sequence's own end,
    which is what torch.nn.LSTM does for a PackedSequence.
    """
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    return x.gather(0, idx.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x))


def lstm_layer(
    x: Tensor,  # (T, B, I)
    w_ih: Tensor,  # (4H, I)
    w_hh: Tensor,  # (4H, H)
    b_ih: Optional[Tensor],  # (4H,)
    b_hh: Optional[Tensor],  # (4H,)
    h0: Tensor,  # (B, H)
    c0: Tensor,  # (B, H)
    variant: Variant,
    peep: Optional[Tensor] = None,  # (3H,)
    w_gg: Optional[Tensor] = None,  # (3H, 3H)
    lengths: Optional[Tensor] = None,  # (B,) long, only when some sequence is shorter than T
    reverse: bool = False,
    input_mask: Optional[Tensor] = None,  # (B, I) variational input dropout mask
    recurrent_mask: Optional[Tensor] = None,  # (B, H) variational recurrent dropout mask
    return_gates: bool = False,
    fused: bool = True,
) -> Tuple[Tensor, Tensor, Tensor, Optional[dict[str, Tensor]]]:
    """One direction of one layer. Returns out (T, B, H), h_n (B, H), c_n (B, H), gates or None.

    ``fused=False`` forces the reference loop even where the fused one applies (tests compare the two).
    """
    T, B, _ = x.shape
    valid = None
    if lengths is not None:
        valid = (torch.arange(T, device=x.device)[:, None] < lengths[None, :]).unsqueeze(-1)  # (T, B, 1)
        x = x.masked_fill(~valid, 0.0)  # padding never reaches the arithmetic, even if it holds NaN
    if input_mask is not None:
        x = x * input_mask  # (T, B, I), the same mask at every step
    if reverse:
        x = reverse_time(x, lengths)

    x2 = x.reshape(T * B, -1)  # every step's input projection in ONE (T·B, I) @ (I, 4H) matmul, biases fused in
    xp = (x2 @ w_ih.t() if b_ih is None else torch.addmm(b_ih + b_hh, x2, w_ih.t())).view(T, B, -1)  # (T, B, 4H)

    if fused and variant.name == "NP" and not return_gates:
        out, h_n, c_n = FusedLSTMScan.apply(xp, w_hh, h0, c0, valid, recurrent_mask)
        gates = None
    else:
        out, h_n, c_n, gates = scan_reference(
            xp, w_hh, h0, c0, variant, peep, w_gg, valid, recurrent_mask, return_gates
        )
    if reverse:
        out = reverse_time(out, lengths)
        if gates is not None:
            gates = {k: reverse_time(v, lengths) for k, v in gates.items()}
    return out, h_n, c_n, gates
