"""SST-2 (GLUE) through the real sentiment pipeline: train on train.tsv, select on dev.tsv, report on test.tsv.

``test.tsv`` is GLUE's dev set (872 sentences), the split every paper reports. Runs

    kedro run --pipelines=sentiment --env=sst2 --params=sst2_dir=<data>,...

(conf/sst2: the three files as train/val/test, the benchmark's model in conf/sst2/parameters_sentiment.yml, no
pretrained embeddings) once per configuration and writes benchmarks/results/sst2.md beside the published numbers
(Tai et al. 2015: LSTM 84.9, BiLSTM 87.5; Kim 2014: CNN-rand 82.7).

    .venv/bin/python benchmarks/sst2.py                          # the configurations below, ~10-20 min on 2 cores
    .venv/bin/python benchmarks/sst2.py --only bilstm            # one of them
    .venv/bin/python benchmarks/sst2.py --quick                  # a smoke test: 1 epoch on 5 % of the batches

Selection: early stopping and the kept checkpoint use the dev loss; the dev accuracy reported is that
checkpoint's (the epoch with the lowest val_loss). The test set is scored once, by the pipeline's evaluation node.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etth1_univariate import machine  # noqa: E402  (one description of the machine for every benchmark)

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REPORTING = REPO / "data" / "08_reporting" / "sst2"

PUBLISHED = [  # SST-2 accuracy (%), GLUE dev = our test.tsv
    ("Kim 2014, CNN-rand (random embeddings)", 82.7),
    ("Tai et al. 2015, LSTM", 84.9),
    ("Tai et al. 2015, BiLSTM", 87.5),
    ("Tai et al. 2015, 2-layer BiLSTM", 87.2),
    ("Kim 2014, CNN multichannel (word2vec)", 88.1),
]

# name → (what it is, extra --params on top of conf/sst2/parameters_sentiment.yml)
CONFIGS = {
    "lstm": ("the seeds' model: Embedding(10000, 100) → LSTM(128) → Dense(1)",
             ["sentiment.model.bidirectional=false", "sentiment.embedding.dim=100", "sentiment.model.pooling=last",
              "sentiment.embedding.dropout=0.0"]),
    "bilstm": ("BiLSTM(128), mean pooling, embedding and head dropout 0.3 (conf/sst2 as committed)", []),
}


def run(data: Path, extra: list[str]) -> tuple[dict, pd.DataFrame, dict, float]:
    params = ",".join([f"sst2_dir={data.resolve()}", *extra])
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--pipelines=sentiment", "--env=sst2",
         f"--params={params}"],
        cwd=REPO, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"kedro run failed ({params}):\n{done.stderr[-3000:]}")
    metrics = json.loads((REPORTING / "sentiment_metrics.json").read_text())
    history = pd.read_csv(REPORTING / "sentiment_history.csv")
    stats = json.loads((REPORTING / "sentiment_text_stats.json").read_text())
    return metrics, history, stats, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/sst2")
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--param", action="append", default=[], help="extra kedro --params item, key=value")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 5%% of the batches; no results file")
    parser.add_argument("--note", default="", help="a line added to the results file (e.g. machine load)")
    args = parser.parse_args()
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        if not (args.data / name).is_file():
            sys.exit(f"{args.data / name}: not found; pass --data /path/to/sst2 (train.tsv, dev.tsv, test.tsv)")
    extra = list(args.param)
    if args.quick:
        extra += ["sentiment.training.max_epochs=1", "sentiment.training.trainer.limit_train_batches=0.05"]

    rows, total = [], time.perf_counter()
    for name in args.only or list(CONFIGS):
        what, params = CONFIGS[name]
        metrics, history, stats, wall = run(args.data, params + extra)
        best = history.loc[history["val_loss"].idxmin()]
        rows.append({
            "config": name, "what": what, "test_acc": 100 * metrics["accuracy"], "test_f1": 100 * metrics["f1"],
            "test_auc": metrics["roc_auc"], "dev_acc": 100 * float(best["val_acc"]), "best_epoch": int(best["epoch"]) + 1,
            "epochs": len(history), "wall_s": wall, "vocab": stats["vocab_size"],
            "test_oov": 100 * stats["test"]["oov_rate"],
        })
        print(f"{name}: test accuracy {rows[-1]['test_acc']:.2f} %, dev {rows[-1]['dev_acc']:.2f} %, "
              f"{len(history)} epochs, {wall:.0f} s", flush=True)
    total = time.perf_counter() - total
    if args.quick:
        print(f"quick check done in {total:.0f} s (no results written)")
        return

    RESULTS.mkdir(parents=True, exist_ok=True)
    best = max(rows, key=lambda r: r["dev_acc"])  # selected on dev, never on test
    lines = [
        "# SST-2 (GLUE), sentence-level binary sentiment",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        "- command: `.venv/bin/python benchmarks/sst2.py" + "".join(f" --only {o}" for o in args.only or [])
        + "".join(f" --param {p}" for p in args.param) + "`",
        "- protocol: train on `train.tsv` (60,614 phrases), early stopping and checkpoint selection on `dev.tsv` "
        "(6,735), accuracy on `test.tsv` (= GLUE dev, 872 sentences); no pretrained embeddings "
        "(vocabulary of the 10,000 most frequent training tokens, embeddings learnt from scratch)",
        f"- total wall time: {total:.0f} s (each run includes `kedro run` start-up, tokenisation and evaluation)",
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "| config | model | dev acc % | test acc % | test F1 % | test ROC-AUC | epochs (best) | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {r['what']} | {r['dev_acc']:.2f} | **{r['test_acc']:.2f}** | "
                     f"{r['test_f1']:.2f} | {r['test_auc']:.4f} | {r['epochs']} ({r['best_epoch']}) | {r['wall_s']:.0f} |")
    lines += ["", "Published SST-2 accuracies on the same test sentences (GLUE dev):", "",
              "| model | accuracy % | ours (selected on dev) minus it |", "|---|---|---|"]
    for label, value in PUBLISHED:
        lines.append(f"| {label} | {value} | {best['test_acc'] - value:+.2f} |")
    lines += ["", f"Selected on dev: **{best['config']}**, test accuracy {best['test_acc']:.2f} % "
              f"({best['test_acc'] - 87.5:+.2f} points from Tai et al.'s BiLSTM 87.5, "
              f"{best['test_acc'] - 85.0:+.2f} from the 85 % target). "
              f"Test OOV rate {best['test_oov']:.1f} % of tokens (vocabulary {best['vocab']})."]
    (RESULTS / "sst2.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
