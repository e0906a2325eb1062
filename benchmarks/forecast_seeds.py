"""The forecast pipeline's test scores over seeds: the spread a single number hides.

For each configuration and each seed this runs the real command (``kedro run --pipelines=forecast [--env=..]
--params=..,forecast.training.seed=<seed>``), configurations alternating round by round (seed 42 of each, then
43 of each, ...), and reads ``forecast_metrics.json``. The results file reports, per configuration, the LSTM's
test MSE / MAE (MASE for the default run) as mean ± standard deviation [min-max] over the seeds, beside the
naive and seasonal-naive baselines (the same every seed) and, for ETTh1, the published LSTMa and Informer
numbers (Informer, Table 1; ../shared/anchors/forecasting_anchors.csv).

The third configuration, ``random_walk``, is the case where a forecaster easily loses to naive: a Gaussian random
walk (14,400 daily values, data seed 0), for which the last value is the best forecast there is. It is written to
a CSV and run through conf/etth1 (whose catalog reads any CSV named by ``etth1_csv``; same rows split, lookback 168,
horizon 24) with daily frequency. The untrained residual forecaster *is* the naive forecast and is validated
before the first epoch, so training can keep it; the results give the test scores against naive and the epoch
each seed kept (0 = the untrained, naive-equivalent weights). Like every run of conf/etth1, it writes under
data/*/etth1/ (the ETTh1 run's files there are replaced; nothing is registered: ``forecast.serving.register=false``).

    .venv/bin/python benchmarks/forecast_seeds.py                      # CO2 (default), ETTh1 h24, random walk
    .venv/bin/python benchmarks/forecast_seeds.py --configs co2 --seeds 1 2 3 --results /tmp/seeds.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# name → (kedro args, reports folder, which scores, anchor horizon)
CONFIGS = {
    "co2": ([], "data/08_reporting", ("mse", "mae", "mase"), None),
    "etth1_h24": (["--env=etth1"], "data/08_reporting/etth1", ("mse_scaled", "mae_scaled"), 24),
    "random_walk": (["--env=etth1"], "data/08_reporting/etth1", ("mse", "mae", "mase"), None),
}
NOT_REGISTERED = "forecast.serving.register=false"  # benchmark runs do not compete for models:/...@champion


def random_walk_csv(folder: Path) -> Path:
    """A Gaussian random walk of 14,400 days (data seed 0, fixed: only the training seed varies), as date,OT."""
    import numpy as np
    import pandas as pd

    values = 100 + np.cumsum(np.random.default_rng(0).normal(size=14_400))
    path = folder / "random_walk.csv"
    pd.DataFrame({"date": pd.date_range("1980-01-01", periods=values.size, freq="D"), "OT": values}).to_csv(
        path, index=False)
    return path


def config_params(name: str, etth1: Path, walk: Path | None) -> list[str]:
    if name == "etth1_h24":
        return [f"etth1_csv={etth1.resolve()}", f"forecast.window.horizon={CONFIGS[name][3]}"]  # the anchors' horizon
    if name == "random_walk":
        return [f"etth1_csv={walk}", "forecast.data.frequency=D", "forecast.evaluation.seasonal_period=7"]
    return []


def run(name: str, seed: int, params: list[str]) -> tuple[dict, int, float]:
    """(test metrics, the epoch whose weights were kept, wall seconds) of one seed of one configuration."""
    args, reports, _, _ = CONFIGS[name]
    params = [*params, NOT_REGISTERED, f"forecast.training.seed={seed}"]
    command = [str(REPO / ".venv/bin/kedro"), "run", "--pipelines=forecast", *args, f"--params={','.join(params)}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{name} seed {seed} failed:\n{done.stderr[-3000:]}")
    with open(REPO / reports / "forecast_history.csv", newline="") as f:
        history = [(int(row["epoch"]), float(row["val_loss"])) for row in csv.DictReader(f) if row["val_loss"]]
    kept = min(history, key=lambda row: row[1])[0]  # the best validation loss, the first on a tie, as fit keeps
    return json.loads((REPO / reports / "forecast_metrics.json").read_text()), kept, wall


def anchors(path: Path, horizon: int) -> dict[str, tuple[float, float]]:
    out = {}
    if path.is_file():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["dataset"] == "ETTh1" and row["setting"].startswith("univariate") and \
                        row["table"] == "Table 1" and row["source"].startswith("Informer") and \
                        row["model"] in ("LSTMa", "Informer") and int(row["horizon"]) == horizon:
                    out[row["model"]] = (float(row["mse"]), float(row["mae"]))
    return out


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f} [{min(values):.4f}–{max(values):.4f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    ap.add_argument("--etth1", type=Path, default=SHARED / "data/ett/ETTh1.csv")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks/results/forecast_seeds.md")
    args = ap.parse_args(argv)
    configs = [c for c in args.configs if c != "etth1_h24" or args.etth1.is_file()]
    results: dict[str, list[tuple[int, dict, int, float, tuple]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        walk = random_walk_csv(Path(tmp)) if "random_walk" in configs else None
        for seed in args.seeds:  # round by round: every configuration once per seed
            for name in configs:
                load = os.getloadavg()
                metrics, kept, wall = run(name, seed, config_params(name, args.etth1, walk))
                results[name].append((seed, metrics, kept, wall, load))
                print(f"{name} seed {seed}: lstm {metrics['lstm']}, kept epoch {kept} ({wall:.0f} s, load "
                      f"{load[0]:.2f})", flush=True)

    lines = ["# Forecast test scores over seeds", "",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores, CPU only; torch threads: the pipeline's default",
             f"- command: `.venv/bin/python benchmarks/forecast_seeds.py {' '.join(argv or sys.argv[1:])}`",
             f"- seeds {args.seeds}, configurations alternating round by round", ""]
    for name in configs:
        _, _, scores, horizon = CONFIGS[name]
        rows = results[name]
        lines += [f"## {name}", "", "| model | " + " | ".join(scores) + " |", "|---" * (len(scores) + 1) + "|"]
        lines.append("| LSTM (mean ± sd [min–max]) | " +
                     " | ".join(spread([m["lstm"][k] for _, m, _, _, _ in rows]) for k in scores) + " |")
        for base in ("naive", "seasonal_naive"):
            lines.append(f"| {base} | " + " | ".join(f"{rows[0][1][base][k]:.4f}" for k in scores) + " |")
        if horizon is not None:
            for model, (mse, mae) in anchors(SHARED / "anchors/forecasting_anchors.csv", horizon).items():
                lines.append(f"| {model} (Informer, Table 1) | {mse:.4f} | {mae:.4f} |")
        lines += ["", "| seed | " + " | ".join(scores) + " | kept epoch (0 = untrained) | wall s | load (1 min) "
                  "before |",
                  "|---" * (len(scores) + 4) + "|"]
        for seed, m, kept, wall, load in rows:
            lines.append(f"| {seed} | " + " | ".join(f"{m['lstm'][k]:.4f}" for k in scores) +
                         f" | {kept} | {wall:.0f} | {load[0]:.2f} |")
        lines.append("")
    text = "\n".join(lines)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
