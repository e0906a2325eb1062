"""Scale: a synthetic panel of 100,000 series × 500 steps, memory-mapped, trained for one capped epoch.

What it measures: that nothing of size O(windows) is ever built (34 million training windows are indexed as
(series, start) pairs from O(series) arrays), the peak resident memory against the raw float32 data, and the
training throughput in windows per second.

    .venv/bin/python benchmarks/panel_scale.py                      # 100k × 500, 102,400 windows
    .venv/bin/python benchmarks/panel_scale.py --series 1000 --windows 4096 --results /tmp/scale.md

Steps: write the series to a scratch float32 file (``--dir``, default a temporary folder; one column, lengths
250..500, a daily cycle and noise per series), open it as ``np.memmap`` ('r+'), wrap it as a ``Panel`` (no copy),
split the last 2×H steps of every series into val/test, fit the per-series scaler on the training rows
(blocks of whole series) and scale the file in place, then train the global ``PanelForecaster`` (LSTM(32),
horizon 24, lookback 72, quantile head) for one epoch of ``--windows`` windows drawn at random and validate on
``--val-windows`` windows. Peak RSS is the process's ``ru_maxrss``; the RSS right after importing torch and
Lightning (before any data) is reported beside it, so the data's share is visible. File-backed pages of the
memmap that were read count in RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_series(path: Path, n_series: int, min_len: int, max_len: int, seed: int) -> np.ndarray:
    """The panel's values written block by block (never all in memory); returns the lengths."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_series)
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(int(lengths.sum()), 1))
    row = 0
    for s0 in range(0, n_series, 2000):
        block = lengths[s0: s0 + 2000]
        t = np.concatenate([np.arange(n) for n in block])
        level = np.repeat(rng.uniform(10, 100, len(block)), block)
        amp = np.repeat(rng.uniform(0.5, 5, len(block)), block)
        values = level + amp * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))
        out[row: row + len(t), 0] = values
        row += len(t)
    out.flush()
    del out
    return lengths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--min-length", type=int, default=500)
    ap.add_argument("--max-length", type=int, default=500)
    ap.add_argument("--windows", type=int, default=102_400, help="training windows in the one epoch")
    ap.add_argument("--val-windows", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder for the data file")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks/results/panel_scale.md")
    args = ap.parse_args(argv)

    import lightning.pytorch as pl  # noqa: F401 - imported first: its memory is the baseline
    import torch

    from lstm_lab.data.panel import Panel, split_last
    from lstm_lab.data.panel_scaling import PanelScaler
    from lstm_lab.data.panel_windows import PanelWindows
    from lstm_lab.models.spec import ModelSpec
    from lstm_lab.training.config import TrainingConfig
    from lstm_lab.training.entry import fit
    from lstm_lab.training.panel_module import PanelDataModule, PanelModule, build_panel_forecaster, panel_hparams

    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    baseline = current_rss_mib()
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="lstm_lab_scale_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        lengths = write_series(scratch / "values.f32", args.series, args.min_length, args.max_length, seed=0)
        write_s = time.perf_counter() - t0
        rows = int(lengths.sum())
        raw_mib = rows * 4 / 2**20
        values = np.memmap(scratch / "values.f32", dtype=np.float32, mode="r+", shape=(rows, 1))
        L, H = 72, 24
        panel = Panel.from_arrays(values, lengths, target_columns=["y"])
        panel = panel.with_bounds(split_last(panel.lengths, H, H))
        t0 = time.perf_counter()
        scaler = PanelScaler.fit(panel, "standard")
        panel = scaler.transform(panel, inplace=True)  # written into the memmap: no second copy
        scale_s = time.perf_counter() - t0
        train = PanelWindows(panel, "train", L, H)
        after_data = current_rss_mib()

        cfg = TrainingConfig(seed=0, max_epochs=1, batch_size=args.batch_size, learning_rate=1e-3,
                             early_stopping_patience=None, resume="never", num_threads=args.threads,
                             trainer={"limit_val_batches": max(1, args.val_windows // args.batch_size)})
        spec = ModelSpec(hidden_sizes=[32], impl="native")
        hp = panel_hparams(panel, L, H, spec, id_embedding=8, training=cfg.model_dump(mode="json"))
        module = PanelModule(build_panel_forecaster(hp), cfg, hp)
        data = PanelDataModule(panel, L, H, 1, args.batch_size, seed=0, max_windows_per_epoch=args.windows)
        t0 = time.perf_counter()
        result = fit(module, data, cfg)
        fit_s = time.perf_counter() - t0
        peak = rss_mib()
        load_after = os.getloadavg()
        text = "\n".join([
            "# Panel scale: 100,000 series × up to 500 steps, memory-mapped", "",
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch threads {torch.get_num_threads()}",
            f"- load average before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
            f"{' / '.join(f'{x:.2f}' for x in load_after)}",
            f"- command: `.venv/bin/python benchmarks/panel_scale.py {' '.join(argv or sys.argv[1:])}`", "",
            f"| quantity | value |", "|---|---|",
            f"| series | {args.series:,} (lengths {args.min_length}..{args.max_length}) |",
            f"| rows (float32, 1 column) | {rows:,} = {raw_mib:.0f} MiB raw |",
            f"| training windows indexed (L {L}, H {H}) | {len(train):,}; index {train.index_nbytes / 2**20:.1f} MiB |",
            f"| writing the file | {write_s:.1f} s |",
            f"| per-series scaler: fit + scale in place | {scale_s:.1f} s |",
            f"| one epoch: {args.windows:,} windows drawn + {cfg.trainer.limit_val_batches} validation batches "
            f"| {fit_s:.1f} s → **{args.windows / fit_s:,.0f} training windows/s** (incl. validation) |",
            f"| RSS after importing torch + Lightning | {baseline:.0f} MiB |",
            f"| RSS after the data is scaled and indexed | {after_data:.0f} MiB |",
            f"| **peak RSS** | **{peak:.0f} MiB** = {peak / raw_mib:.2f}x the raw data "
            f"({(peak - baseline) / raw_mib:.2f}x above the import baseline) |",
            "", f"Best val loss {result.best_val_loss:.4f} (pinball, scaled) after the epoch.",
        ]) + "\n"
        args.results.write_text(text)
        print(text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
