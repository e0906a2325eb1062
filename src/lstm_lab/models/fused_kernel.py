"""A compiled kernel for the NP LSTM time loop on CPU: both loops of ``FusedLSTMScan`` in C++, with the
gate nonlinearities, the cell update and the backward factors fused into ONE pass over (B, H) per step.

Why C++ and not torch.compile (measurements: top of ``fused_scan.py``): the Python loops pay ~15 tensor ops per
step (~4 µs each before any arithmetic); torch.compile of the step compiled for ~50 s and then ran no faster
(its per-call wrapper costs what it fuses). This kernel removes both costs and keeps one BLAS GEMM per step.

Design, chosen so that the build is cheap and nothing can break a working set-up:
* The source below includes no torch header: building it is one ``g++`` call of ~1-2 s (an ATen-based
  extension took 12-17 s of CPU), so even a fresh machine or CI run pays little, once: the ``.so`` is
  cached under ``$LSTM_LAB_KERNEL_DIR`` (default ``~/.cache/lstm_lab/kernels``, else a temp dir) with the
  source, compiler, flags and CPU in its name, written to a temp file and renamed (safe with parallel
  processes); a cached one loads in ~6 ms.
* The GEMMs are the BLAS ``SGEMM``/``DGEMM`` that torch itself uses on CPU (MKL, inside libtorch_cpu),
  looked up at run time and passed in as function pointers, so they follow ``torch.set_num_threads``. Where
  torch runs on GNU OpenMP, the kernel links that very libgomp and splits its element-wise pass over the same
  threads; otherwise it is built serial.
* Anything missing -- no compiler (``$CXX``, ``c++``, ``g++``), no BLAS symbol, a failed build, or a
  self-test against torch that does not match -- makes ``available()`` False once, with a log line, and
  the Python loops run instead. ``LSTM_LAB_CELL_KERNEL=0`` switches the kernel off.
* Compiled with -ffast-math (it lets GCC vectorize the loops, and use glibc's vector exp/tanh for float64) but
  linked WITHOUT it: GCC < 13 would then link crtfastmath.o, which turns on flush-to-zero for the whole
  process when the .so loads (a test checks it does not).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

_SOURCE = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
#ifndef PAR_MIN
#define PAR_MIN 2048
#endif
// Fortran BLAS ?GEMM. The integers are passed as int64: a little-endian LP64 BLAS reads their low half,
// which is the same value, and an ILP64 one reads all of it -- either interface works.
typedef void (*gemm_t)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const void*,
                       const void*, const int64_t*, const void*, const int64_t*, const void*, void*, const int64_t*);

// float: the nonlinearities are evaluated in double and rounded once (errors <= 0.5 ulp). glibc's vector
// expf/tanhf (what -ffast-math vectorizes to) are a few ulp off, which put a gradient 3 ulp from
// torch.nn.LSTM's (> 1e-5 at |g| ~ 36); this inlined exp is as fast as those and vectorizes (4 lanes):
// exp(x) = 2^k e^r, |r| <= ln2/2, e^r by its Taylor series to degree 11 (relative error < 2e-14).
static inline double expd(double x) {
  x = std::fmin(std::fmax(x, -700.0), 700.0);
  const double k = std::nearbyint(x * 1.4426950408889634);
  const double r = std::fma(k, -6.93145751953125e-1, std::fma(k, -1.42860682030941723212e-6, x));
  double p = 1.0 / 39916800;
  p = std::fma(p, r, 1.0 / 3628800); p = std::fma(p, r, 1.0 / 362880); p = std::fma(p, r, 1.0 / 40320);
  p = std::fma(p, r, 1.0 / 5040); p = std::fma(p, r, 1.0 / 720); p = std::fma(p, r, 1.0 / 120);
  p = std::fma(p, r, 1.0 / 24); p = std::fma(p, r, 1.0 / 6); p = std::fma(p, r, 0.5);
  p = std::fma(p, r, 1.0); p = std::fma(p, r, 1.0);
  const double sh = k + 6755399441055744.0 + 1023.0;  // 1.5 * 2^52: k + 1023 lands in the low mantissa bits
  int64_t bits; std::memcpy(&bits, &sh, 8); bits <<= 52; double s; std::memcpy(&s, &bits, 8);
  return p * s;  // 2^k: (k + 1023) moved into the exponent field
}
static inline float sig(float x) { return float(1.0 / (1.0 + expd(-double(x)))); }
static inline float tnh(float x) { return float(2.0 / (1.0 + expd(-2.0 * double(x))) - 1.0); }
static inline double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }  // float64 (tests): libm
static inline double tnh(double x) { return std::tanh(x); }

// row-major C (M, N) = A (M, K) @ op(W): op = W^T for W (N, K) if wt, else W (K, N). Column-major BLAS
// sees every row-major matrix transposed, hence the swapped operands.
template <typename T> static void mm(gemm_t g, int64_t M, int64_t N, int64_t K, const T* A, const T* W, bool wt,
                                     T* C) {
  const T one = 1, zero = 0; const int64_t lda = K, ldw = wt ? K : N;
  g(wt ? "T" : "N", "N", &N, &M, &K, &one, W, &ldw, A, &lda, &zero, C, &N);
}

// Forward. xp (T,B,4H) input projection + biases; w (4H,H); valid (T,B) 0/1 or null; rmask (B,H) or null.
// Writes out (T,B,H) (zero past the end), hs (T,B,H) carried h (may alias out when valid is null),
// h_n, c_n (B,H), and when K is not null the backward factors: K (T,B,4H) = d act/d pre-activation times
// the other operand, K1 (T,B,H) = dh/dc, F (T,B,H) = f. Scratch: a (B,4H), hin (B,H), c (B,H).
template <typename T>
static void fwd(gemm_t g, int T_, int B, int H, const T* xp, const T* w, const T* h0, const T* c0,
                const T* valid, const T* rmask, T* out, T* hs, T* h_n, T* c_n, T* K, T* K1, T* F,
                T* a, T* hin, T* c) {
  const int G = 4 * H; const int64_t BH = (int64_t)B * H;
  for (int64_t n = 0; n < BH; ++n) { c[n] = c0[n]; hin[n] = rmask ? h0[n] * rmask[n] : h0[n]; }
  const T* hp = h0;
  for (int t = 0; t < T_; ++t) {
    mm<T>(g, B, G, H, hin, w, true, a);  // a = h_in @ w^T
    const T* x = xp + (int64_t)t * B * G; T* ho = hs + t * BH; T* oo = out + t * BH;
    // Rows split over torch's OpenMP threads when built with -fopenmp (see _torch_openmp), else serial.
#pragma omp parallel for schedule(static) if (BH >= PAR_MIN)
    for (int b = 0; b < B; ++b) {
      const T v = valid ? valid[(int64_t)t * B + b] : T(1);
      const T* ar = a + (int64_t)b * G; const T* xr = x + (int64_t)b * G; T* cr = c + (int64_t)b * H;
      const T* hpr = hp + (int64_t)b * H; T* hor = ho + (int64_t)b * H; T* oor = oo + (int64_t)b * H;
      T* hir = hin + (int64_t)b * H; const T* mr = rmask ? rmask + (int64_t)b * H : nullptr;
      T* kr = K ? K + ((int64_t)t * B + b) * G : nullptr;
      T* k1r = K ? K1 + t * BH + (int64_t)b * H : nullptr; T* fr = K ? F + t * BH + (int64_t)b * H : nullptr;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const T i = sig(ar[j] + xr[j]), f = sig(ar[H + j] + xr[H + j]);
        const T gg = tnh(ar[2 * H + j] + xr[2 * H + j]), o = sig(ar[3 * H + j] + xr[3 * H + j]);
        const T cp = cr[j], cn = f * cp + i * gg, tc = tnh(cn), hn = o * tc;
        if (kr) {
          kr[j] = gg * i * (T(1) - i); kr[H + j] = cp * f * (T(1) - f);
          kr[2 * H + j] = i * (T(1) - gg * gg); kr[3 * H + j] = v * tc * o * (T(1) - o);
          k1r[j] = v * o * (T(1) - tc * tc); fr[j] = f;
        }
        const T hk = v * hn + (T(1) - v) * hpr[j];  // past the end: carry the state
        cr[j] = v * cn + (T(1) - v) * cp; hor[j] = hk;
        if (valid) oor[j] = v * hn;
        hir[j] = mr ? hk * mr[j] : hk;
      }
    }
    hp = ho;
  }
  std::memcpy(h_n, hp, BH * sizeof(T)); std::memcpy(c_n, c, BH * sizeof(T));
}

// Backward through time. dout (T,B,H); dh, dc (B,H) in: gradients on h_T, c_T, out: on h_0, c_0.
// Writes dA (T,B,4H) = dL/d pre-activations. Scratch: d (B,H).
template <typename T>
static void bwd(gemm_t g, int T_, int B, int H, const T* dout, const T* K, const T* K1, const T* F,
                const T* w, const T* valid, const T* rmask, T* dA, T* dh, T* dc, T* d) {
  const int G = 4 * H; const int64_t BH = (int64_t)B * H;
  for (int t = T_ - 1; t >= 0; --t) {
    for (int b = 0; b < B; ++b) {
      const T v = valid ? valid[(int64_t)t * B + b] : T(1);
      const int64_t r = t * BH + (int64_t)b * H, rg = ((int64_t)t * B + b) * G;
      const T* kr = K + rg; T* dr = dA + rg; T* dhr = dh + (int64_t)b * H; T* dcr = dc + (int64_t)b * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const T dhin = dout[r + j] + dhr[j], dct = v * dcr[j] + dhin * K1[r + j];
        dr[j] = dct * kr[j]; dr[H + j] = dct * kr[H + j]; dr[2 * H + j] = dct * kr[2 * H + j];
        dr[3 * H + j] = dhin * kr[3 * H + j];
        dcr[j] = dct * F[r + j] + (T(1) - v) * dcr[j];
      }
    }
    mm<T>(g, B, H, G, dA + (int64_t)t * B * G, w, false, d);  // d = dA_t @ w
    for (int b = 0; b < B; ++b) {
      const T v = valid ? valid[(int64_t)t * B + b] : T(1);
      T* dhr = dh + (int64_t)b * H; const T* drr = d + (int64_t)b * H;
      const T* mr = rmask ? rmask + (int64_t)b * H : nullptr;
#pragma omp simd
      for (int j = 0; j < H; ++j) dhr[j] = (mr ? drr[j] * mr[j] : drr[j]) + (T(1) - v) * dhr[j];
    }
  }
}

#define EXPORT(T, sfx)                                                                                        \
  extern "C" void lstm_fwd_##sfx(gemm_t g, int T_, int B, int H, const T* xp, const T* w, const T* h0,      \
      const T* c0, const T* valid, const T* rmask, T* out, T* hs, T* h_n, T* c_n, T* K, T* K1, T* F, T* a,  \
      T* hin, T* c) { fwd<T>(g, T_, B, H, xp, w, h0, c0, valid, rmask, out, hs, h_n, c_n, K, K1, F, a, hin, c); } \
  extern "C" void lstm_bwd_##sfx(gemm_t g, int T_, int B, int H, const T* dout, const T* K, const T* K1,    \
      const T* F, const T* w, const T* valid, const T* rmask, T* dA, T* dh, T* dc, T* d) {                  \
    bwd<T>(g, T_, B, H, dout, K, K1, F, w, valid, rmask, dA, dh, dc, d); }
EXPORT(float, f32)
EXPORT(double, f64)
"""

_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp-simd", "-fPIC", "-std=c++17"]
_GEMM_SYMBOLS = {torch.float32: ("SGEMM", "sgemm_"), torch.float64: ("DGEMM", "dgemm_")}  # MKL, reference BLAS
_state: dict = {}  # "lib", "gemm" {dtype: address}, or "error": why the kernel is not used


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CXX"), "c++", "g++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    env = os.environ.get("LSTM_LAB_KERNEL_DIR")
    candidates = [Path(env)] if env else [Path.home() / ".cache" / "lstm_lab" / "kernels"]
    candidates.append(Path(tempfile.gettempdir()) / f"lstm_lab_kernels_{os.getuid()}")
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise OSError("no writable cache directory for the LSTM kernel")


def _cpu_id() -> str:
    """-march=native code only runs where it was built: the CPU's flags go into the cache key."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        return next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor() + platform.machine()


def _torch_openmp() -> Optional[str]:
    """The GNU OpenMP runtime torch has loaded (Linux), if any. The kernel links to that very file, so its
    parallel loop shares torch's thread pool and follows torch.set_num_threads; with another runtime (or none)
    the kernel is built serial rather than bring in a second one."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    return next((ln.split()[-1] for ln in maps.splitlines() if ln.split()[-1].endswith("/libgomp.so.1")), None)


def build(cxx: Optional[str] = None) -> Path:
    """Compile the kernel (or find it in the cache); returns the .so path. Raises on any failure."""
    cxx = cxx or _compiler()
    if cxx is None:
        raise FileNotFoundError("no C++ compiler found ($CXX, c++, g++)")
    gomp = _torch_openmp()
    flags, libs = (_FLAGS + ["-fopenmp"], [gomp]) if gomp else (_FLAGS, [])
    key = hashlib.sha256("\n".join([_SOURCE, cxx, *flags, *libs, _cpu_id()]).encode()).hexdigest()[:16]
    so = _cache_dir() / f"lstm_kernel_{key}.so"
    if so.exists():
        return so
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=so.parent) as tmp:
        src, obj, tmp_so = Path(tmp, "k.cpp"), Path(tmp, "k.o"), Path(tmp, "k.so")
        src.write_text(_SOURCE)
        link = [cxx, "-shared", str(obj), *libs, "-o", str(tmp_so)]  # no -ffast-math here: see the docstring
        for cmd in ([cxx, *flags, "-c", str(src), "-o", str(obj)], link):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
        os.replace(tmp_so, so)  # atomic: a concurrent process sees no half-written file
    logger.info("LSTM cell: compiled its C++ kernel in %.1f s (cached in %s)", time.perf_counter() - t0, so.parent)
    return so


def _symbol(lib: ctypes.CDLL, names):
    for name in (n for n in names if hasattr(lib, n)):
        return getattr(lib, name)
    raise LookupError(f"no BLAS {'/'.join(names)} exported by {lib._name}")


def _load() -> None:
    if os.environ.get("LSTM_LAB_CELL_KERNEL", "1").lower() in ("0", "off", "false", "no"):
        raise RuntimeError("switched off by LSTM_LAB_CELL_KERNEL")
    torch_cpu = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    gemm = {dt: ctypes.cast(_symbol(torch_cpu, names), ctypes.c_void_p).value for dt, names in _GEMM_SYMBOLS.items()}
    lib = ctypes.CDLL(str(build()))
    for name in ("lstm_fwd_f32", "lstm_fwd_f64", "lstm_bwd_f32", "lstm_bwd_f64"):
        getattr(lib, name).restype = None
    _state.update(lib=lib, gemm=gemm)
    _self_test()


def available() -> bool:
    """Whether the kernel can be used; the first call builds/loads it (once per process)."""
    if "lib" not in _state and "error" not in _state:
        try:
            _load()
        except Exception as e:  # noqa: BLE001 - any failure means: use the Python loops
            _state.clear()
            _state["error"] = f"{type(e).__name__}: {e}"
            logger.info("LSTM cell: compiled kernel not used (%s); the Python loops run instead", _state["error"])
    return "lib" in _state


def unavailable_reason() -> Optional[str]:
    return _state.get("error")


def supports(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in _GEMM_SYMBOLS and available()


def _p(t: Optional[Tensor]):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _call(name: str, dtype: torch.dtype, ints, tensors) -> None:
    fn = getattr(_state["lib"], f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")
    fn(ctypes.c_void_p(_state["gemm"][dtype]), *map(ctypes.c_int, ints), *map(_p, tensors))


def forward(xp: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor, valid: Optional[Tensor], rmask: Optional[Tensor],
            need_grad: bool) -> Tuple[Tensor, ...]:
    """valid: (T, B) float 0/1 or None. Returns out, hs (carried h), h_n, c_n, and K, K1, F (None without grad)."""
    T, B, G = xp.shape
    H = G // 4
    xp, w_hh, h0, c0 = xp.contiguous(), w_hh.contiguous(), h0.contiguous(), c0.contiguous()
    new = lambda *shape: xp.new_empty(shape)  # noqa: E731
    out = new(T, B, H)
    hs = out if valid is None else new(T, B, H)
    h_n, c_n = new(B, H), new(B, H)
    K, K1, F = (new(T, B, G), new(T, B, H), new(T, B, H)) if need_grad else (None, None, None)
    scratch = (new(B, G), new(B, H), new(B, H))
    _call("lstm_fwd", xp.dtype, (T, B, H), (xp, w_hh, h0, c0, valid, rmask, out, hs, h_n, c_n, K, K1, F, *scratch))
    return out, hs, h_n, c_n, K, K1, F


def backward(dout: Tensor, dh_n: Tensor, dc_n: Tensor, K: Tensor, K1: Tensor, F: Tensor, w_hh: Tensor,
             valid: Optional[Tensor], rmask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Returns dA (T, B, 4H) = dL/d(pre-activations), dL/dh_0, dL/dc_0."""
    T, B, H = dout.shape
    dh, dc = dh_n.contiguous().clone(), dc_n.contiguous().clone()  # updated in place, step by step
    dA = torch.empty_like(K)
    _call("lstm_bwd", dout.dtype, (T, B, H),
          (dout.contiguous(), K, K1, F, w_hh.contiguous(), valid, rmask, dA, dh, dc, dout.new_empty(B, H)))
    return dA, dh, dc


def _self_test() -> None:
    """A few steps against the same equations in torch: catches a BLAS that does not behave as assumed."""
    g = torch.Generator().manual_seed(0)
    for dt in (torch.float32, torch.float64):
        T, B, H = 3, 2, 5
        xp, w = torch.randn(T, B, 4 * H, generator=g, dtype=dt), torch.randn(4 * H, H, generator=g, dtype=dt)
        h = c = torch.zeros(B, H, dtype=dt)
        out = forward(xp, w, h, c, None, None, False)[0]
        for t in range(T):
            i, f, gg, o = (xp[t] + h @ w.t()).chunk(4, 1)
            c = i.sigmoid() * gg.tanh() + f.sigmoid() * c
            h = o.sigmoid() * c.tanh()
            if not torch.allclose(out[t], h, atol=1e-5):
                raise RuntimeError(f"self-test failed ({dt}, step {t})")
