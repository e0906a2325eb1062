"""Training-step speed of the panel forecaster with and without seasonal folding (``panel.fold``), M4 Hourly shapes.

    .venv/bin/python benchmarks/panel_fold_speed.py [--rounds 8] [--steps 10]

One step = forward + pinball loss + backward + Adam step of ``PanelForecaster`` on one batch of B=256 windows
(lookback 168, horizon 48; 2 targets, 4 past and 4 future calendar columns, 414 series with an 8-wide id
embedding, quantile head at the 5 default levels; LSTM(128), native), as conf/m4 trains it, at ``fold`` 1 (one
hour per LSTM step: 168 steps) and 24 (a day per step: 7 steps). Random inputs and targets; subnormal floats
flushed (set before any torch op, as the pipeline's runtime does); torch threads = the CPUs available.

Both networks live in this one process. Round k runs a block of ``--steps`` steps of each, the order alternating
with k, so anything else running on the machine slows both alike; round 0 is warm-up. Reported: per network the
median over rounds of its block's median step time (and the min-max over rounds), and the speed-up computed
within each round (median, min-max). Writes benchmarks/results/panel_fold_speed.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

torch.set_flush_denormal(True)  # before any parallel op: it reaches only intra-op threads created after it

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etth1_univariate import machine  # noqa: E402

from lstm_lab.models.panel_forecaster import PanelForecaster  # noqa: E402
from lstm_lab.models.spec import ModelSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
B, L, H, C, P, U, S, E = 256, 168, 48, 2, 4, 4, 414, 8
FOLDS = (1, 24)


def setup(fold: int):
    torch.manual_seed(0)
    net = PanelForecaster(C + P, C, H, ModelSpec(hidden_sizes=[128], impl="native"), n_future=U, n_series=S,
                          id_embedding=E, fold=fold).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(B, L, C + P, generator=g), "future": torch.randn(B, H, U, generator=g),
             "series": torch.randint(0, S, (B,), generator=g), "mask": torch.ones(B, L, dtype=torch.bool)}
    y = torch.randn(B, H, C, generator=g)

    def step() -> float:
        start = time.perf_counter()
        loss = net.loss(net(batch), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    steps = {fold: setup(fold) for fold in FOLDS}
    load_before = os.getloadavg()
    times = {fold: [] for fold in FOLDS}  # per round: the block's median step time
    for k in range(args.rounds):
        for fold in (FOLDS if k % 2 == 0 else FOLDS[::-1]):
            times[fold].append(statistics.median(steps[fold]() for _ in range(args.steps)))
    load_after = os.getloadavg()
    kept = {fold: t[1:] for fold, t in times.items()}  # round 0: warm-up
    ratios = [a / b for a, b in zip(kept[1], kept[24])]
    rows = [f"| fold {fold} ({L // fold} LSTM steps) | {1000 * statistics.median(t):.1f} | "
            f"{1000 * min(t):.1f}-{1000 * max(t):.1f} | {B / statistics.median(t):,.0f} |" for fold, t in kept.items()]
    text = "\n".join([
        "# Panel forecaster: training-step speed with and without seasonal folding", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}; subnormal floats flushed",
        f"- load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in load_after)}",
        f"- command: `.venv/bin/python benchmarks/panel_fold_speed.py --rounds {args.rounds} --steps {args.steps}` "
        f"({args.rounds - 1} measured rounds after a warm-up round, {args.steps} steps per block, the two networks "
        "alternating round by round in one process)",
        f"- shapes: B={B}, lookback {L}, horizon {H}, {C} targets + {P} past + {U} future columns, {S} series "
        f"(id embedding {E}), LSTM(128) native, quantile head (5 levels), pinball loss, Adam", "",
        "| network | step ms, median of rounds | min-max over rounds | windows/s |", "|---|---|---|---|", *rows, "",
        f"Speed-up of fold 24 over fold 1, within each round: median {statistics.median(ratios):.1f}x "
        f"(min-max {min(ratios):.1f}-{max(ratios):.1f}x).", ""])
    (REPO / "benchmarks/results/panel_fold_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
