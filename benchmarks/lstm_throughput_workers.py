"""Worker processes of benchmarks/lstm_throughput.py (see its docstring for the method).

    python benchmarks/lstm_throughput_workers.py '<spec as JSON>'

Builds the three shapes' models for one implementation (torch in the project's venv, Keras in the scratch venv),
prints one JSON line of versions/threads, then answers each stdin line {"shape": s, "steps": n} with one JSON
line {"times": [seconds per step], "wall": s, "peak_mib": m}. Needs only the standard library at import time,
so the Keras venv can run it without lstm_lab installed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SHAPES = {  # name: B, T, I, H, layers, head outputs, loss, steps per block
    "forecast": (32, 10, 1, 50, 1, 1, "mse", 60),
    "sentiment": (32, 200, 100, 128, 1, 1, "bce", 8),
    "textgen": (64, 100, 65, 128, 2, 65, "ce", 4),
}


def batch(shape, rng, n=1):
    """n batches of random inputs and random targets (numpy), stacked along the batch axis."""
    import numpy as np

    B, T, I, H, L, n_out, loss, _ = SHAPES[shape]
    if loss == "ce":  # one-hot characters, random next-character targets
        return np.eye(I, dtype="float32")[rng.integers(0, I, size=(n * B, T))], rng.integers(0, n_out, size=(n * B, T))
    x = rng.standard_normal((n * B, T, I)).astype("float32")
    y = rng.standard_normal((n * B, 1)) if loss == "mse" else (rng.random((n * B, 1)) > 0.5)
    return x, y.astype("float32")


def peak_rss_reset():
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        pass
    return rss("VmRSS")


def rss(field):
    return next(int(ln.split()[1]) for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field))


def torch_worker(spec):
    import torch

    torch.set_flush_denormal(spec["flush"])  # first, before any parallel op creates threads
    import numpy as np

    from lstm_lab.models import fused_kernel, fused_scan
    from lstm_lab.models.lstm import LSTM

    fused_scan.LOOP_BACKEND = spec.get("backend", "auto")
    info = dict(threads=torch.get_num_threads(), interop=torch.get_num_interop_threads(), torch=torch.__version__,
                kernel=fused_kernel.available() and spec.get("backend", "auto") == "auto")
    fns = {}
    for shape, (B, T, I, H, L, n_out, loss, _) in SHAPES.items():
        torch.manual_seed(0)
        kw = dict(impl=spec["impl"], recurrent_dropout=spec.get("rd", 0.0)) if spec["model"] == "lstm_lab" else {}
        rnn = (LSTM if spec["model"] == "lstm_lab" else torch.nn.LSTM)(I, H, L, batch_first=True, **kw)
        head = torch.nn.Linear(H, n_out)
        opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
        x, y = (torch.from_numpy(a) for a in batch(shape, np.random.default_rng(0)))
        loss_fn = {"mse": torch.nn.functional.mse_loss, "bce": torch.nn.functional.binary_cross_entropy_with_logits,
                   "ce": lambda z, t: torch.nn.functional.cross_entropy(z.flatten(0, 1), t.flatten())}[loss]

        def step(rnn=rnn, head=head, opt=opt, x=x, y=y, loss_fn=loss_fn, seq=loss == "ce"):
            opt.zero_grad(set_to_none=True)
            out = rnn(x)[0]
            loss_fn(head(out if seq else out[:, -1]), y).backward()
            opt.step()

        fns[shape] = step

    def run(shape, n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fns[shape]()
            times.append(time.perf_counter() - t0)
        return dict(times=times)

    return info, run


def keras_worker(spec):
    import numpy as np
    import tensorflow as tf
    import keras

    threading = tf.config.threading
    info = dict(tf=tf.__version__, keras=keras.__version__, intra=threading.get_intra_op_parallelism_threads(),
                inter=threading.get_inter_op_parallelism_threads())
    models, data = {}, {}
    for shape, (B, T, I, H, L, n_out, loss, n) in SHAPES.items():
        keras.utils.set_random_seed(0)
        layers = [keras.Input((T, I), batch_size=B)]
        for layer in range(L):
            layers.append(keras.layers.LSTM(H, return_sequences=loss == "ce" or layer < L - 1,
                                            recurrent_dropout=spec.get("rd", 0.0)))
        model = keras.Sequential(layers + [keras.layers.Dense(n_out)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={
            "mse": "mse", "bce": keras.losses.BinaryCrossentropy(from_logits=True),
            "ce": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}[loss])
        models[shape], data[shape] = model, batch(shape, np.random.default_rng(0), n + 1)
        info["jit_compile"] = bool(model.jit_compile)  # Keras' "auto": no XLA on CPU

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            self.begins.append(time.perf_counter())

        def on_train_batch_end(self, step, logs=None):
            self.ends.append(time.perf_counter())

    def run(shape, n):
        model, (x, y), B = models[shape], data[shape], SHAPES[shape][0]
        if spec["mode"] == "tob":
            times = []
            for k in range(n):
                t0 = time.perf_counter()
                model.train_on_batch(x[:B], y[:B])
                times.append(time.perf_counter() - t0)
            return dict(times=times)
        timer = Timer()
        timer.begins, timer.ends = [], []
        t0 = time.perf_counter()
        model.fit(x[: (n + 1) * B], y[: (n + 1) * B], batch_size=B, epochs=1, shuffle=False, verbose=0,
                  callbacks=[timer])
        total = time.perf_counter() - t0
        times = [b - a for a, b in zip(timer.ends, timer.ends[1:])]  # n steps after the first, end to end
        return dict(times=times, fit_first=timer.ends[0] - timer.begins[0],
                    fit_overhead=total - (timer.ends[-1] - timer.begins[0]))

    return info, run


def worker_main(spec):
    info, run = (torch_worker if spec["kind"] == "torch" else keras_worker)(spec)
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            return
        rss0 = peak_rss_reset()
        t0 = time.perf_counter()
        res = run(cmd["shape"], cmd["steps"])
        res.update(wall=time.perf_counter() - t0, peak_mib=(rss("VmHWM") - rss0) / 1024)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
