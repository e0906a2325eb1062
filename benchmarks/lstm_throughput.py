"""Training-step throughput of lstm_lab's LSTM: native (torch.nn.LSTM) vs the gate-level cell path.

Why: the cell path (lstm_lab.models.cell) exists for features torch.nn.LSTM lacks (variants, variational
dropout, gate activations); this measures what they cost on CPU, on three typical shapes:

    forecast   B=32, T=10,  1 feature,            1 layer  x 50,  dense head -> 1 value  (MSE)
    sentiment  B=32, T=200, 100-dim inputs (E),   1 layer  x 128, dense head -> 1 logit  (BCE)
    textgen    B=64, T=100, 65-dim one-hot input, 2 layers x 128, dense head -> 65 per step (cross-entropy)

One training step = forward + backward + Adam step. The machine is shared, so the torch implementations of a
shape are timed in ONE process with their steps interleaved (round-robin, rotating who goes first): whatever
else runs slows them alike. ``--warmup`` steps each, then ``--steps`` timed steps each; we report the median.
Peak memory is measured separately, one process per implementation.

Achieved GFLOP/s counts only the LSTM gate matmuls:
    FLOPs per training step = 3 x 2 x B x T x sum over layers of 4H(I_l + H)
(4H(I+H) multiply-adds per sample per time step per layer, 2 FLOPs per multiply-add, x3 for forward + backward,
backward being about two forward matmuls). The reference is the measured fp32 throughput of one 1024x1024 @
1024x1024 matmul on the same threads.

Peak memory: just before the first training step the process's peak-RSS counter is reset (/proc/self/clear_refs),
then peak RSS (VmHWM) at the end minus RSS at that point: gradients, Adam state and the largest step's
activations and temporaries. (tracemalloc would miss torch's tensors: they are not allocated through Python.)

Keras (optional): if ``pip download --no-deps tensorflow-cpu`` works, a separate venv (/tmp/kerasenv) gets
tensorflow-cpu and the same three models are timed with ``train_on_batch`` (Keras LSTM, Adam), else the report
says why not.

Usage:  python benchmarks/lstm_throughput.py [--steps 20] [--threads 2] [--no-keras]
Writes benchmarks/results/lstm_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERAS_VENV = Path("/tmp/kerasenv")

# name: (B, T, I, H, layers, head outputs, loss)
SHAPES = {
    "forecast": (32, 10, 1, 50, 1, 1, "mse"),
    "sentiment": (32, 200, 100, 128, 1, 1, "bce"),
    "textgen": (64, 100, 65, 128, 2, 65, "ce"),
}
# label: LSTM keyword arguments (+ the cell loop backend)
IMPLS = {
    "native": dict(impl="native"),
    "cell": dict(impl="cell"),
    "cell, recurrent_dropout=0.2": dict(impl="cell", recurrent_dropout=0.2),
    "cell, TorchScript loops": dict(impl="cell", loop_backend="script"),
    "cell, autograd loop (no fused BPTT)": dict(impl="cell", fused=False),
}


def lstm_flops(B, T, I, H, L):
    """3 x 2 x B x T x sum_l 4H(I_l + H): the gate matmuls of forward + backward."""
    macs = sum(4 * H * ((I if layer == 0 else H) + H) for layer in range(L))
    return 3 * 2 * B * T * macs


def reset_peak_rss():
    """Make VmHWM start again from the current RSS (Linux >= 4.0); harmless where not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def synthetic_batch(B, T, I, n_out, loss, rng):
    """Inputs and targets as numpy arrays, the same for torch and Keras."""
    import numpy as np

    if loss == "ce":  # one-hot characters, next-character targets
        ids = rng.integers(0, I, size=(B, T + 1))
        x = np.eye(I, dtype=np.float32)[ids[:, :-1]]
        return x, ids[:, 1:]
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    if loss == "mse":
        return x, rng.standard_normal((B, 1)).astype(np.float32)
    y = (rng.random((B, 1)) > 0.5).astype(np.float32)
    return x, y


# ----------------------------------------------------------------------------------------------------------
# Workers (run in their own processes)


def torch_steps(shape, impls, threads):
    """{impl: step function} for one shape; each call sets the module switches its impl needs, then steps."""
    import numpy as np
    import torch

    import lstm_lab.models.lstm as lstm_mod
    from lstm_lab.models import cell, fused_scan

    torch.set_num_threads(threads)
    B, T, I, H, L, n_out, loss = SHAPES[shape]
    x, y = synthetic_batch(B, T, I, n_out, loss, np.random.default_rng(0))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = {
        "mse": torch.nn.functional.mse_loss,
        "bce": torch.nn.functional.binary_cross_entropy_with_logits,
        "ce": lambda logits, t: torch.nn.functional.cross_entropy(logits.reshape(-1, n_out), t.reshape(-1)),
    }[loss]
    fused_layer = cell.lstm_layer

    def unfused_layer(*a, **k):
        return fused_layer(*a, **k, fused=False)

    class Net(torch.nn.Module):
        def __init__(self, kw):
            super().__init__()
            self.lstm = lstm_mod.LSTM(I, H, L, batch_first=True, **kw)
            self.head = torch.nn.Linear(H, n_out)

        def forward(self, x):
            out, _ = self.lstm(x)  # (B, T, H)
            return self.head(out if loss == "ce" else out[:, -1])

    def make(impl):
        kw = dict(IMPLS[impl])
        backend, layer = kw.pop("loop_backend", "python"), fused_layer if kw.pop("fused", True) else unfused_layer
        torch.manual_seed(0)
        net = Net(kw).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            fused_scan.LOOP_BACKEND, lstm_mod.lstm_layer = backend, layer
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()

        return step

    return {impl: make(impl) for impl in impls}


def torch_timing_worker(shape, steps, warmup, threads):
    """All torch impls of one shape in one process, their steps interleaved, so that whatever else runs on the
    machine slows them alike. Returns {impl: {median_s, first_s}}."""
    fns = torch_steps(shape, list(IMPLS), threads)
    first, times = {}, {impl: [] for impl in fns}
    for impl, step in fns.items():
        t0 = time.perf_counter()
        step()
        first[impl] = time.perf_counter() - t0
        for _ in range(warmup - 1):
            step()
    order = list(fns)
    for r in range(steps):
        for impl in order[r % len(order) :] + order[: r % len(order)]:  # rotate who goes first
            t0 = time.perf_counter()
            fns[impl]()
            times[impl].append(time.perf_counter() - t0)
    return {impl: dict(median_s=statistics.median(times[impl]), first_s=first[impl]) for impl in fns}


def torch_memory_worker(shape, impl, steps, threads):
    """Peak RSS increase over a few training steps of one impl, alone in its process."""
    step = torch_steps(shape, [impl], threads)[impl]
    reset_peak_rss()
    rss0 = rss_kib("VmRSS")
    for _ in range(steps):
        step()
    return dict(peak_mib=(rss_kib("VmHWM") - rss0) / 1024)


def keras_worker(shape, recurrent_dropout, steps, warmup, threads):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(0)
    B, T, I, H, L, n_out, loss = SHAPES[shape]
    layers = [keras.Input((T, I), batch_size=B)]
    for layer in range(L):
        seq = loss == "ce" or layer < L - 1
        layers.append(keras.layers.LSTM(H, return_sequences=seq, recurrent_dropout=recurrent_dropout))
    layers.append(keras.layers.Dense(n_out))
    model = keras.Sequential(layers)
    keras_loss = {
        "mse": "mse",
        "bce": keras.losses.BinaryCrossentropy(from_logits=True),
        "ce": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    }[loss]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras_loss)
    x, y = synthetic_batch(B, T, I, n_out, loss, np.random.default_rng(0))
    reset_peak_rss()
    rss0 = rss_kib("VmRSS")
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return dict(
        median_s=statistics.median(times),
        first_s=first,
        peak_mib=(rss_kib("VmHWM") - rss0) / 1024,
        versions=f"tensorflow {tf.__version__}, keras {keras.__version__}, jit_compile={model.jit_compile}",
    )


# ----------------------------------------------------------------------------------------------------------
# Driver


def run_worker(python, args, timeout=600):
    cmd = [str(python), __file__, "--worker", json.dumps(args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args["threads"]), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_gflops(threads):
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * 1024**3 / statistics.median(times) / 1e9


def setup_keras():
    """Returns (python of the keras venv, None) or (None, reason)."""
    py = KERAS_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import tensorflow, keras"], capture_output=True).returncode == 0:
        return py, None
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "tensorflow-cpu", "-d", "/tmp/x", "-q"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return None, "tensorflow-cpu not downloadable: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    make_venv = ["python3.11", "-m", "venv", str(KERAS_VENV)]
    for cmd in (make_venv, [str(py), "-m", "pip", "install", "-q", "tensorflow-cpu"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return py, None


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        model = platform.processor() or "unknown"
    import torch

    return model, os.cpu_count(), torch.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lstm_throughput.md"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        w = json.loads(a.worker)
        if w["kind"] == "keras":
            out = keras_worker(w["shape"], w["impl"], w["steps"], w["warmup"], w["threads"])
        elif w["kind"] == "torch-time":
            out = torch_timing_worker(w["shape"], w["steps"], w["warmup"], w["threads"])
        else:
            out = torch_memory_worker(w["shape"], w["impl"], w["steps"], w["threads"])
        print(json.dumps(out))
        return

    started = time.time()
    cpu, cores, torch_version = machine()
    peak = matmul_gflops(a.threads)
    print(f"{cpu}, {cores} cores, torch {torch_version}; 1024^3 matmul: {peak:.1f} GFLOP/s", flush=True)
    rows = []  # (shape, impl, result or error, load average before)
    for shape, (B, T, I, H, L, _, _) in SHAPES.items():
        steps = a.steps * 5 if T <= 10 else a.steps  # the small shape is cheap: more steps, less noise
        load = os.getloadavg()[0]
        job = dict(kind="torch-time", shape=shape, steps=steps, warmup=a.warmup, threads=a.threads)
        try:
            timing = run_worker(sys.executable, job)
        except Exception as e:  # noqa: BLE001
            timing = {impl: {"error": str(e)} for impl in IMPLS}
        for impl in IMPLS:
            res = dict(timing[impl])
            if "error" not in res:
                job = dict(kind="torch-mem", shape=shape, impl=impl, steps=a.warmup + 1, threads=a.threads)
                try:
                    res.update(run_worker(sys.executable, job))
                except Exception as e:  # noqa: BLE001
                    res["peak_mib"] = float("nan")
                    print("memory run failed:", e, file=sys.stderr)
            rows.append((shape, impl, res, load))
            print(shape, impl, res, flush=True)

    keras_note, keras_versions = None, ""
    if a.no_keras:
        keras_note = "--no-keras"
    else:
        py, keras_note = setup_keras()
        if py is not None:
            for shape, (B, T, *_rest) in SHAPES.items():
                steps = a.steps * 5 if T <= 10 else a.steps
                for rd in (0.0, 0.2):
                    label = "Keras LSTM" + (", recurrent_dropout=0.2" if rd else "")
                    load = os.getloadavg()[0]
                    try:
                        job = dict(kind="keras", shape=shape, impl=rd, steps=steps, warmup=a.warmup, threads=a.threads)
                        res = run_worker(py, job)
                        keras_versions = res.pop("versions", keras_versions)
                    except Exception as e:  # noqa: BLE001
                        res = {"error": str(e)}
                    rows.append((shape, label, res, load))
                    print(shape, label, res, flush=True)

    # ---- report
    lines = [
        "# LSTM training-step throughput (CPU)",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu}, {cores} cores (os.cpu_count), torch {torch_version}, Python {platform.python_version()}",
        f"- Threads: torch.set_num_threads({a.threads}) (Keras: intra-op {a.threads}, inter-op 1)",
        f"- Reference fp32 matmul (1024x1024 @ 1024x1024, median of 20): **{peak:.1f} GFLOP/s**",
        f"- Steps: median of {a.steps} timed steps ({a.steps * 5} for forecast) after {a.warmup} warm-up steps;"
        " the torch rows of a shape run in one process with their steps interleaved; Keras rows in their own",
        "- Step = forward + backward + Adam step. GFLOP/s counts the LSTM gate matmuls only: "
        "3 x 2 x B x T x sum_l 4H(I_l + H) FLOPs per step.",
        "- Peak memory = peak RSS during the steps (VmHWM, reset just before the first step) minus RSS at that point"
        " (RSS-based: the allocator's caching makes differences of ~15 MiB noise).",
        "- 'load' = 1-minute load average when the shape's timing started (the benchmark itself adds ~2). The "
        "machine is shared (2 cores); with 2 threads any other busy process inflates times a lot, so compare rows "
        "of one shape (interleaved) rather than absolute numbers.",
        f"- Keras: {keras_versions or keras_note}",
        "",
    ]
    for shape, (B, T, I, H, L, n_out, loss) in SHAPES.items():
        flops = lstm_flops(B, T, I, H, L)
        lines += [
            f"## {shape}: B={B}, T={T}, I={I}, H={H}, layers={L}, head {H}->{n_out} ({loss}); "
            f"{flops / 1e9:.3f} GFLOP per step",
            "",
            "| implementation | median ms/step | steps/s | GFLOP/s | % of matmul | peak MiB | first step s | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s, impl, res, load in rows:
            if s != shape:
                continue
            if "error" in res:
                lines.append(f"| {impl} | failed: {res['error']} | | | | | | {load:.2f} |")
                continue
            ms = res["median_s"] * 1e3
            gf = flops / res["median_s"] / 1e9
            lines.append(
                f"| {impl} | {ms:.2f} | {1e3 / ms:.1f} | {gf:.2f} | {100 * gf / peak:.1f} | {res['peak_mib']:.1f} "
                f"| {res['first_s']:.2f} | {load:.2f} |"
            )
        lines.append("")
    if keras_note:
        lines += [f"Keras: not installed ({keras_note})" if not a.no_keras else "Keras: not run (--no-keras)", ""]
    lines.append(f"Total benchmark wall time: {time.time() - started:.0f} s.")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
