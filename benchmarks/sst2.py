"""SST-2 (GLUE) through the real sentiment pipeline: train on GLUE train, select on dev, report on test.tsv.

``test.tsv`` is GLUE's dev set (872 sentences), the split every paper reports. Each configuration runs

    kedro run --pipelines=sentiment --env=sst2 --params=sst2_dir=<data>,sentiment.ensemble=3,...

once: the three ensemble members are trained with seeds 42, 43, 44, each exactly as a single run with that seed
would train (its own early stopping and its own best checkpoint, both on ``training.monitor``: dev accuracy in
conf/sst2 since 2026-11-30, dev loss before), so one run gives the three
single-model results (per seed, mean, spread) *and* the 3-model ensemble (mean of the probabilities), for the
CPU time of the three seeds. conf/sst2 holds the benchmark's recipe (no pretrained embeddings); since 2026-11-30
its dev split is sentence level (``split.holdout: sentences``, lstm_lab/data/sst2_split.py): train.tsv and
dev.tsv (both parts of GLUE train) are pooled, 10 % of the whole sentences are held out as dev, and the phrases
found only inside them leave training.

    .venv/bin/python benchmarks/sst2.py                         # the configurations below, 12-18 CPU-min each
    .venv/bin/python benchmarks/sst2.py --only sent-wd-sub      # one of them (conf/sst2 as committed)
    .venv/bin/python benchmarks/sst2.py --uci                   # the UCI sentences (conf/uci_recipe) with the recipe
    .venv/bin/python benchmarks/sst2.py --quick                 # a smoke test: 1 epoch on 2 % of the batches

Seed-averaged ensembles: train disjoint seed ranges in copies of the project (``git clone`` this repository; the
runs write under each copy's data/), e.g. side by side, then pool them (nothing is trained again):

    PY=$PWD/.venv/bin/python   # this project's venv serves every copy (the package is installed editable)
    (cd copy1 && $PY benchmarks/sst2.py --data $SST2 --only sent-wd-sub --seeds 3 --param sentiment.training.seed=42)
    (cd copy2 && ... --param sentiment.training.seed=45)   (cd copy3 && ... seed=48)
    $PY benchmarks/sst2.py --combine copy1 copy2 copy3

Selection uses dev only: each member keeps its best epoch by ``training.monitor`` (highest dev accuracy, or lowest
dev loss for ``*-loss`` configurations); configurations are compared on the mean dev accuracy of their members.
The test set is scored once per model, by the pipeline's evaluation node. Results
are *appended* to benchmarks/results/sst2.md as a dated section (earlier sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This copy's own src/ before the editable install, as `kedro run` does: reading a run back (checkpoint, tokenizer)
# must use the code that trained it, also in a clone served by another copy's venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from etth1_univariate import machine  # noqa: E402  (one description of the machine for every benchmark)

import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

PUBLISHED = [  # SST-2 accuracy (%), GLUE dev = our test.tsv
    ("Kim 2014, CNN-rand (random embeddings)", 82.7),
    ("Tai et al. 2015, LSTM", 84.9),
    ("Tai et al. 2015, BiLSTM", 87.5),
]

# name → (what it is, extra --params on top of conf/sst2/parameters_sentiment.yml). conf/sst2 has had subwords on
# since 2026-12-01; the configurations measured before then turn them off, so every name means what it meant.
NO_SUBWORDS = "sentiment.embedding.subwords=null"
CONFIGS = {
    "phrase-dev": ("BiLSTM(128) mean, dropout 0.3/0.3 (run D), dev = random 10 % of the phrases (the old protocol)",
                   ["sentiment.split.holdout=phrases", "sentiment.weight_drop=0.0", NO_SUBWORDS]),
    "sent": ("run D, dev = 689 held-out whole sentences", ["sentiment.weight_drop=0.0", NO_SUBWORDS]),
    "sent-wd": ("run D + weight drop 0.5 on W_hh, sentence dev, selected on dev accuracy (conf/sst2 of 2026-11-30)",
                [NO_SUBWORDS]),
    "sent-wd-loss": ("sent-wd selected on dev loss (training.monitor=val_loss: conf/sst2 before 2026-11-30)",
                     ["sentiment.training.monitor=val_loss", NO_SUBWORDS]),
    "sent-wd-vocab": ("sent-wd with every training word in the vocabulary (13,962 ids instead of 10,000)",
                      ["sentiment.text.max_size=15000", NO_SUBWORDS]),
    "sent-wd-sub": ("sent-wd + fastText-style subwords: word vector + mean of the hashed 3..5-gram vectors (2^16 "
                    "buckets; conf/sst2 as committed)", []),
}
UCI_FILES = ("yelp", "amazon_cells", "imdb")


def kedro_run(env: str, params: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--pipelines=sentiment", f"--env={env}",
         f"--params={','.join(params)}"],
        cwd=REPO, capture_output=True, text=True,
    )
    if done.returncode != 0:
        sys.exit(f"kedro run failed ({params}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def outputs(env: str) -> tuple[dict, pd.DataFrame, dict, str]:
    """The run's test metrics, epoch history, ensemble summary and the metric that selected each member's epoch."""
    import torch

    reporting = REPO / "data" / "08_reporting" / env
    metrics = json.loads((reporting / "sentiment_metrics.json").read_text())
    history = pd.read_csv(reporting / "sentiment_history.csv")
    checkpoint = torch.load(REPO / "data" / "06_models" / env / "sentiment_model.ckpt", weights_only=True)
    monitor = (checkpoint["hyper_parameters"].get("training") or {}).get("monitor", "val_loss")
    return metrics, history, checkpoint.get("ensemble") or {}, monitor


def member_probabilities(env: str, root: Path = REPO) -> tuple[list, "np.ndarray", list]:
    """Each ensemble member's test probabilities (one array per member), the test labels and the members' seeds,
    from the run's checkpoint, corpus and tokenizer under ``root``."""
    import numpy as np
    import torch

    from lstm_lab.data.text import Tokenizer
    from lstm_lab.models.classifier import predict_probabilities
    from lstm_lab.training.sentiment.task import TASK

    torch.set_num_threads(1)
    checkpoint = torch.load(root / "data" / "06_models" / env / "sentiment_model.ckpt", weights_only=True)
    net = TASK.from_checkpoint(checkpoint).net
    members = list(net.members) if hasattr(net, "members") else [net]
    seeds = [m["seed"] for m in (checkpoint.get("ensemble") or {}).get("members", [{"seed": None}])]
    corpus = pd.read_parquet(root / "data" / "02_intermediate" / env / "sentiment_corpus.parquet")
    tok = Tokenizer.load(root / "data" / "06_models" / env / "sentiment_tokenizer.json")
    test = corpus[corpus["split"] == "test"]
    ids, subwords = tok.encode_model_input(test["text"].tolist())
    return [predict_probabilities(member, ids, subwords=subwords) for member in members], np.asarray(test["label"]), \
        seeds


def ensemble_accuracy(probs: list, labels) -> float:
    """Test accuracy (%) of the mean of the members' probabilities, as the pipeline's ensemble answers."""
    return 100 * float(((sum(probs) / len(probs) > 0.5) == labels).mean())


def pair_ensembles(probs: list, labels) -> list[float]:
    """Test accuracy (%) of every 2-member ensemble of a run's members (``member_probabilities``): a spread for
    ensembles at no training cost."""
    from itertools import combinations

    if len(probs) < 3:
        return []
    return [ensemble_accuracy([probs[a], probs[b]], labels) for a, b in combinations(range(len(probs)), 2)]


def combine(roots: list[Path], env: str = "sst2") -> list[str]:
    """Finished ``sst2`` runs of the same recipe with disjoint seeds (one project copy each, e.g. run side by side):
    each run's ensemble, their mean ± sd (seed-averaged ensembles), every k-member ensemble of the pooled members
    (k = members per run) and the ensemble of all of them. Nothing is trained."""
    from itertools import combinations

    runs = [member_probabilities(env, root.resolve()) for root in roots]
    labels = runs[0][1]
    if any(len(r[1]) != len(labels) or (r[1] != labels).any() for r in runs):
        sys.exit("--combine: the runs were not scored on the same test sentences")
    k = len(runs[0][0])
    per_run = [ensemble_accuracy(probs, labels) for probs, _, _ in runs]
    pooled = [p for probs, _, _ in runs for p in probs]
    seeds = [s for _, _, run_seeds in runs for s in run_seeds]
    if len(set(seeds)) != len(seeds):
        sys.exit(f"--combine: the runs share seeds ({seeds}); give each run its own training.seed")
    subsets = [ensemble_accuracy([pooled[i] for i in c], labels) for c in combinations(range(len(pooled)), k)]
    singles = [ensemble_accuracy([p], labels) for p in pooled]
    spread = statistics.stdev(per_run) if len(per_run) > 1 else 0.0
    return [
        f"### Combined: {len(runs)} runs x {k} members (`--combine`, seeds {min(seeds)}-{max(seeds)})", "",
        "| run (project copy) | seeds | ensemble test acc % |", "|---|---|---|",
        *[f"| {root} | {', '.join(map(str, run[2]))} | {acc:.2f} |" for root, run, acc in zip(roots, runs, per_run)],
        "",
        f"- single models ({len(singles)} seeds): test {statistics.mean(singles):.2f} % ± "
        f"{statistics.stdev(singles):.2f} (min-max {min(singles):.2f}-{max(singles):.2f})",
        f"- **ensembles of {k}, disjoint seeds ({len(runs)} runs): test {statistics.mean(per_run):.2f} % ± "
        f"{spread:.2f}** (min-max {min(per_run):.2f}-{max(per_run):.2f})",
        f"- every {k}-member ensemble of the {len(pooled)} members ({len(subsets)} subsets, overlapping): test "
        f"{statistics.mean(subsets):.2f} % ± {statistics.stdev(subsets):.2f} (min-max {min(subsets):.2f}-"
        f"{max(subsets):.2f}); {100 * sum(a >= 85.0 for a in subsets) / len(subsets):.0f} % of them at or above 85 %",
        f"- the ensemble of all {len(pooled)}: test {ensemble_accuracy(pooled, labels):.2f} %",
    ]


def summarise(name: str, what: str, metrics: dict, history: pd.DataFrame, ensemble: dict, monitor: str,
              wall: float) -> dict:
    """Per seed (member): dev accuracy at the epoch it kept (best by ``monitor``, the first of ties, as Lightning's
    ModelCheckpoint keeps it), test accuracy; the ensemble's."""
    seeds = []
    for k, member in enumerate(ensemble.get("members") or [{"seed": None}]):
        rows = history[history["member"] == k] if "member" in history else history
        rows = rows[rows["train_loss"].notna()].reset_index(drop=True)  # trained epochs, in order
        best = int(rows[monitor].idxmax() if monitor == "val_acc" else rows[monitor].idxmin())
        test = metrics["member_accuracy"][str(k)] if "member_accuracy" in metrics else metrics["accuracy"]
        seeds.append({"seed": member["seed"], "dev_acc": 100 * float(rows["val_acc"][best]), "test_acc": 100 * test,
                      "dev_loss": float(rows["val_loss"][best]), "epochs": len(rows), "best_epoch": best + 1})
    test = [s["test_acc"] for s in seeds]
    return {"config": name, "what": what, "seeds": seeds, "wall_s": wall, "monitor": monitor,
            "test_mean": statistics.mean(test), "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "dev_mean": statistics.mean(s["dev_acc"] for s in seeds),
            "ens_test": 100 * metrics["accuracy"], "ens_dev": 100 * ensemble.get("val_acc", float("nan")),
            "ens_auc": metrics["roc_auc"]}


def section(rows: list[dict], args, total: float, load: tuple[float, float]) -> list[str]:
    lines = [
        f"## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {', '.join(r['config'] for r in rows)}: "
        f"{args.seeds} seeds and their ensemble",
        "",
        f"- machine: {machine()}; load average {load[0]:.2f} at the start, {load[1]:.2f} at the end (the 2 cores "
        "are shared with other engineers' jobs, so wall times are upper bounds)",
        "- command: `.venv/bin/python benchmarks/sst2.py" + "".join(f" --only {o}" for o in args.only or [])
        + (f" --seeds {args.seeds}" if args.seeds != 3 else "")
        + "".join(f" --param {p}" for p in args.param) + "` (each configuration: one `kedro run --env=sst2` with "
        f"`sentiment.ensemble={args.seeds}`, `training.num_threads=1`)",
        "- protocol: train on GLUE train phrases, early stopping and checkpoint selection per seed on its dev "
        "metric (`training.monitor`: " + ", ".join(f"{r['config']} {r['monitor']}" for r in rows) + "), "
        "accuracy on `test.tsv` (= GLUE dev, 872 sentences); no pretrained embeddings. `sent*` rows: dev = 689 "
        "held-out sentences (10 % of the 6,885 found), 5,744 phrases found only inside them dropped, 60,916 "
        "training phrases; `phrase-dev`: dev = our dev.tsv (random 10 % of the phrases), 60,614 training phrases",
        f"- total wall time: {total:.0f} s",
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "| config | model | seed | dev acc % | test acc % | epochs (best) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for s in r["seeds"]:
            lines.append(f"| {r['config']} | {r['what']} | {s['seed']} | {s['dev_acc']:.2f} | {s['test_acc']:.2f} | "
                         f"{s['epochs']} ({s['best_epoch']}) |")
    lines += ["", f"| config | dev acc %, mean of seeds | test acc %, mean ± sd | test min–max | "
              f"ensemble of {args.seeds}: dev acc % | ensemble test acc % | ensemble ROC-AUC | "
              "ensembles of 2 (each pair of seeds): test acc % mean (min–max) | wall s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        test, pairs = [s["test_acc"] for s in r["seeds"]], r.get("pairs") or []
        pair_text = f"{statistics.mean(pairs):.2f} ({min(pairs):.2f}–{max(pairs):.2f})" if pairs else "–"
        lines.append(f"| {r['config']} | {r['dev_mean']:.2f} | **{r['test_mean']:.2f} ± {r['test_std']:.2f}** | "
                     f"{min(test):.2f}–{max(test):.2f} | {r['ens_dev']:.2f} | **{r['ens_test']:.2f}** | "
                     f"{r['ens_auc']:.4f} | {pair_text} | {r['wall_s']:.0f} |")
    sentence_rows = [r for r in rows if r["config"] != "phrase-dev"] or rows
    best = max(sentence_rows, key=lambda r: r["dev_mean"])  # selected on dev, never on test
    lines += ["", f"Selected on dev (mean sentence-dev accuracy of the seeds): **{best['config']}**: single models "
              f"{best['test_mean']:.2f} % ± {best['test_std']:.2f} on test ({best['test_mean'] - 85.0:+.2f} from the "
              f"85 % target), ensemble {best['ens_test']:.2f} %. Published: "
              + "; ".join(f"{label} {value}" for label, value in PUBLISHED) + "."]
    return lines


def uci(args, extra: list[str]) -> list[str]:
    """The recipe on the UCI sentences (conf/uci: Yelp + Amazon + IMDb pooled, 80/10/10 seeded split), with the test
    accuracy of every member and of the ensemble per source file."""
    sources = {}
    for name in UCI_FILES:
        for line in (args.uci_data / f"{name}_labelled.txt").read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                sources.setdefault(line.rsplit("\t", 1)[0].strip(), name)
    load = os.getloadavg()[0]
    wall = kedro_run("uci_recipe", [f"uci_dir={args.uci_data.resolve()}", f"sentiment.ensemble={args.seeds}", *extra])
    metrics, history, ensemble, monitor = outputs("uci_recipe")
    r = summarise("uci", f"the sst2 recipe, selected on {monitor}", metrics, history, ensemble, monitor, wall)
    probs, labels, _ = member_probabilities("uci_recipe")  # the members run once on the test sentences
    pairs = pair_ensembles(probs, labels)
    per_source = source_accuracies(probs, labels, sources)
    lines = ["", "### UCI sentences with the same recipe", "",
             "- command: `.venv/bin/python benchmarks/sst2.py --uci` (`kedro run --env=uci_recipe`: the three files "
             "pooled, 2,400/300/300 sentences, dev = a random 10 %; conf/uci_recipe/parameters_sentiment.yml holds the "
             f"recipe of conf/sst2; `sentiment.ensemble={args.seeds}`)",
             f"- machine: {machine()}; load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
             f"- wall time: {wall:.0f} s"] + ([f"- note: {args.note}"] if args.note else []) + ["",
             "| seed | dev acc % | test acc % | epochs (best) |", "|---|---|---|---|"]
    lines += [f"| {s['seed']} | {s['dev_acc']:.2f} | {s['test_acc']:.2f} | {s['epochs']} ({s['best_epoch']}) |"
              for s in r["seeds"]]
    test = [s["test_acc"] for s in r["seeds"]]
    lines += ["", f"Single models: test {r['test_mean']:.2f} % ± {r['test_std']:.2f} (min–max {min(test):.2f}–"
              f"{max(test):.2f}); ensemble of {args.seeds}: test {r['ens_test']:.2f} % (ROC-AUC {r['ens_auc']:.4f})"
              + (f"; ensembles of 2: {statistics.mean(pairs):.2f} % ({min(pairs):.2f}–{max(pairs):.2f})" if pairs
                 else "") + ".", "",
              "| source (test sentences) | single models: test acc %, mean ± sd | min–max | ensemble: test acc % |",
              "|---|---|---|---|"]
    for name, (count, singles, ens) in per_source.items():
        sd = statistics.stdev(singles) if len(singles) > 1 else 0.0
        lines.append(f"| {name} ({count}) | {statistics.mean(singles):.2f} ± {sd:.2f} | {min(singles):.2f}–"
                     f"{max(singles):.2f} | {ens:.2f} |")
    return lines


def source_accuracies(probs: list, labels, sources: dict[str, str]) -> dict[str, tuple[int, list[float], float]]:
    """Per source file of the uci_recipe run's test split: its sentence count, each member's test accuracy (%) and
    the ensemble's, from the members' test probabilities (``member_probabilities``, in the corpus's order; a
    sentence is attributed to the file it was read from)."""
    corpus = pd.read_parquet(REPO / "data" / "02_intermediate" / "uci_recipe" / "sentiment_corpus.parquet")
    names = corpus.loc[corpus["split"] == "test", "text"].map(lambda t: sources.get(str(t).strip(), "?")).to_numpy()
    out = {}
    for name in sorted(set(names)):
        rows = names == name
        singles = [ensemble_accuracy([p[rows]], labels[rows]) for p in probs]
        out[name] = (int(rows.sum()), singles, ensemble_accuracy([p[rows] for p in probs], labels[rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/sst2")
    parser.add_argument("--uci-data", type=Path, default=REPO.parent / "shared/data/uci_sentiment")
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--uci", action="store_true", help="also (or with --only none: only) the UCI sentences")
    parser.add_argument("--seeds", type=int, default=3, help="ensemble members = seeds per configuration")
    parser.add_argument("--param", action="append", default=[], help="extra kedro --params item, key=value")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 2%% of the batches; no results file")
    parser.add_argument("--note", default="", help="a line added to the results section")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="PROJECT",
                        help="only pool the finished sst2 runs of these project copies (disjoint seeds) and append "
                             "their combined ensembles to the results")
    args = parser.parse_args()
    if args.combine:
        lines = combine(args.combine)
        path = RESULTS / "sst2.md"
        path.write_text(path.read_text().rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        if not (args.data / name).is_file():
            sys.exit(f"{args.data / name}: not found; pass --data /path/to/sst2 (train.tsv, dev.tsv, test.tsv)")
    extra = ["sentiment.training.num_threads=1", "sentiment.serving.register=false", *args.param]
    if args.quick:
        extra += ["sentiment.training.max_epochs=1", "sentiment.training.trainer.limit_train_batches=0.02"]

    load_start, rows, total = os.getloadavg()[0], [], time.perf_counter()
    names = [] if args.uci and not args.only else (args.only or list(CONFIGS))
    for name in names:
        what, params = CONFIGS[name]
        wall = kedro_run("sst2", [f"sst2_dir={args.data.resolve()}", f"sentiment.ensemble={args.seeds}",
                                  *params, *extra])
        rows.append(summarise(name, what, *outputs("sst2"), wall))
        r = rows[-1]
        r["pairs"] = pair_ensembles(*member_probabilities("sst2")[:2])
        per_seed = ", ".join(f"{s['test_acc']:.2f}" for s in r["seeds"])
        print(f"{name}: test {r['test_mean']:.2f} ± {r['test_std']:.2f} (seeds {per_seed}), "
              f"dev {r['dev_mean']:.2f}; ensemble test "
              f"{r['ens_test']:.2f}, dev {r['ens_dev']:.2f}; {wall:.0f} s", flush=True)
    uci_lines = uci(args, extra) if args.uci else []
    total = time.perf_counter() - total
    if args.quick:
        print(f"quick check done in {total:.0f} s (no results written)")
        return
    lines = section(rows, args, total, (load_start, os.getloadavg()[0])) if rows else []
    lines += uci_lines
    path = RESULTS / "sst2.md"
    previous = path.read_text() if path.is_file() else "# SST-2 (GLUE), sentence-level binary sentiment\n"
    path.write_text(previous.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
