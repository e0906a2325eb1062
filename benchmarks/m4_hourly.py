"""M4 Hourly through the project's own command, timed, scored, and written up beside the official numbers.

Runs, in a fresh process,

    kedro run --pipelines=forecast --env=m4 --params=m4_dir=<dir>,m4_group=Hourly[,<extra>]

(the recipe is conf/m4/parameters_forecast.yml: a global LSTM over all 414 series, seasonal log-difference
targets, quantile head, an ensemble of seeds, at most 30 minutes of training in all), then reads what the run
wrote — the scores of the 48 steps after every series' end against Hourly-test.csv
(data/08_reporting/m4/forecast_future_metrics.json), the epoch history, the submission files — and writes
benchmarks/results/m4_hourly.md with the machine, the load before and after, the wall time, the peak RSS of the
run's processes, the official rows from ../shared/anchors/m4_hourly_anchors.csv and, when given (``--peer``), the
neuralforecast peer's JSON (benchmarks/m4_neuralforecast.py). The measurement itself is kept beside the report
(``m4_hourly.json``), so ``--report-only`` writes the report again, e.g. with the peer's JSON, without training
again.

    .venv/bin/python benchmarks/m4_hourly.py                       # the full run (~30 min)
    .venv/bin/python benchmarks/m4_hourly.py --report-only --peer benchmarks/results/m4_neuralforecast.json
    .venv/bin/python benchmarks/m4_hourly.py --params forecast.training.max_minutes=2 --results /tmp/m4.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yaml  # noqa: E402
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "data/08_reporting/m4"  # where conf/m4 puts its reports (globals.yml: env_folder)
ANCHOR_ROWS = {"Naive2": "Naive2", "sNaive": "sNaive", "118": "ES-RNN (Smyl, winner)",
               "238": "best Hourly entry (Doornik)"}


def read_anchors(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["method"]: row for row in csv.DictReader(f) if row.get("method") in ANCHOR_ROWS}


def run_kedro(m4_dir: Path, extra: list[str]) -> tuple[list[str], float, float, int]:
    """(command, wall seconds, peak RSS MiB of the largest child process, return code)."""
    params = ",".join([f"m4_dir={m4_dir}", "m4_group=Hourly", *extra])
    command = [str(REPO / ".venv/bin/kedro"), "run", "--pipelines=forecast", "--env=m4", f"--params={params}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO)
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return command, wall, rss, done.returncode


def early_stopping_patience(command: list[str]) -> int:
    """forecast.training.early_stopping_patience of the run: a --params override, else conf/m4, else conf/base."""
    for part in command:
        for item in part.removeprefix("--params=").split(","):
            if item.startswith("forecast.training.early_stopping_patience="):
                return int(item.split("=", 1)[1])
    for env in ("m4", "base"):
        training = yaml.safe_load((REPO / "conf" / env / "parameters_forecast.yml").read_text())["forecast"].get(
            "training") or {}
        if training.get("early_stopping_patience") is not None:
            return int(training["early_stopping_patience"])
    raise ValueError("no forecast.training.early_stopping_patience in conf/m4 or conf/base")


def report(run: dict, anchors, peer) -> str:
    command, wall, rss, scores, history = run["command"], run["wall_s"], run["peak_rss_mib"], run["scores"], run["history"]
    load_before, load_after = run["load_before"], run["load_after"]
    fmt = lambda v: "" if v in (None, "") else f"{float(v):.3f}"  # noqa: E731
    s = scores
    patience = early_stopping_patience(command)
    members = sorted({int(r["member"]) for r in history if r.get("member") is not None}) or [None]
    fits = []  # one per ensemble member (a single model: one)
    for k in members:
        rows = [r for r in history if k is None or r.get("member") is not None and int(r["member"]) == k]
        trained = [r for r in rows if int(r.get("epoch", 0)) > 0]
        best = min(trained, key=lambda r: r["val_loss"]) if trained else None
        initial = next((r["val_loss"] for r in rows if int(r.get("epoch", -1)) == 0), None)
        early = best is not None and len(trained) - int(best["epoch"]) >= patience
        fits.append({"member": k, "epochs": len(trained), "best": best, "initial": initial,
                     "stopped": (f"early stopping (best epoch {int(best['epoch'])}, {patience} epochs without a "
                                 "better one)" if early else "the time budget (training.max_minutes) or max_epochs")})
    # conf/m4's seasonal differences start as the seasonal naive forecast; a run overriding the transform does not
    untrained_is = "" if any("target_transform" in part for part in command) else " (= sNaive)"
    lines = [
        "# M4 Hourly: the global panel LSTM through `kedro run --env=m4`", "",
        f"- date: {run['date']}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, CPU only",
        f"- load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in load_after)}",
        f"- command: `{shlex.join(['kedro', *command[1:]])}` (run by `benchmarks/m4_hourly.py`)",
        f"- wall time {wall:.0f} s for the whole pipeline (training budget: forecast.training.max_minutes in "
        f"conf/m4/parameters_forecast.yml{', per ensemble member' if len(fits) > 1 else ''}), peak RSS "
        f"{rss:.0f} MiB",
        *(f"- training{'' if f['member'] is None else ' of ensemble member ' + str(f['member'] + 1)}: "
          f"{f['epochs']} epoch(s); validation pinball {fmt(f['initial'])} untrained{untrained_is} -> "
          f"{fmt(f['best']['val_loss']) if f['best'] else ''} best (epoch {int(f['best']['epoch']) if f['best'] else ''})"
          for f in fits),
        "",
        "| method | sMAPE | MASE | OWA | MSIS (95 %) | ACD (95 %) |", "|---|---|---|---|---|---|",
        f"| **lstm_lab (this run)** | {s['lstm']['smape']:.3f} | {s['lstm']['mase']:.3f} | {s['lstm']['owa']:.3f} | "
        f"{s['lstm'].get('msis95', float('nan')):.3f} | {s['lstm'].get('acd95', float('nan')):.3f} |",
    ]
    if peer:
        p = peer.get("scores", peer)
        lines.append(f"| neuralforecast `LSTM` (peer, same machine) | {p['smape']:.3f} | {p['mase']:.3f} | "
                     f"{p['owa']:.3f} | {fmt(p.get('msis'))} | {fmt(p.get('acd95'))} |")
    for name in ("seasonal_naive", "naive2", "naive"):
        b = s[name]
        lines.append(f"| {name} (recomputed by the pipeline) | {b['smape']:.3f} | {b['mase']:.3f} | {b['owa']:.3f} | | |")
    for key, label in ANCHOR_ROWS.items():
        if (row := anchors.get(key)) is not None:
            lines.append(f"| {label}, official | {fmt(row['smape'])} | {fmt(row['mase'])} | {fmt(row['owa'])} | "
                         f"{fmt(row['msis'])} | {fmt(row['acd'])} |")
    es, best_entry = anchors.get("118"), anchors.get("238")
    gap = []
    for label, row in (("ES-RNN", es), ("the best Hourly entry", best_entry)):
        if row:
            gap.append(f"{label} OWA {float(row['owa']):.3f} ({(s['lstm']['owa'] / float(row['owa']) - 1) * 100:+.0f} %), "
                       f"MSIS {float(row['msis']):.3f} ({(s['lstm'].get('msis95', float('nan')) / float(row['msis']) - 1) * 100:+.0f} %)")
    stopped = "; ".join(f["stopped"] if f["member"] is None else f"member {f['member'] + 1}: {f['stopped']}"
                        for f in fits)
    lines += ["", f"Against the anchors: this run OWA {s['lstm']['owa']:.3f} (sNaive "
              f"{s['seasonal_naive']['owa']:.3f}: {(s['lstm']['owa'] / s['seasonal_naive']['owa'] - 1) * 100:+.1f} %); "
              + "; ".join(gap) + f". Training ended by {stopped}."]
    covered = [f"{pct} % interval coverage {s['lstm'][f'coverage{pct}']:.3f}" for pct in (80, 95)
               if f"coverage{pct}" in s["lstm"]]
    lines += ["", ", ".join(covered) + f"; OWA against {s.get('owa_reference')}."]
    if run.get("note"):
        lines += ["", run["note"]]
    if peer:
        rss_peer = peer.get("peak_rss_mib", {}).get("self", float("nan"))
        lines += ["", f"Peer: neuralforecast `LSTM` ({peer['settings']['loss']}, input_size "
                  f"{peer['settings']['input_size']}, every other setting the library's default), "
                  f"`{peer['command']}`: {peer.get('steps_done')} steps (stopped by {peer.get('stopped_by')}), "
                  f"training {peer['train_s']:.0f} s, wall {peer['wall_s']:.0f} s, peak RSS {rss_peer:.0f} MiB, "
                  f"{peer['threads']['torch']} torch thread(s), load before "
                  f"{' / '.join(f'{x:.2f}' for x in peer['load_avg_before'])}; versions "
                  + ", ".join(f"{k} {v}" for k, v in peer["versions"].items() if v) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m4-dir", type=Path, default=REPO.parent / "shared/data/m4")
    ap.add_argument("--anchors", type=Path, default=REPO.parent / "shared/anchors/m4_hourly_anchors.csv")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks/results/m4_hourly.md")
    ap.add_argument("--params", nargs="*", default=[], help="extra --params entries, e.g. forecast.training.seed=1")
    ap.add_argument("--peer", type=Path, help="the JSON benchmarks/m4_neuralforecast.py wrote")
    ap.add_argument("--report-only", action="store_true", help="write the report from the last run's JSON")
    args = ap.parse_args(argv)
    measured = args.results.with_suffix(".json")
    if args.report_only:
        run = json.loads(measured.read_text())
    else:
        load_before = os.getloadavg()
        command, wall, rss, rc = run_kedro(args.m4_dir.resolve(), args.params)
        load_after = os.getloadavg()
        if rc != 0:
            print(f"kedro run failed (exit {rc})", file=sys.stderr)
            return rc
        with open(REPORTS / "forecast_history.csv", newline="") as f:
            history = [{k: float(v) if v not in ("", None) else None for k, v in row.items()}
                       for row in csv.DictReader(f)]
        run = {"date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}", "command": command, "wall_s": wall,
               "peak_rss_mib": rss, "load_before": load_before, "load_after": load_after, "history": history,
               "scores": json.loads((REPORTS / "forecast_future_metrics.json").read_text())}
        measured.write_text(json.dumps(run, indent=1) + "\n")
    peer = json.loads(args.peer.read_text()) if args.peer and args.peer.is_file() else None
    text = report(run, read_anchors(args.anchors), peer)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
