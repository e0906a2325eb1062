"""The fused NP time loop of the gate-level LSTM: forward without autograd, hand-written backward through time.

The equations and the variants are in ``lstm_lab.models.cell``; this module is the fast path that NP (the
default, and what recurrent/input dropout use) takes through them.

Three implementations of the time loop
--------------------------------------
All do the input projection ``W x_t + b`` for every time step in ONE matmul before the loop (biases fused into
it), and the four gates' recurrent term in ONE fused (B, H) @ (H, 4H) matmul per step.

* ``cell.scan_reference``: the equations in a plain loop, differentiated by autograd. Every variant, and it
  can return the gate activations. Autograd records ~12 nodes per step, and that bookkeeping dominates.
* ``FusedLSTMScan`` with the Python loops below (NP only): the forward loop runs without autograd and saves the
  gate activations; the backward pass is hand-written backpropagation through time: per step one
  (B, 4H) @ (4H, H) matmul plus a few element-wise ops, the σ'/tanh' factors computed for all steps at once
  before the loop, and dU = Σ_t dA_t^T h_{t-1} as ONE (4H, T·B) @ (T·B, H) matmul after it. ~15 tensor ops
  per step, each dispatched from Python.
* ``FusedLSTMScan`` with ``fused_kernel`` -- the default on CPU (float32/64) wherever a C++ compiler is found:
  the same two loops in C++, per step one BLAS GEMM plus ONE pass over (B, H) that computes the four gates,
  the cell update, h and the backward factors (split over torch's OpenMP threads when B·H >= 2048).

How the default was chosen (this repo's 2-core AMD EPYC VM, shared with other jobs; fp32; medians)
1. Earlier: hand-written BPTT vs autograd, forward + backward of one layer's scan, 2 threads:

    (B, T, I, H)                          (32, 200, 100, 128)   (64, 100, 65, 128)
    native torch.nn.LSTM                        83 ms                 61 ms
    autograd, plain Python loop                434 ms                280 ms
    autograd, torch.jit.script loop            295 ms                185 ms
    autograd, torch.compile'd step fn          717 ms                309 ms   compile: 25 s, then 6-7 s per shape
    fused BPTT, plain Python loops             125 ms                113 ms
    fused BPTT, torch.jit.script loops         117 ms                104 ms

   The cell stayed 1.4-1.7x native per training step (TorchScript: 1.3-1.5x, deprecated in torch 2.13).
2. Issue 18 (target: cell <= 1.3x native). Measured on the sentiment shape, scan forward + backward, 1 thread:
   * torch.compile (inductor, C++ backend) of the fused loops' per-step functions, no_grad, BPTT still by
     hand: first call 50 s, then 202 ms vs 187 ms for the same steps eager -- the compiled function's per-call
     guards and wrapper cost what its fusion saves. The whole loop compiles unrolled (70 s at T=10, not
     done after 600 s at T=100). Rejected.
   * A C++ extension on ATen (TORCH_LIBRARY, at::addmm_out + one fused element-wise pass per step): 145 ms
     vs 258 ms for the Python loops, but a 41 s build (17 s CPU) for the ATen headers.
   * The same loops including no torch header, the BLAS GEMM passed in as a function pointer: the same speed,
     a cold build of 1.0-2.2 s (cached afterwards; loading the cached one: 6 ms). Chosen: fused_kernel.
   * Its gate nonlinearities in double (4 lanes) rather than glibc's vector expf/tanhf (8 lanes): no
     measurable cost, and a gradient 3.8e-6 instead of 1.14e-5 from torch.nn.LSTM's (|g| ~ 45).
   * Its element-wise pass split over torch's 2 OpenMP threads vs serial, full training step / native,
     2 threads, 8 interleaved rounds: sentiment 0.88 vs 1.04, textgen 0.99 vs 1.18 -> split when B·H >= 2048
     (a threshold picked, not tuned: forecast's B·H = 1600 stays serial, ~20-30 µs of element-wise work a step).
3. Result, full training step with Adam, 2 threads, quiet rounds interleaved with torch.nn.LSTM and Keras
   (benchmarks/results/lstm_throughput.md, 2026-11-30; cell / native within each round, median [min-max]):

    shape (B, T, I, H, layers)         native     cell (kernel)           cell, Python loops (fallback)
    forecast  (32, 10, 1, 50, 1)       2.50 ms    3.14 ms  1.14 [0.95-1.58]   5.29 ms  1.68 [1.32-2.10] x cell
    sentiment (32, 200, 100, 128, 1)   78.9 ms    69.6 ms  0.83 [0.78-1.03]    112 ms  1.66 [1.38-2.02] x cell
    textgen   (64, 100, 65, 128, 2)     158 ms     150 ms  0.96 [0.73-1.13]    225 ms  1.44 [1.12-1.81] x cell

Chunked BPTT was not needed: the kernel saves K (T, B, 4H) and three (T, B, H) tensors per layer, no more
than the Python loops (peak RSS growth of a sentiment step: 54 MiB vs 60 native, 78 Python loops). ``LOOP_BACKEND``
forces a loop implementation ("python", "script" = TorchScript, "cpp" = the kernel or an error).
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from lstm_lab.models import fused_kernel


def _fused_forward_loop(
    xp: Tensor,  # (T, B, 4H), g block pre-scaled by 2
    w_hh: Tensor,  # (4H, H), g rows pre-scaled by 2
    h: Tensor,  # (B, H)
    c: Tensor,  # (B, H)
    valid: Optional[Tensor],  # (T, B, 1) bool
    rmask: Optional[Tensor],  # (B, H)
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns out (T, B, H), carried h (T, B, H), carried c (T, B, H), activations i|f|g|o (T, B, 4H).

    tanh(x) is computed as 2σ(2x) - 1 (the same function): on this CPU torch.tanh costs ~4x torch.sigmoid
    per element (45 vs 11 µs for 64×128 fp32, one thread), so the g block's pre-activation arrives doubled
    and ONE in-place sigmoid over (B, 4H) gives all four gates. Results are written straight into preallocated
    (T, ...) buffers (``out=``) instead of stacking lists afterwards.
    """
    T, B, H = xp.shape[0], h.shape[0], h.shape[1]
    w_t = w_hh.t()  # (H, 4H)
    acts = torch.empty_like(xp)  # (T, B, 4H)
    cs = xp.new_empty((T, B, H))
    hs = xp.new_empty((T, B, H))
    out = hs if valid is None else xp.new_empty((T, B, H))
    for t in range(T):
        h_in = h if rmask is None else h * rmask
        s = torch.addmm(xp[t], h_in, w_t, out=acts[t]).sigmoid_()  # (B, 4H) σ(a_i), σ(a_f), σ(2a_g), σ(a_o)
        s[:, 2 * H : 3 * H].mul_(2.0).sub_(1.0)  # g = 2σ(2a_g) - 1 = tanh(a_g)
        i, f, g, o = s.chunk(4, dim=1)  # each (B, H)
        if valid is None:
            c = torch.addcmul(f * c, i, g, out=cs[t])  # (B, H)
            h = torch.mul(o, torch.sigmoid(2.0 * c).mul_(2.0).sub_(1.0), out=hs[t])  # o ⊙ tanh(c)
        else:
            v = valid[t]  # (B, 1): past the end, carry the state and output zero
            c_new = torch.addcmul(f * c, i, g)
            h_new = o * torch.sigmoid(2.0 * c_new).mul_(2.0).sub_(1.0)
            c = torch.where(v, c_new, c, out=cs[t])
            h = torch.where(v, h_new, h, out=hs[t])
            torch.mul(h_new, v, out=out[t])
    return out, hs, cs, acts


def _fused_backward_loop(
    dout: Tensor,  # (T, B, H) gradient w.r.t. the outputs
    dh: Tensor,  # (B, H) gradient w.r.t. h_T
    dc: Tensor,  # (B, H) gradient w.r.t. c_T
    K: Tensor,  # (T, B, 4H) local derivatives of the activations, see FusedLSTMScan.backward
    K1: Tensor,  # (T, B, H) ∂h_t/∂c_t = o ⊙ (1 - tanh²c)
    f: Tensor,  # (T, B, H) ∂c_t/∂c_{t-1} = f
    w_hh: Tensor,  # (4H, H)
    valid: Optional[Tensor],  # (T, B, 1) float 0/1, already folded into K's o-block and K1
    rmask: Optional[Tensor],  # (B, H)
) -> Tuple[Tensor, Tensor, Tensor]:
    """Backpropagation through time. Returns dA (T, B, 4H) = ∂L/∂(pre-activations), ∂L/∂h_0, ∂L/∂c_0."""
    dA = torch.empty_like(K)
    for t in range(dout.shape[0] - 1, -1, -1):
        dh_in = dout[t] + dh  # (B, H) gradient reaching h_t
        if valid is None:
            dc_t = torch.addcmul(dc, dh_in, K1[t])  # (B, H) total gradient on c_t
        else:
            dc_t = torch.addcmul(dc * valid[t], dh_in, K1[t])  # zero past the end
        d = torch.mul(torch.cat([dc_t, dc_t, dc_t, dh_in], dim=1), K[t], out=dA[t])  # (B, 4H) da_i|f|g|o
        dh_prev = torch.mm(d, w_hh)  # (B, H) through the recurrent matmul
        if rmask is not None:
            dh_prev = dh_prev * rmask
        dc_prev = dc_t * f[t]
        if valid is not None:  # past the end the state was carried unchanged: pass the gradient through
            skip = 1.0 - valid[t]  # (B, 1)
            dh_prev = torch.addcmul(dh_prev, skip, dh)
            dc_prev = torch.addcmul(dc_prev, skip, dc)
        dh, dc = dh_prev, dc_prev
    return dA, dh, dc


# "auto": the compiled kernel (fused_kernel) for CPU float32/float64 when it builds, else the Python loops;
# "python", "script" (TorchScript) or "cpp" (the kernel; an error where it cannot be built). See the module
# docstring for the measurements behind the default.
LOOP_BACKEND = "auto"
_SCRIPTED: dict[str, object] = {}


def _loops():
    if LOOP_BACKEND in ("python", "auto", "cpp"):
        return _fused_forward_loop, _fused_backward_loop
    if not _SCRIPTED:
        with warnings.catch_warnings():  # torch.jit.script is deprecated in torch 2.13
            warnings.simplefilter("ignore")
            _SCRIPTED["fwd"] = torch.jit.script(_fused_forward_loop)
            _SCRIPTED["bwd"] = torch.jit.script(_fused_backward_loop)
    return _SCRIPTED["fwd"], _SCRIPTED["bwd"]


def _use_kernel(xp: Tensor) -> bool:
    if LOOP_BACKEND == "cpp":
        if not fused_kernel.supports(xp):
            raise RuntimeError(
                f"LOOP_BACKEND='cpp' but the compiled kernel cannot run here "
                f"({fused_kernel.unavailable_reason() or f'{xp.device.type} {xp.dtype}'})"
            )
        return True
    return LOOP_BACKEND == "auto" and fused_kernel.supports(xp)


class FusedLSTMScan(torch.autograd.Function):
    """NP LSTM over time: ``(xp, w_hh, h0, c0, valid, rmask) -> (out (T, B, H), h_T, c_T)``.

    Backward, with A = pre-activations and the activations saved by forward. Per step t, going back:
        dh   = dout_t + dh_{t+1}                       gradient reaching h_t
        dc   = dc_{t+1} + dh ⊙ o ⊙ (1 - tanh²c_t)
        da_i = dc ⊙ g ⊙ i(1-i)    da_f = dc ⊙ c_{t-1} ⊙ f(1-f)
        da_g = dc ⊙ i ⊙ (1-g²)    da_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
        dh_t-1 = dA U (⊙ recurrent mask),  dc_t-1 = dc ⊙ f
    The factors multiplying dc / dh (K, K1) do not depend on the running gradient, so they are computed
    for all t at once before the loop (Python loops) or in the forward step itself (compiled kernel). Past
    a sequence's end (valid = 0) the state was carried, so the gradient is carried too and dA = 0 there
    (valid is folded into K and K1).
    """

    @staticmethod
    def forward(ctx, xp, w_hh, h0, c0, valid, rmask):
        ctx.kernel = _use_kernel(xp)
        if ctx.kernel:
            vf = None if valid is None else valid.reshape(valid.shape[0], -1).to(xp.dtype).contiguous()  # (T, B)
            rm = None if rmask is None else rmask.to(xp.dtype).contiguous()
            out, hs, h_n, c_n, K, K1, F = fused_kernel.forward(xp, w_hh, h0, c0, vf, rm, any(ctx.needs_input_grad))
            ctx.save_for_backward(w_hh, h0, hs, K, K1, F, vf, rm)
            return out, h_n, c_n
        fwd, _ = _loops()
        H = h0.shape[1]
        with torch.no_grad():
            g_x2 = torch.ones(4 * H, dtype=xp.dtype, device=xp.device)
            g_x2[2 * H : 3 * H] = 2.0  # doubles a_g, for tanh(a_g) = 2σ(2a_g) - 1 (see _fused_forward_loop)
            out, hs, cs, acts = fwd(xp * g_x2, w_hh * g_x2[:, None], h0, c0, valid, rmask)
        ctx.save_for_backward(w_hh, h0, c0, hs, cs, acts, valid, rmask)
        return out, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, dh_n, dc_n):
        if ctx.kernel:
            w_hh, h0, hs, K, K1, F, vf, rmask = ctx.saved_tensors
            dout = torch.zeros_like(hs) if dout is None else dout
            dh_n = torch.zeros_like(h0) if dh_n is None else dh_n
            dc_n = torch.zeros_like(h0) if dc_n is None else dc_n
            dA, dh0, dc0 = fused_kernel.backward(dout, dh_n, dc_n, K, K1, F, w_hh, vf, rmask)
        else:
            dA, dh0, dc0, hs, h0, rmask, w_hh = _python_backward(ctx, dout, dh_n, dc_n)
        T, B, H = hs.shape
        dw_hh = None  # Σ_t dA_tᵀ h_{t-1}: one (4H, T·B) @ (T·B, H) matmul for all steps
        if ctx.needs_input_grad[1] and rmask is None:
            dw_hh = torch.addmm(dA[0].t() @ h0, dA[1:].reshape(-1, 4 * H).t(), hs[:-1].reshape(-1, H))
        elif ctx.needs_input_grad[1]:
            h_prev = torch.cat([h0[None], hs[:-1]]) * rmask  # (T, B, H) the h each step's matmul saw
            dw_hh = dA.reshape(T * B, 4 * H).t() @ h_prev.reshape(T * B, H)
        return dA, dw_hh, dh0, dc0, None, None


def _python_backward(ctx, dout, dh_n, dc_n):
    """Backward of the Python/TorchScript loops: the factors K, K1 for all steps at once, then the loop."""
    w_hh, h0, c0, hs, cs, acts, valid, rmask = ctx.saved_tensors
    i, f, g, o = acts.chunk(4, dim=2)  # each (T, B, H)
    K = torch.empty_like(acts)  # (T, B, 4H), filled in place block by block
    K_i, K_f, K_g, K_o = K.chunk(4, dim=2)
    torch.mul(i, 1 - i, out=K_i).mul_(g)  # g ⊙ σ'
    torch.mul(f, 1 - f, out=K_f)  # c_{t-1} ⊙ σ'
    K_f[0].mul_(c0)
    K_f[1:].mul_(cs[:-1])
    torch.mul(g, g, out=K_g).neg_().add_(1.0).mul_(i)  # i ⊙ tanh'
    tc = torch.tanh(cs)  # (T, B, H)
    torch.mul(o, 1 - o, out=K_o).mul_(tc)  # tanh(c) ⊙ σ'
    K1 = torch.addcmul(o, o, tc * tc, value=-1.0)  # o ⊙ (1 - tanh²c)
    vf = None
    if valid is not None:
        vf = valid.to(acts.dtype)  # (T, B, 1)
        K_o.mul_(vf)
        K1.mul_(vf)
    dout = torch.zeros_like(hs) if dout is None else dout.contiguous()
    dh_n = torch.zeros_like(h0) if dh_n is None else dh_n
    dc_n = torch.zeros_like(c0) if dc_n is None else dc_n
    _, bwd = _loops()
    dA, dh0, dc0 = bwd(dout, dh_n, dc_n, K, K1, f.contiguous(), w_hh, vf, rmask)
    return dA, dh0, dc0, hs, h0, rmask, w_hh

