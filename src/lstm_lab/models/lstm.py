"""``LSTM``: a drop-in for ``torch.nn.LSTM`` that can also run the recurrence gate by gate.

Why: torch.nn.LSTM is fast (one fused oneDNN/cuDNN kernel) but closed: no LSTM variants, no variational
dropout, no gate activations. This class *is* a torch.nn.LSTM (a subclass: same constructor, same
``forward(input, hx)``, same parameters and state_dict keys, PackedSequence in and out), with extra keyword
arguments that switch to the gate-level implementation in ``cell.py`` when a feature needs it:

    impl="auto" | "native" | "cell"   auto = torch.nn.LSTM unless a feature below needs the cell;
                                      the choice is logged once and kept in ``.resolved_impl``
    variant="NP"                      Greff et al. (2015) variants (see cell.py); NP = torch.nn.LSTM
    forget_bias=1.0                   added to the forget-gate slice of ``bias_ih`` at init, on both paths
                                      (Jozefowicz et al. 2015; Keras ``unit_forget_bias``). ``bias_hh``
                                      keeps torch's init, so the effective forget bias is 1 + U(-k, k)+U(-k, k)
    recurrent_dropout=0.0             one Bernoulli mask per sequence (and layer, direction) on h_{t-1}
                                      before the recurrent matmul, reused at every step, training only
                                      (Gal & Ghahramani 2016 "variational" dropout; Keras recurrent_dropout)
    input_dropout=0.0                 one mask per sequence on each layer's input x, reused at every step
    return_gates=False                forward returns (output, (h_n, c_n), gates), see ``forward``
    dropout                           between layers, per element and step, exactly as torch.nn.LSTM

Both paths hold the same parameters: ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``,
``bias_hh_l{k}`` (4H,), rows ordered i, f, g, o, ``_reverse`` suffix for the backward direction. Variants
that need more get extra keys: ``weight_peep_l{k}`` (3H,) = peepholes p_i, p_f, p_o, and, for FGR,
``weight_gg_l{k}`` (3H, 3H) = previous [i, f, o] -> current [i, f, o]. So an NP model's state_dict loads into
torch.nn.LSTM and back.

Variable-length batches: pass a PackedSequence (as with torch), or padded input plus ``lengths=`` (B,).
Either way the state is frozen past each sequence's end, outputs there are zero, h_n / c_n are taken at each
sequence's last valid step, and the reverse direction starts at each sequence's own end.

Speed (CPU): the cell's NP loop -- the default variant, also under recurrent/input dropout -- runs in a C++
kernel built once with the system's compiler (``fused_kernel.py``; Python loops where there is none, ~1.4-1.7x
slower). Measured against torch.nn.LSTM and Keras in benchmarks/results/lstm_throughput.md.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstm_lab.errors import LstmLabError
from lstm_lab.models.cell import get_variant, lstm_layer

logger = logging.getLogger(__name__)

IMPLS = ("auto", "native", "cell")
GATE_NAMES = ("i", "f", "g", "o", "c")


class LSTM(nn.LSTM):
    """torch.nn.LSTM plus ``impl``, ``variant``, ``forget_bias``, ``recurrent_dropout``, ``input_dropout`` and
    ``return_gates`` (keyword-only; see the module docstring). ``forget_bias`` is ignored when ``bias=False``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        variant: str = "NP",
        forget_bias: float = 1.0,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        return_gates: bool = False,
    ):
        if impl not in IMPLS:
            raise LstmLabError(f"unknown LSTM impl {impl!r}; expected one of {list(IMPLS)}")
        spec = get_variant(variant)  # raises on an unknown name
        for name, p in (("recurrent_dropout", recurrent_dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise LstmLabError(f"{name} must be in [0, 1), got {p}")

        # Which features need the gate-level path, and which path runs.
        needs_cell = []
        if spec.name != "NP":
            needs_cell.append(f"variant={spec.name!r}")
        if recurrent_dropout > 0:
            needs_cell.append("recurrent_dropout>0")
        if input_dropout > 0:
            needs_cell.append("input_dropout>0")
        if return_gates:
            needs_cell.append("return_gates")
        if impl == "native" and needs_cell:
            raise LstmLabError(f"impl='native' (torch.nn.LSTM) cannot do {', '.join(needs_cell)}; use 'cell' or 'auto'")
        resolved = impl if impl != "auto" else ("cell" if needs_cell else "native")
        if resolved == "cell" and proj_size > 0:
            raise LstmLabError("proj_size > 0 is only supported by impl='native' (torch.nn.LSTM), not the cell path")

        # Read by reset_parameters(), which nn.LSTM.__init__ calls, so they must exist before it.
        self.forget_bias = float(forget_bias)
        self._spec = spec
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype
        )
        self.impl, self.resolved_impl, self.variant = impl, resolved, spec.name
        self.recurrent_dropout, self.input_dropout, self.return_gates = recurrent_dropout, input_dropout, return_gates

        # Extra parameters of the variants (none for NP, so its state_dict is exactly torch's).
        H, kw = hidden_size, {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            for sfx in ("", "_reverse")[: 1 + bidirectional]:
                if spec.peepholes:
                    self.register_parameter(f"weight_peep_l{layer}{sfx}", nn.Parameter(torch.empty(3 * H, **kw)))
                if spec.full_gate_recurrence:
                    self.register_parameter(f"weight_gg_l{layer}{sfx}", nn.Parameter(torch.empty(3 * H, 3 * H, **kw)))
        with torch.no_grad():
            stdv = 1.0 / math.sqrt(H)
            for name, p in self.named_parameters():
                if name.startswith(("weight_peep_", "weight_gg_")):
                    p.uniform_(-stdv, stdv)  # torch's init for every LSTM weight

        why = f" because of {', '.join(needs_cell)}" if needs_cell and impl == "auto" else ""
        logger.info("LSTM(%d, %d, layers=%d): impl=%s (requested %r%s)", input_size, H, num_layers, resolved, impl, why)

    def reset_parameters(self) -> None:
        super().reset_parameters()  # U(-1/√H, 1/√H) for every parameter, as torch.nn.LSTM
        if self.bias and self.forget_bias:
            H = self.hidden_size
            with torch.no_grad():
                for name in self._flat_weights_names:
                    if name.startswith("bias_ih_"):
                        getattr(self, name)[H : 2 * H] += self.forget_bias  # rows i, f, g, o: f is the 2nd block

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", impl={self.resolved_impl}"
        if self.variant != "NP":
            s += f", variant={self.variant}"
        for name in ("recurrent_dropout", "input_dropout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        return s

    # ------------------------------------------------------------------------------------------------------

    def forward(self, input, hx=None, *, lengths=None, return_gates: Optional[bool] = None):
        """Like torch.nn.LSTM.forward; returns ``(output, (h_n, c_n))``, plus ``gates`` when asked for.

        lengths: optional (B,) ints, for a padded (not packed) batch; see the module docstring.
        return_gates: overrides the constructor's flag for this call (runs the cell path; an NP model
            resolved to native can still show its gates, the weights being the same).

        gates: dict of per-step activations ``i, f, g, o`` (g = candidate) and cell state ``c`` of the LAST
        layer, each laid out like ``output`` when it is a tensor: (B, T, D·H) if batch_first else (T, B, D·H)
        (D = 2 if bidirectional, forward direction first; (T, D·H) for unbatched input). For a PackedSequence
        input they are padded tensors in that layout. Zero past each sequence's end. With num_layers > 1 the
        dict also holds every layer's gates as ``i_l0``, ``f_l0``, ..., ``c_l{L-1}``.
        """
        want_gates = self.return_gates if return_gates is None else return_gates
        if self.resolved_impl == "native" and not want_gates:
            return self._forward_native(input, hx, lengths)
        if self.proj_size > 0:
            raise LstmLabError("return_gates needs the cell path, which does not support proj_size > 0")
        return self._forward_cell(input, hx, lengths, want_gates)

    def _forward_native(self, input, hx, lengths):
        if lengths is None:
            return super().forward(input, hx)
        if isinstance(input, PackedSequence):
            raise LstmLabError("pass either a PackedSequence or lengths=, not both")
        x = self._check_padded_input(input)
        T = x.shape[1] if self.batch_first else x.shape[0]
        lengths = self._check_lengths(lengths, x.shape[0] if self.batch_first else x.shape[1], T)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False)
        out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
        return out, state

    def _forward_cell(self, input, hx, lengths, want_gates):
        # 1. Everything to (T, B, I), plus lengths (B,) or None when no sequence is shorter than T.
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise LstmLabError("pass either a PackedSequence or lengths=, not both")
            x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the caller's batch order
        else:
            unbatched = input.dim() == 2
            if unbatched:
                if lengths is not None:
                    raise LstmLabError("lengths= needs batched 3-D input")
                x = input.unsqueeze(1)
            else:
                x = self._check_padded_input(input)
                x = x.transpose(0, 1) if self.batch_first else x
        T, B, I = x.shape
        if I != self.input_size:
            raise LstmLabError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {I}")
        if lengths is not None:
            lengths = self._check_lengths(lengths, B, T).to(x.device)
            if bool((lengths == T).all()):
                lengths = None  # nothing padded: skip the masking

        D, L, H = 2 if self.bidirectional else 1, self.num_layers, self.hidden_size
        if hx is None:
            h0 = c0 = x.new_zeros(L * D, B, H)
        else:
            h0, c0 = hx
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            for name, s in (("h0", h0), ("c0", c0)):
                if tuple(s.shape) != (L * D, B, H):
                    raise LstmLabError(f"expected {name} of shape {(L * D, B, H)}, got {tuple(s.shape)}")

        # 2. Layers x directions. Each (layer, direction) samples its own per-sequence dropout masks.
        layer_input = x  # (T, B, I) then (T, B, D·H)
        h_n, c_n, layer_gates = [], [], []
        for layer in range(L):
            outs, dir_gates = [], []
            for d, sfx in enumerate(("", "_reverse")[:D]):
                k = layer * D + d
                p = lambda name: getattr(self, f"{name}_l{layer}{sfx}", None)  # noqa: E731
                out, h, c, gates = lstm_layer(
                    layer_input,
                    p("weight_ih"),
                    p("weight_hh"),
                    p("bias_ih"),
                    p("bias_hh"),
                    h0[k],
                    c0[k],
                    self._spec,
                    peep=p("weight_peep"),
                    w_gg=p("weight_gg"),
                    lengths=lengths,
                    reverse=d == 1,
                    input_mask=self._variational_mask(B, layer_input.shape[-1], self.input_dropout, x),
                    recurrent_mask=self._variational_mask(B, H, self.recurrent_dropout, x),
                    return_gates=want_gates,
                )
                outs.append(out)  # (T, B, H)
                h_n.append(h)
                c_n.append(c)
                dir_gates.append(gates)
            layer_input = torch.cat(outs, dim=2) if D == 2 else outs[0]  # (T, B, D·H)
            if want_gates:
                layer_gates.append({g: torch.cat([dg[g] for dg in dir_gates], dim=2) for g in GATE_NAMES})
            if self.dropout and layer < L - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        output = layer_input
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)  # (L·D, B, H)

        # 3. Back to the caller's layout (gates of a PackedSequence input: padded, in the batch_first layout).
        def layout(t: Tensor) -> Tensor:  # (T, B, F) -> (B, T, F) / (T, B, F) / (T, F)
            if unbatched:
                return t.squeeze(1)
            return t.transpose(0, 1) if self.batch_first else t

        output = self._repack(output, input, lengths) if packed else layout(output)
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        if not want_gates:
            return output, (h_n, c_n)
        gates = {g: layout(v) for g, v in layer_gates[-1].items()}
        if L > 1:
            gates.update({f"{g}_l{k}": layout(v) for k, lg in enumerate(layer_gates) for g, v in lg.items()})
        return output, (h_n, c_n), gates

    # ------------------------------------------------------------------------------------------------------

    def _variational_mask(self, B: int, n: int, p: float, like: Tensor) -> Optional[Tensor]:
        """(B, n) Bernoulli(1-p)/(1-p) mask, sampled once per sequence and reused at every step."""
        if not (self.training and p > 0):
            return None
        return like.new_empty(B, n).bernoulli_(1 - p).div_(1 - p)

    def _check_padded_input(self, input: Tensor) -> Tensor:
        if input.dim() != 3:
            raise LstmLabError(f"LSTM: expected 3-D input (or 2-D unbatched), got shape {tuple(input.shape)}")
        return input

    @staticmethod
    def _check_lengths(lengths, B: int, T: int) -> Tensor:
        lengths = torch.as_tensor(lengths, dtype=torch.long).reshape(-1)
        if lengths.numel() != B:
            raise LstmLabError(f"lengths has {lengths.numel()} entries for a batch of {B}")
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > T:
            raise LstmLabError(f"lengths must lie in [1, {T}] (the padded length), got min {lo}, max {hi}")
        return lengths

    @staticmethod
    def _repack(output: Tensor, like: PackedSequence, lengths: Optional[Tensor]) -> PackedSequence:
        """(T, B, F) padded output -> PackedSequence with the same batch_sizes and orderings as ``like``."""
        T, B = output.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        order = like.sorted_indices
        if order is not None:
            output, lengths = output.index_select(1, order), lengths.index_select(0, order.to(lengths.device))
        data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
        return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)

    def gate_saturation(self, gates: dict[str, Tensor], low: float = 0.1, high: float = 0.9, mask=None):
        """See the module-level ``gate_saturation``."""
        return gate_saturation(gates, low, high, mask)


def gate_saturation(
    gates: dict[str, Tensor], low: float = 0.1, high: float = 0.9, mask: Optional[Tensor] = None
) -> dict[str, float]:
    """Fraction of gate activations below ``low`` or above ``high``, for each gate i, f, o.

    Karpathy et al. (2015) call a gate left-saturated when < 0.1 and right-saturated when > 0.9: a
    right-saturated forget gate remembers, a left-saturated one resets. ``mask`` (the gates' layout without
    the feature dimension, True = valid step) excludes padding, which ``forward`` fills with zeros.
    """
    result = {}
    for name in ("i", "f", "o"):
        a = gates[name]
        saturated = (a < low) | (a > high)
        if mask is not None:
            saturated = saturated[mask.to(torch.bool)]  # (N_valid, D·H)
        result[name] = saturated.float().mean().item() if saturated.numel() else float("nan")
    return result
