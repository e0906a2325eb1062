"""M4 Hourly with Nixtla neuralforecast's ``LSTM``: a peer benchmark to run beside ``m4_hourly.py``.

Reads the competition's wide files (``Hourly-train.csv``, ``Hourly-test.csv``: column V1 = series id, then the
values, rows right-padded with empty cells; the test file has 48 values per row), builds neuralforecast's long
frame (``unique_id``, ``ds`` = integer step 0..n-1 with ``freq=1``, ``y``), fits one global
``neuralforecast.models.LSTM`` on all series with h=48, input_size=168 (a week) and
``loss=MQLoss(level=[80, 95])`` -- every other hyper-parameter at the library's default (peers get their own
default settings) -- forecasts the 48 steps after every series' end and scores them against the test file with
the project's M4 measures (``lstm_lab.evaluation.m4``): sMAPE, MASE (m = 24), OWA against the official Naive2
(Hourly sMAPE 18.383, MASE 2.395), MSIS and coverage / ACD of the 95 % interval [lo-95, hi-95]. The point
forecast is the median output (``LSTM-median``). The bounds are scored as the model emits them (not sorted);
the JSON counts the points where lo-95 > hi-95.

Budget: training stops at ``--max-steps`` optimiser steps (default 1000, the library's default) or after
``--minutes`` of training (Lightning ``max_time``), whichever comes first. For a time-matched comparison pass a
large ``--max-steps`` (e.g. 1000000) so that ``--minutes`` binds. ``--auto`` runs ``AutoLSTM`` instead (the
library's default search space, optuna backend with a TPE sampler seeded by ``--seed``, ``--num-samples`` trials within ``--minutes``, validation =
the last 48 steps of each series, then a refit of the best configuration), with input_size and the loss still
fixed as above.

It needs its own environment with neuralforecast (not the project's .venv), e.g.::

    python3.11 -m venv /tmp/nfenv
    /tmp/nfenv/bin/pip install torch==2.13.0        # the CPU wheel; an unpinned torch pulls CUDA packages
    /tmp/nfenv/bin/pip install neuralforecast
    /tmp/nfenv/bin/python benchmarks/m4_neuralforecast.py --minutes 30 --threads 2 --max-steps 1000000

Smoke test: ``--minutes 1 --threads 1 --max-series 20 --max-steps 50 --out /tmp/nf_smoke.json``. With
``--max-series`` the official Naive2 no longer matches the series scored, so the JSON also carries Naive2 and
sNaive computed on the same series (``reference``) and ``owa_vs_naive2_here``.

Output: prints the result and writes it as JSON to ``--out`` (default benchmarks/results/m4_neuralforecast.json):
scores, wall and training time, peak RSS, threads, versions, load average before/after, CPU model, command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the project's measures (pure numpy), without installing the project
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import cpu_model  # noqa: E402

H = 48
SEASONALITY = 24
INPUT_SIZE = 168
LEVELS = [80, 95]
ALPHA = 0.05
GROUP = "Hourly"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/m4"),
                   help="folder with Hourly-train.csv and Hourly-test.csv")
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget (Lightning max_time)")
    p.add_argument("--max-steps", type=int, default=1000,
                   help="optimiser steps cap (library default 1000); make it large for a time-matched run")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (and OMP/MKL threads)")
    p.add_argument("--seed", type=int, default=1, help="the model's random_seed")
    p.add_argument("--max-series", type=int, default=None, help="only the first N series (for smoke tests)")
    p.add_argument("--auto", action="store_true", help="AutoLSTM (optuna) instead of the default LSTM")
    p.add_argument("--num-samples", type=int, default=4, help="AutoLSTM trials (with --auto)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "m4_neuralforecast.json")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------------
# machine facts
# ----------------------------------------------------------------------------------------------------------------
def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in ("neuralforecast", "torch", "pytorch-lightning", "lightning", "numpy", "pandas", "optuna"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def peak_rss_mib() -> dict[str, float]:
    """ru_maxrss is in KiB on Linux."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
def read_wide(path: Path):
    """(ids, list of 1-D float arrays) from an M4 wide file; the right padding dropped."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, dtype={"V1": str})
    ids = frame["V1"].astype(str).tolist()
    values = frame.drop(columns="V1").to_numpy(dtype=np.float64)
    rows = []
    for k, row in enumerate(values):
        present = np.flatnonzero(~np.isnan(row))
        n = int(present[-1]) + 1 if present.size else 0
        if n == 0 or np.isnan(row[:n]).any():
            raise SystemExit(f"{path}: series {ids[k]} has no values or a gap inside; expected right padding only")
        rows.append(row[:n])
    return ids, rows


def load(data: Path, max_series: int | None):
    import numpy as np

    train_ids, train = read_wide(data / f"{GROUP}-train.csv")
    test_ids, test = read_wide(data / f"{GROUP}-test.csv")
    test_by_id = dict(zip(test_ids, test))
    if set(test_by_id) != set(train_ids):
        raise SystemExit("train and test files hold different series ids")
    if max_series is not None:
        train_ids, train = train_ids[:max_series], train[:max_series]
    actual = np.stack([test_by_id[i] for i in train_ids])
    if actual.shape[1] != H:
        raise SystemExit(f"test file has {actual.shape[1]} values per row; expected {H}")
    return train_ids, train, actual


def long_frame(ids, rows):
    import numpy as np
    import pandas as pd

    return pd.DataFrame({
        "unique_id": np.repeat(np.asarray(ids, dtype=object), [len(r) for r in rows]),
        "ds": np.concatenate([np.arange(len(r), dtype=np.int64) for r in rows]),
        "y": np.concatenate(rows).astype(np.float32),
    })


# ----------------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------------
def trainer_kwargs(minutes: float) -> dict:
    return {"accelerator": "cpu", "devices": 1, "max_time": {"seconds": max(1.0, minutes * 60.0)},
            "enable_progress_bar": False, "enable_model_summary": False, "logger": False}


def build(args):
    from neuralforecast.losses.pytorch import MQLoss

    if not args.auto:
        from neuralforecast.models import LSTM

        return LSTM(h=H, input_size=INPUT_SIZE, loss=MQLoss(level=LEVELS), max_steps=args.max_steps,
                    random_seed=args.seed, **trainer_kwargs(args.minutes)), 0

    import optuna
    from neuralforecast.auto import AutoLSTM

    space = AutoLSTM.get_default_config(h=H, backend="ray")  # the library's search space, as a dict
    space.update(input_size=INPUT_SIZE, inference_input_size=INPUT_SIZE, random_seed=args.seed)
    if args.max_steps < 1000:  # smoke tests: cap the searched step counts (default choices 500, 1000)
        space["max_steps"] = args.max_steps
    base = AutoLSTM._ray_config_to_optuna(space)
    per_trial = args.minutes / (args.num_samples + 1)  # the trials plus the refit share the budget

    def config(trial):
        return {**base(trial), **trainer_kwargs(per_trial)}

    model = AutoLSTM(h=H, loss=MQLoss(level=LEVELS), config=config, num_samples=args.num_samples,
                     time_budget=args.minutes * 60.0 * args.num_samples / (args.num_samples + 1),
                     backend="optuna", search_alg=optuna.samplers.TPESampler(seed=args.seed))
    return model, H  # AutoLSTM needs a validation split: the last h steps of every series


def main(argv=None) -> dict:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    load_before = os.getloadavg()
    t0 = time.perf_counter()

    import logging
    import warnings

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from neuralforecast import NeuralForecast

    from lstm_lab.evaluation.m4 import (M4_NAIVE2_OFFICIAL, coverage, mase, mase_scale, msis, naive2_forecast,
                                        owa, smape, snaive_forecast)

    ids, train, actual = load(args.data, args.max_series)
    df = long_frame(ids, train)
    model, val_size = build(args)
    nf = NeuralForecast(models=[model], freq=1)

    t_fit = time.perf_counter()
    nf.fit(df=df, val_size=val_size)
    train_s = time.perf_counter() - t_fit
    fitted = nf.models[0].model if args.auto else nf.models[0]
    trajectory = list(getattr(fitted, "train_trajectories", []) or [])  # (global_step, train loss) per step
    steps_done = int(trajectory[-1][0]) + 1 if trajectory else None
    last_loss = float(trajectory[-1][1]) if trajectory else None

    t_pred = time.perf_counter()
    fc = nf.predict()
    predict_s = time.perf_counter() - t_pred
    alias = "AutoLSTM" if args.auto else "LSTM"
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    fc = fc.sort_values(["unique_id", "ds"])
    # ds continues each series' own step index (lengths differ): align on the step after the end, 0..H-1
    fc["step"] = fc.groupby("unique_id").cumcount()
    cols = {"point": f"{alias}-median", "lo95": f"{alias}-lo-95", "hi95": f"{alias}-hi-95",
            "lo80": f"{alias}-lo-80", "hi80": f"{alias}-hi-80"}
    missing = [c for c in cols.values() if c not in fc.columns]
    if missing:
        raise SystemExit(f"forecast frame lacks {missing}; it has {list(fc.columns)}")
    grid = {}
    for key, col in cols.items():
        wide = fc.pivot(index="unique_id", columns="step", values=col).reindex(ids)
        grid[key] = wide.to_numpy(dtype=np.float64)
        if grid[key].shape != actual.shape or not np.isfinite(grid[key]).all():
            raise SystemExit(f"forecast {col}: shape {grid[key].shape} or non-finite values; expected {actual.shape}")

    scale = mase_scale(train, SEASONALITY)
    n2_smape, n2_mase = M4_NAIVE2_OFFICIAL[GROUP]
    s = float(smape(actual, grid["point"]).mean())
    m = float(mase(actual, grid["point"], scale).mean())
    cov95 = coverage(actual, grid["lo95"], grid["hi95"])
    scores = {
        "smape": s, "mase": m, "owa": owa(s, m, n2_smape, n2_mase),
        "msis": float(msis(actual, grid["lo95"], grid["hi95"], scale, ALPHA).mean()),
        "coverage95": cov95, "acd95": abs(cov95 - (1 - ALPHA)),
        "coverage80": coverage(actual, grid["lo80"], grid["hi80"]),
        "crossed_95_points": int((grid["lo95"] > grid["hi95"]).sum()),
    }
    reference = {}
    for name, f in (("Naive2", naive2_forecast(train, H, SEASONALITY)),
                    ("sNaive", snaive_forecast(train, H, SEASONALITY))):
        reference[name] = {"smape": float(smape(actual, f).mean()), "mase": float(mase(actual, f, scale).mean())}
    scores["owa_vs_naive2_here"] = owa(s, m, reference["Naive2"]["smape"], reference["Naive2"]["mase"])

    result = {
        "benchmark": "M4 Hourly, neuralforecast " + alias,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {"h": H, "input_size": INPUT_SIZE, "loss": f"MQLoss(level={LEVELS})", "seasonality": SEASONALITY,
                     "minutes": args.minutes, "max_steps": args.max_steps, "seed": args.seed, "auto": args.auto,
                     "num_samples": args.num_samples if args.auto else None, "series": len(ids),
                     "point": "median", "naive2_official": {"smape": n2_smape, "mase": n2_mase}},
        "scores": scores,
        "reference": reference,
        "steps_done": steps_done,
        "stopped_by": None if steps_done is None else ("max_steps" if steps_done >= fitted.trainer_kwargs.get(
            "max_steps", -1) else "max_time"),
        "last_train_loss": last_loss,
        "train_s": train_s,
        "predict_s": predict_s,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mib": peak_rss_mib(),
        "threads": {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                    "requested": args.threads},
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
    }
    if args.auto:
        try:
            study = nf.models[0].results  # the optuna study; params = the searched values of the best trial
            result["auto_best_config"] = {**study.best_trial.params, "valid_loss": study.best_trial.value,
                                          "trials": len(study.trials)}
        except Exception:  # noqa: BLE001
            result["auto_best_config"] = None
    text = json.dumps(result, indent=2, default=str)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
