"""The cell's compiled C++ time loop (fused_kernel) against the Python loops, the reference loop and
torch.nn.LSTM, and the fallback to the Python loops whenever the kernel cannot be built or loaded."""

import ctypes
import shutil

import pytest
import torch

from lstm_lab.models import cell, fused_kernel, fused_scan
from lstm_lab.models.lstm import LSTM

needs_kernel = pytest.mark.skipif(not fused_kernel.available(), reason=f"{fused_kernel.unavailable_reason()}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def fresh_kernel_state(monkeypatch, tmp_path):
    """An empty kernel cache and no kernel loaded yet in this process (restored afterwards)."""
    monkeypatch.setattr(fused_kernel, "_state", {})
    monkeypatch.setenv("LSTM_LAB_KERNEL_DIR", str(tmp_path))
    return tmp_path


def inputs(T=12, B=8, H=16, dtype=torch.float32):
    xp = torch.randn(T, B, 4 * H, dtype=dtype, requires_grad=True)
    w = (0.5 * torch.randn(4 * H, H, dtype=dtype)).requires_grad_()
    h0, c0 = (torch.randn(B, H, dtype=dtype, requires_grad=True) for _ in range(2))
    valid = (torch.arange(T)[:, None] < torch.randint(1, T + 1, (B,))[None]).unsqueeze(-1)  # (T, B, 1)
    rmask = torch.bernoulli(torch.full((B, H), 0.7, dtype=dtype)) / 0.7
    return (xp, w, h0, c0), [(None, None), (valid, None), (None, rmask), (valid, rmask)]


@needs_kernel
def test_kernel_float32_matches_python_loops(monkeypatch):
    args, masks = inputs()
    for v, m in masks:
        results = []
        for backend in ("python", "cpp"):
            monkeypatch.setattr(fused_scan, "LOOP_BACKEND", backend)
            a = [t.detach().clone().requires_grad_() for t in args]
            out, h, c = fused_scan.FusedLSTMScan.apply(*a, v, m)
            (out.sum() + 2 * h.sum() + 3 * (c**2).sum()).backward()
            results.append([out, h, c, *(t.grad for t in a)])
        for x, y in zip(*results):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-6)


@needs_kernel
def test_kernel_is_the_default_on_cpu_and_matches_torch(monkeypatch):
    calls = []
    forward = fused_kernel.forward
    monkeypatch.setattr(fused_kernel, "forward", lambda *a: calls.append(1) or forward(*a))
    ref = torch.nn.LSTM(5, 6, 2, batch_first=True)
    ours = LSTM(5, 6, 2, batch_first=True, impl="cell")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 9, 5)
    (o1, (h1, c1)), (o2, (h2, c2)) = ref(x), ours(x)
    (o1.sum() + c1.sum()).backward()
    (o2.sum() + c2.sum()).backward()
    assert calls, "the kernel was not used"
    grads = [(p.grad, q.grad) for p, q in zip(ref.parameters(), ours.parameters())]
    for a, b in [(o1, o2), (h1, h2), (c1, c2), *grads]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@needs_kernel
def test_loading_the_kernel_leaves_denormals_alone(tmp_path):
    """Linked without -ffast-math: GCC < 13 would add crtfastmath.o, which sets flush-to-zero on load."""
    copy = tmp_path / "k.so"
    shutil.copy(fused_kernel.build(), copy)  # a new file: dlopen runs its initialisers again
    tiny = torch.tensor([1e-39])
    flushing = float(tiny * 1.0) == 0.0  # set by an earlier test in this process?
    torch.set_flush_denormal(False)
    try:
        ctypes.CDLL(str(copy))
        assert float(tiny * 1.0) != 0.0
    finally:
        torch.set_flush_denormal(flushing)


def test_fallback_without_compiler(fresh_kernel_state, monkeypatch, caplog):
    monkeypatch.setattr(fused_kernel, "_compiler", lambda: None)
    caplog.set_level("INFO", logger="lstm_lab.models.fused_kernel")
    assert not fused_kernel.available()
    assert "no C++ compiler" in fused_kernel.unavailable_reason()
    assert "Python loops run instead" in caplog.text
    ref = torch.nn.LSTM(4, 3)
    ours = LSTM(4, 3, impl="cell")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 2, 4)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=0)
    monkeypatch.setattr(fused_scan, "LOOP_BACKEND", "cpp")  # asked for explicitly: a clear error
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        ours(x)


def test_fallback_when_the_build_fails(fresh_kernel_state, monkeypatch):
    if fused_kernel._compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setattr(fused_kernel, "_SOURCE", "this is not C++")
    assert not fused_kernel.available()
    assert "failed" in fused_kernel.unavailable_reason()
    assert not list(fresh_kernel_state.glob("*.so"))  # nothing half-built left in the cache


def test_switched_off_by_environment(fresh_kernel_state, monkeypatch):
    monkeypatch.setenv("LSTM_LAB_CELL_KERNEL", "0")
    assert not fused_kernel.available()
    assert "LSTM_LAB_CELL_KERNEL" in fused_kernel.unavailable_reason()
