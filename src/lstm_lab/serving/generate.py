"""``lstm-lab-generate``: text from a saved textgen model, without retraining and without Kedro.

    lstm-lab-generate --model data/06_models/textgen_model.ckpt --prompt "ROMEO:" --length 300 \
        --temperature 0.8 --top-k 20 --seed 1
    lstm-lab-generate --model data/06_models/textgen_model.ckpt --prompt "JULIET:" --greedy

The checkpoint holds the vocabulary it was trained with; ``--vocab textgen_vocab.json`` is optional and, when
given, must be that same vocabulary. Prints the prompt followed by the generated characters. The LSTM state is
carried from character to character (O(1) work each). Bad input (a missing file, a prompt character never
seen in training, temperature <= 0, top-k < 1) prints one ``Error: ...`` line and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lstm_lab.errors import LstmLabError, one_line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lstm-lab-generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", required=True, type=Path,
                        help="textgen checkpoint (data/06_models/textgen_model.ckpt)")
    parser.add_argument("--vocab", type=Path, help="vocabulary JSON to check against the checkpoint's (optional)")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline); every character "
                        "must occur in the training text")
    parser.add_argument("--length", type=int, default=300, help="characters to generate (default 300)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature, > 0 (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely characters (>= 1)")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely character (argmax)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed: same seed, same text (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one step is tiny)")
    return parser.parse_args(argv)


def load_checkpoint(path: Path) -> dict[str, Any]:
    from lstm_lab.checkpoints import load_checkpoint_file

    if not path.is_file():
        raise LstmLabError(f"{path}: model checkpoint not found (kedro run --pipelines=textgen writes "
                           "data/06_models/textgen_model.ckpt)")
    checkpoint = load_checkpoint_file(path)  # weights_only: nothing in the file gets executed
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hp, dict) or not {"vocab_size", "model", "vocab"} <= set(hp) or "state_dict" not in checkpoint:
        raise LstmLabError(f"{path}: not a textgen model checkpoint (no vocabulary / model hyper-parameters)")
    return checkpoint


def load_model(model_path: Path, vocab_path: Path | None = None):
    """(CharLM in eval mode, CharVocab) from a checkpoint, checked against ``vocab_path`` when given."""
    from lstm_lab.data.chars import CharVocab
    from lstm_lab.training.textgen.task import TASK

    model = TASK.from_checkpoint(load_checkpoint(model_path))
    vocab = TASK.vocabulary(model, source=str(model_path))
    if vocab_path is not None:
        given = CharVocab.load(vocab_path)
        if given != vocab:
            raise LstmLabError(f"{vocab_path}: not the vocabulary {model_path} was trained with "
                               f"({given.size} vs {vocab.size} symbols); pass the matching file or leave out --vocab")
    return model.net, vocab


def generate(args: argparse.Namespace) -> str:
    import torch

    from lstm_lab.models.generate import check_sampling, generate_text

    if args.length < 0:
        raise LstmLabError(f"--length must be >= 0, got {args.length}")
    if args.threads < 1:
        raise LstmLabError(f"--threads must be >= 1, got {args.threads}")
    check_sampling(args.temperature, args.top_k)  # before the (slower) model load
    torch.set_num_threads(args.threads)
    model, vocab = load_model(args.model, args.vocab)
    text = generate_text(model, vocab, args.prompt, args.length, greedy=args.greedy, temperature=args.temperature,
                         top_k=args.top_k, seed=args.seed)
    return args.prompt + text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = generate(args)
    except LstmLabError as exc:
        print(f"Error: {one_line(exc)}", file=sys.stderr)
        return 1
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
