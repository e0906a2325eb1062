"""tinyshakespeare: validation nats/char of the textgen char-LSTM after a fixed training-time budget.

Standard protocol (../shared/data/README.md): the first 90 % of the 1,115,394 characters train (and define
the 65-character vocabulary), the last 10 % (111,540) validate; report validation cross-entropy in nats per
character. References: character 5-gram (add-alpha tuned on val) 1.750; nanoGPT's 6-layer character
transformer 1.4697 (GPU). Target for this CPU LSTM: <= 1.55 within 30 minutes of training.

Trains through the project's own code path (``lstm_lab.training.entry.run_training(TASK, params, data)``: the
same TextgenModule, stateful truncated-BPTT batches and checkpointing as ``kedro run --pipelines=textgen``),
with one addition for a wall-clock budget: a callback that sets the learning rate on a cosine from
``--lr`` to 10 % of it over ``--minutes`` and stops training when the budget is spent (Lightning then runs one
last validation pass and keeps the best checkpoint). The budget counts everything inside ``fit`` (training
steps and validation passes), not the data preparation or the final evaluation.

    .venv/bin/python benchmarks/tinyshakespeare.py --probe              # tokens/s of candidate sizes, ~1 min
    .venv/bin/python benchmarks/tinyshakespeare.py --minutes 3 --out /tmp/check.md   # a quick check
    .venv/bin/python benchmarks/tinyshakespeare.py --minutes 30         # the benchmark (writes results/)

Two validation numbers of the best checkpoint: ``stateful`` = the pipeline's protocol (the validation text as
B streams, state carried: every character but the first of each stream predicted in full context), and
``windows of 256`` = non-overlapping 256-character windows each from a zero state (nanoGPT's evaluation
context: positions early in a window see little context), the more conservative of the two.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py, also when loaded by path
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FIVE_GRAM, NANOGPT, TARGET = 1.750, 1.4697, 1.55



def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def prepare(corpus: Path):
    from lstm_lab.data.chars import CharVocab, split_point

    text = corpus.read_text(encoding="utf-8")
    train_end = split_point(len(text), 0.9)
    vocab = CharVocab.build(text[:train_end])
    return text, vocab.encode(text), train_end, vocab


def config(args):
    """The textgen parameters of this run, typed (validated by the textgen task's schema)."""
    from lstm_lab.training.textgen.task import TASK

    return TASK.validate({
        "window": {"length": args.seq_len},
        "embedding": {"dim": args.embedding, "tie_weights": False},
        "model": {"hidden_sizes": [args.hidden] * args.layers, "dropout": args.dropout, "head_dropout": args.dropout,
                  "impl": "native"},
        "training": {
            "seed": args.seed, "max_epochs": 1000, "batch_size": args.batch_size, "optimizer": "adam",
            "learning_rate": args.lr, "lr_schedule": {"kind": "none"},  # the budget callback sets the rate instead
            "weight_decay": 0.0, "early_stopping_patience": None, "deterministic": True,
            "num_threads": args.threads, "trainer": {"gradient_clip_val": 1.0},
        },
    })


def budget_callback(minutes: float, base_lr: float, final_fraction: float = 0.1):
    import lightning.pytorch as pl

    class Budget(pl.Callback):
        """Cosine learning rate over the wall-clock budget; stop when it is spent. Counts characters."""

        def __init__(self):
            self.budget, self.start, self.chars, self.train_seconds = minutes * 60.0, None, 0, 0.0
            self.epochs: list[dict] = []
            self._step_start = None

        def on_train_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def elapsed(self) -> float:
            return time.perf_counter() - self.start

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            progress = min(1.0, self.elapsed() / self.budget)
            lr = base_lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = lr
            self._step_start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.train_seconds += time.perf_counter() - self._step_start
            self.chars += batch[1].numel()
            if self.elapsed() >= self.budget:
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer, pl_module):
            # Validation of this epoch has run by now (also when the budget cut the epoch short).
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            row = {"epoch": trainer.current_epoch, "minutes": self.elapsed() / 60, "chars_seen": self.chars,
                   "val_loss": metrics.get("val_loss", float("nan")),
                   "train_loss": metrics.get("train_loss", float("nan"))}
            self.epochs.append(row)
            print(f"  epoch {row['epoch']}: {row['minutes']:.1f} min, train {row['train_loss']:.4f}, "
                  f"val {row['val_loss']:.4f} nats/char, {self.chars / max(self.train_seconds, 1e-9):,.0f} chars/s",
                  flush=True)

    return Budget()


def window_nats(net, ids, window: int = 256, batch: int = 64) -> float:
    """Mean cross-entropy over non-overlapping windows, each read from a zero state."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    n = (len(ids) - 1) // window
    x_all = torch.as_tensor(np.asarray(ids[: n * window], dtype=np.int64)).view(n, window)
    y_all = torch.as_tensor(np.asarray(ids[1 : n * window + 1], dtype=np.int64)).view(n, window)
    total = 0.0
    net.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            logits, _ = net(x_all[i : i + batch])
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y_all[i : i + batch].reshape(-1),
                                           reduction="sum"))
    return total / (n * window)


def probe(args, ids, train_end, vocab) -> None:
    """Training tokens/s of a few sizes (forward + backward + Adam step, the real module), to size the run."""
    import numpy as np
    import torch

    from lstm_lab.training.textgen.task import TASK

    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}, load average {load_average()}")
    for hidden, layers, batch, seq in [(256, 2, 32, 128), (256, 2, 64, 128), (384, 2, 32, 128), (512, 2, 32, 128),
                                       (256, 3, 32, 128)]:
        sizes = {"hidden": hidden, "layers": layers, "batch_size": batch, "seq_len": seq}
        a = argparse.Namespace(**{**vars(args), **sizes})
        module, dm = TASK.build(config(a), {"ids": ids, "train_end": train_end, "vocab": vocab.to_dict()})
        net = module.net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loader = iter(dm.dataset("train"))
        times, state = [], None
        for step in range(args.probe_steps + 2):
            x, y = next(loader)
            start = time.perf_counter()
            logits, state = net(x, state)
            state = [(h.detach(), c.detach()) for h, c in state]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= 2:
                times.append(time.perf_counter() - start)
        per_step = float(np.median(times))
        params = sum(p.numel() for p in net.parameters())
        tok_s = batch * seq / per_step
        print(f"{layers}x{hidden} B={batch} T={seq}: {params / 1e6:.2f}M params, {per_step * 1e3:.0f} ms/step, "
              f"{tok_s:,.0f} chars/s -> {tok_s * 1800 / train_end:.1f} epochs in 30 min", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/data/tinyshakespeare/input.txt")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine 2 threads ran 6-22x slower, "
                        "each time step's parallel region waiting for a descheduled thread)")
    parser.add_argument("--probe", action="store_true", help="only measure training tokens/s of a few sizes")
    parser.add_argument("--probe-steps", type=int, default=5)
    parser.add_argument("--note", default="", help="extra line for the report (e.g. what else ran meanwhile)")
    parser.add_argument("--out", type=Path, default=RESULTS / "tinyshakespeare.md")
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus}: tinyshakespeare input.txt not found; pass --corpus /path/to/input.txt")

    text, ids, train_end, vocab = prepare(args.corpus)
    if args.probe:
        probe(args, ids, train_end, vocab)
        return

    import torch

    from lstm_lab.models.generate import generate_text
    from lstm_lab.training.entry import run_training
    from lstm_lab.training.textgen.module import evaluate_nats
    from lstm_lab.training.textgen.task import TASK

    load_before = load_average()
    cfg = config(args)
    budget = budget_callback(args.minutes, args.lr)
    print(f"training {args.layers}x{args.hidden} for {args.minutes} min on {train_end:,} characters "
          f"({args.threads} threads, load {load_before})", flush=True)
    wall_start = time.perf_counter()
    result = run_training(TASK, cfg, {"ids": ids, "train_end": train_end, "vocab": vocab.to_dict()},
                          callbacks=[budget])
    fit_seconds = time.perf_counter() - wall_start
    load_after = load_average()

    net = TASK.from_checkpoint(result.checkpoint).net
    torch.set_num_threads(args.threads)
    val = ids[train_end:]
    t0 = time.perf_counter()
    stateful, scored = evaluate_nats(net, val, args.batch_size, args.seq_len)
    windowed = window_nats(net, val, 256)
    eval_seconds = time.perf_counter() - t0
    sample = generate_text(net, vocab, "ROMEO:", 300, temperature=0.8, seed=1)
    chars_per_s = budget.chars / max(budget.train_seconds, 1e-9)
    params = sum(p.numel() for p in net.parameters())
    best = min(budget.epochs, key=lambda r: r["val_loss"]) if budget.epochs else None

    verdict = (f"met: {stateful:.4f} <= {TARGET}" if stateful <= TARGET
               else f"missed by {stateful - TARGET:.4f} nats/char ({stateful:.4f} > {TARGET})")
    command = shlex.join(["python", "benchmarks/tinyshakespeare.py", *sys.argv[1:]])
    lines = [
        "# tinyshakespeare: character LSTM, validation nats/char after a training-time budget",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, nproc {os.cpu_count()}, torch {torch.__version__} ({args.threads} threads), "
        "CPU only",
        f"- load average (1/5/15 min) before / after: {load_before} | {load_after}"
        + ("; the 2 cores were shared with other jobs" if os.cpu_count() and os.cpu_count() <= 2 else ""),
        *( [f"- note: {args.note}"] if args.note else []),
        f"- command: `{command}`",
        f"- data: 90/10 character split, {train_end:,} train / {len(val):,} validation characters, "
        f"{len(vocab.chars)} characters + UNK",
        f"- model: embedding {args.embedding} → LSTM {args.layers}x{args.hidden} (native) → softmax; "
        f"{params / 1e6:.2f}M parameters; dropout {args.dropout}",
        f"- training: stateful truncated BPTT, {args.batch_size} streams x {args.seq_len} characters, Adam "
        f"lr {args.lr} cosine to 10 % over the budget, clip 1.0, seed {args.seed}",
        f"- budget {args.minutes} min; fit wall time {fit_seconds / 60:.1f} min (incl. validation passes); "
        f"{budget.chars:,} training characters = {budget.chars / train_end:.2f} epochs; "
        f"**{chars_per_s:,.0f} characters/s** in training steps",
        f"- evaluation of the best checkpoint: {eval_seconds:.0f} s",
        "",
        "| model | val nats/char | val bits/char |",
        "|---|---:|---:|",
        f"| **this LSTM, stateful (pipeline protocol, {scored:,} chars)** | **{stateful:.4f}** | "
        f"{stateful / math.log(2):.4f} |",
        f"| this LSTM, fresh state per 256-char window | {windowed:.4f} | {windowed / math.log(2):.4f} |",
        f"| character 5-gram (add-alpha tuned on val) | {FIVE_GRAM:.4f} | {FIVE_GRAM / math.log(2):.4f} |",
        f"| nanoGPT 6-layer char transformer (GPU) | {NANOGPT:.4f} | {NANOGPT / math.log(2):.4f} |",
        "",
        f"Target ≤ {TARGET} nats/char within {args.minutes:g} minutes on this CPU: **{verdict}**.",
        "",
        "Validation after each epoch (the last row is the partial epoch the budget cut; Lightning validates it):",
        "",
        "| epoch | minutes | training chars seen | train loss | val nats/char |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {r['epoch']} | {r['minutes']:.1f} | {r['chars_seen']:,} | {r['train_loss']:.4f} | {r['val_loss']:.4f} |"
          for r in budget.epochs],
        "",
        f"Best epoch: {best['epoch'] if best else 'n/a'}. Sample (prompt `ROMEO:`, temperature 0.8, seed 1):",
        "",
        "````text",
        "ROMEO:" + sample,
        "````",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    (args.out.with_suffix(".json")).write_text(json.dumps({
        "val_nats_stateful": stateful, "val_nats_windows256": windowed, "fit_seconds": fit_seconds,
        "chars_per_second": chars_per_s, "epochs": budget.chars / train_end, "history": budget.epochs,
        "config": cfg.model_dump(mode="json"),
    }, indent=2) + "\n")
    print("\n".join(lines[:22]))


if __name__ == "__main__":
    main()
