"""ETTh1 univariate (target OT) under the Informer protocol, through the real forecast pipeline.

For each horizon this runs ``kedro run --pipelines=forecast --env=etth1`` (conf/etth1: rows 8640/11520/14400,
scaler on train, metrics on the z-normalised scale) and collects the test MSE/MAE beside the published LSTMa
and Informer numbers (Informer Table 1, from ../shared/anchors/forecasting_anchors.csv).

    .venv/bin/python benchmarks/etth1_univariate.py --data ../shared/data/ett/ETTh1.csv

Writes benchmarks/results/etth1_univariate.csv (one row per horizon) and etth1_univariate.md (with the machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py, also when loaded by path
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def machine() -> str:
    cpu = cpu_model()
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only"


def anchors(path: Path) -> dict[tuple[int, str], tuple[float, float]]:
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["dataset"] == "ETTh1" and row["setting"].startswith("univariate") and row["table"] == "Table 1" \
                    and row["source"].startswith("Informer") and row["model"] in ("LSTMa", "Informer"):
                out[(int(row["horizon"]), row["model"])] = (float(row["mse"]), float(row["mae"]))
    return out


def run_horizon(data: Path, horizon: int, extra: list[str]) -> tuple[dict, float]:
    # One model per horizon, not registered: forecast_etth1's champion is kept for what a user trains and serves.
    params = f"etth1_csv={data.resolve()},forecast.window.horizon={horizon},forecast.serving.register=false"
    for item in extra:
        params += f",{item}"
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--pipelines=forecast", "--env=etth1", f"--params={params}"],
        cwd=REPO, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"horizon {horizon} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((REPO / "data/08_reporting/etth1/forecast_metrics.json").read_text())
    return metrics, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/ett/ETTh1.csv")
    parser.add_argument("--anchors", type=Path, default=REPO.parent / "shared/anchors/forecasting_anchors.csv")
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 48, 168, 336, 720])
    parser.add_argument("--param", action="append", default=[], help="extra kedro --params item, key=value")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data}: ETTh1.csv not found; pass --data /path/to/ETTh1.csv")

    published = anchors(args.anchors)
    rows, load_start = [], os.getloadavg()
    for horizon in args.horizons:
        metrics, wall = run_horizon(args.data, horizon, args.param)
        lstm = metrics["lstm"]
        lstma, informer = published.get((horizon, "LSTMa"), (None, None)), published.get((horizon, "Informer"), (None, None))
        rows.append({
            "horizon": horizon,
            "mse": round(lstm["mse_scaled"], 4),
            "mae": round(lstm["mae_scaled"], 4),
            "lstma_mse": lstma[0], "lstma_mae": lstma[1],
            "informer_mse": informer[0], "informer_mae": informer[1],
            "naive_mse": round(metrics["naive"]["mse_scaled"], 4),
            "beats_lstma": lstma[0] is not None and lstm["mse_scaled"] < lstma[0] and lstm["mae_scaled"] < lstma[1],
            "wall_s": round(wall, 1),
        })
        print(rows[-1], flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "etth1_univariate.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# ETTh1 univariate (OT), Informer protocol",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min) at the start: {' / '.join(f'{x:.2f}' for x in load_start)}, at the end: "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "- one seed per horizon (forecast.training.seed 42); three seeds at horizon 24: "
        "benchmarks/results/forecast_seeds.md",
        f"- command: `{' '.join(['python', 'benchmarks/etth1_univariate.py', *sys.argv[1:]])}`",
        "- config: conf/etth1/parameters_forecast.yml (lookback 168, LSTM(64), residual on last value, Adam, early stop)",
        f"- total wall time: {sum(r['wall_s'] for r in rows):.0f} s",
        "",
        "| horizon | LSTM mse | LSTM mae | LSTMa mse/mae | Informer mse/mae | naive mse | beats LSTMa | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['horizon']} | {r['mse']:.4f} | {r['mae']:.4f} | {r['lstma_mse']}/{r['lstma_mae']} | "
                     f"{r['informer_mse']}/{r['informer_mae']} | {r['naive_mse']:.4f} | {r['beats_lstma']} | {r['wall_s']} |")
    (RESULTS / "etth1_univariate.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
