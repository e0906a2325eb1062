"""Scale: a synthetic panel of 100,000 series × 500 steps, memory-mapped, trained for one capped epoch.

What it measures: that nothing of size O(windows) is ever built (35.7 million training windows are indexed as
(series, start) pairs from O(series) arrays), the peak resident memory against the raw float32 data, and the
training throughput in windows per second.

    .venv/bin/python benchmarks/panel_scale.py                          # 3 rounds of the 3 configurations below
    .venv/bin/python benchmarks/panel_scale.py --series 1000 --windows 4096 --rounds 1 --results /tmp/scale.md

Each run is a fresh process (peak RSS is per process): write the series to a scratch float32 file (``--dir``,
default a temporary folder; one column, a daily cycle and noise per series), open it as ``np.memmap`` ('r+'),
wrap it as a ``Panel`` (no copy), split the last 2×H steps of every series into val/test, fit the per-series
scaler on the training rows and scale the file in place (blocks of whole series), then train the global
``PanelForecaster`` (LSTM(32), horizon 24, lookback 72, quantile head, batch 512) for one epoch of
``--windows`` windows drawn at random and validate on ``--val-windows`` windows, through the project's
Lightning ``fit``. Configurations, run in turn within each round (the order rotating with the round), so that
whatever else runs on the machine affects all alike:

    fold 1               one step per hour: the LSTM runs 72 steps per window
    fold 24              ``panel.fold: 24`` (a day per step: 3 steps), as conf/m4 trains hourly series
    fold 1, as before    fold 1 as the library read a memmap before 2026-11-30: windows by fancy-indexing the
                         map, no page handed back (``residency`` switched off), pandas imported

Peak RSS is the process's ``ru_maxrss``; beside it the RSS right after importing torch and Lightning (before any
data), the data file's pages still mapped at the end (``residency.mapped_bytes``), and where the peak was reached.
Reported: per configuration the median over rounds (min-max). Subnormal floats are flushed (set before any torch
op, as the pipeline's runtime does).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
L, H = 72, 24
CONFIGS = {"fold 1": (1, True), "fold 24": (24, True), "fold 1, as before": (1, False)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_series(path: Path, n_series: int, min_len: int, max_len: int, seed: int) -> np.ndarray:
    """The panel's values written block by block with plain writes (never all in memory, and not mapped into
    this process: a memmap written whole would hold every page until closed); returns the lengths."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_series)
    with open(path, "wb") as out:
        for s0 in range(0, n_series, 500):
            block = lengths[s0: s0 + 500]
            t = np.concatenate([np.arange(n) for n in block])
            level = np.repeat(rng.uniform(10, 100, len(block)), block)
            amp = np.repeat(rng.uniform(0.5, 5, len(block)), block)
            values = level + amp * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))
            out.write(values.astype(np.float32).tobytes())
    return lengths


def run_one(args) -> dict:
    """One configuration in this (fresh) process; returns its measurements."""
    import lightning.pytorch as pl  # imported first: its memory is the baseline
    import torch

    torch.set_flush_denormal(True)  # before any parallel op: it reaches only intra-op threads created after it
    from lstm_lab.data import panel_scaling, panel_windows, residency
    from lstm_lab.data.panel import Panel, split_last
    from lstm_lab.data.panel_scaling import PanelScaler
    from lstm_lab.data.panel_windows import PanelWindows
    from lstm_lab.models.spec import ModelSpec
    from lstm_lab.training import resume
    from lstm_lab.training.config import TrainingConfig
    from lstm_lab.training.entry import fit
    from lstm_lab.training.panel_module import PanelDataModule, PanelModule, build_panel_forecaster, panel_hparams

    fold, current = CONFIGS[args.child]
    if not current:  # the library as it was: mapped reads, pages kept mapped, pandas imported with the panel
        import pandas  # noqa: F401

        for module in (panel_scaling, panel_windows, resume):
            module.release = lambda *a, **k: False
        panel_windows.read_windows = lambda values, starts, n: np.asarray(values[starts[:, None] + np.arange(n)])
    if args.threads:
        torch.set_num_threads(args.threads)
    baseline = current_rss_mib()
    scratch = Path(tempfile.mkdtemp(prefix="lstm_lab_scale_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        lengths = write_series(scratch / "values.f32", args.series, args.min_length, args.max_length, seed=0)
        peak_write = peak_rss_mib()
        write_s = time.perf_counter() - t0
        rows = int(lengths.sum())
        values = np.memmap(scratch / "values.f32", dtype=np.float32, mode="r+", shape=(rows, 1))
        panel = Panel.from_arrays(values, lengths, target_columns=["y"])
        panel = panel.with_bounds(split_last(panel.lengths, H, H))
        t0 = time.perf_counter()
        scaler = PanelScaler.fit(panel, "standard")
        panel = scaler.transform(panel, inplace=True)  # written into the memmap: no second copy
        scale_s = time.perf_counter() - t0
        train = PanelWindows(panel, "train", L, H)
        after_data, peak_data = current_rss_mib(), peak_rss_mib()

        cfg = TrainingConfig(seed=0, max_epochs=1, batch_size=args.batch_size, learning_rate=1e-3,
                             early_stopping_patience=None, resume="never", num_threads=args.threads,
                             trainer={"limit_val_batches": max(1, args.val_windows // args.batch_size)})
        pl.seed_everything(cfg.seed, workers=True)  # as run_training does: weight init is seeded too
        spec = ModelSpec(hidden_sizes=[32], impl="native")
        hp = panel_hparams(panel, L, H, spec, id_embedding=8, fold=fold, training=cfg.model_dump(mode="json"))
        module = PanelModule(build_panel_forecaster(hp), cfg, hp)
        data = PanelDataModule(panel, L, H, 1, args.batch_size, seed=0, max_windows_per_epoch=args.windows)
        t0 = time.perf_counter()
        result = fit(module, data, cfg)
        fit_s = time.perf_counter() - t0
        mapped = residency.mapped_bytes(values)
        return {
            "config": args.child, "rows": rows, "raw_mib": rows * 4 / 2**20, "windows_indexed": len(train),
            "index_mib": train.index_nbytes / 2**20, "write_s": write_s, "scale_s": scale_s, "fit_s": fit_s,
            "windows_per_s": args.windows / fit_s, "baseline_mib": baseline, "after_data_mib": after_data,
            "peak_write_mib": peak_write, "peak_data_mib": peak_data, "peak_mib": peak_rss_mib(),
            "end_mib": current_rss_mib(),
            "mapped_end_mib": None if mapped is None else mapped / 2**20, "best_val_loss": result.best_val_loss,
            "threads": torch.get_num_threads(), "val_batches": cfg.trainer.limit_val_batches,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def med(runs: list[dict], key: str, fmt: str = "{:,.0f}") -> str:
    xs = [r[key] for r in runs]
    m = statistics.median(xs)
    return fmt.format(m) + (f" ({fmt.format(min(xs))}-{fmt.format(max(xs))})" if len(xs) > 1 else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--min-length", type=int, default=500)
    ap.add_argument("--max-length", type=int, default=500)
    ap.add_argument("--windows", type=int, default=102_400, help="training windows in the one epoch")
    ap.add_argument("--val-windows", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder for the data file")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks/results/panel_scale.md")
    ap.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0

    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)
    runs: dict[str, list[dict]] = {c: [] for c in args.configs}
    order = list(args.configs)
    for k in range(args.rounds):
        for config in order[k % len(order):] + order[: k % len(order)]:  # rotate the order round by round
            cmd = [sys.executable, __file__, *argv, "--child", config]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not line:
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
                raise SystemExit(f"{config}: exit {done.returncode}")
            runs[config].append(json.loads(line[0][7:]) | {"load": os.getloadavg()[0]})
            r = runs[config][-1]
            print(f"round {k} {config}: peak {r['peak_mib']:.0f} MiB, {r['windows_per_s']:,.0f} windows/s", flush=True)
    load_after = os.getloadavg()
    first = runs[order[0]][0]
    raw = first["raw_mib"]
    loads = [r["load"] for rs in runs.values() for r in rs]
    rows = []
    for config, rs in runs.items():
        ratio = [r["peak_mib"] / raw for r in rs]
        above = [(r["peak_mib"] - r["baseline_mib"]) / raw for r in rs]
        rows.append(
            f"| {config} | {med(rs, 'windows_per_s')} | {med(rs, 'baseline_mib')} | {med(rs, 'peak_data_mib')} | "
            f"**{med(rs, 'peak_mib')}** | **{statistics.median(ratio):.2f}x** ({min(ratio):.2f}-{max(ratio):.2f}) | "
            f"{statistics.median(above):.2f}x | {med(rs, 'mapped_end_mib', '{:,.1f}')} | "
            f"{med(rs, 'best_val_loss', '{:.4f}')} |"
        )
    text = "\n".join([
        "# Panel scale: 100,000 series × up to 500 steps, memory-mapped", "",
        f"- date: {started:%Y-%m-%d %H:%M}-{datetime.now(timezone.utc):%H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch threads {first['threads']}; subnormal "
        "floats flushed",
        f"- load average before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in load_after)}; 1-minute load at the end of each run "
        f"{min(loads):.2f}-{max(loads):.2f}",
        f"- command: `.venv/bin/python benchmarks/panel_scale.py {' '.join(argv)}`",
        f"- {args.rounds} round(s); each configuration once per round in a fresh process, the order rotating",
        "",
        "| quantity | value |", "|---|---|",
        f"| series | {args.series:,} (lengths {args.min_length}..{args.max_length}) |",
        f"| rows (float32, 1 column) | {first['rows']:,} = {raw:.0f} MiB raw (3x = {3 * raw:.0f} MiB) |",
        f"| training windows indexed (L {L}, H {H}) | {first['windows_indexed']:,}; index "
        f"{first['index_mib']:.1f} MiB |",
        f"| one epoch | {args.windows:,} windows drawn in batches of {args.batch_size} + {first['val_batches']} "
        f"validation batches |",
        f"| writing the file, median | {med([r for rs in runs.values() for r in rs], 'write_s', '{:.1f}')} s |",
        f"| scaler fit + scale in place, median | {med([r for rs in runs.values() for r in rs], 'scale_s', '{:.1f}')} s |",
        "",
        "Median over rounds (min-max). RSS in MiB. *baseline*: after importing torch, Lightning and lstm_lab, before "
        "any data; *after scaling*: the peak up to the end of scaling (includes the scaler's block temporaries); "
        "*mapped at end*: the data file's pages still mapped into the process after training.",
        "",
        "| configuration | training windows/s (incl. validation) | baseline | peak after scaling | peak RSS | "
        "peak / raw data | (peak - baseline) / raw | mapped at end | best val loss |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows, "",
    ]) + "\n"
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
