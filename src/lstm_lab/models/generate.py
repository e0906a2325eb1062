"""Sampling text from a ``CharLM`` while carrying the LSTM state: O(1) work per new character.

The seeds re-ran the whole window through the network for every character they produced (O(window) per
character, and the context was cut at the window). Here the prompt runs through the model once, and every
further step feeds only the character just chosen together with the state the previous step returned:

    logits, state = model(prompt_ids)               # (1, P, V): one pass over the prompt
    repeat length times:
        next = pick(logits[:, -1])                  # greedy | temperature | top-k, seeded generator
        logits, state = model(next, state)          # (1, 1, V): one step

Choices: ``greedy`` = argmax (the seeds' behaviour; deterministic); otherwise sample from
softmax(logits / temperature), optionally restricted to the ``top_k`` most likely ids. A ``torch.Generator``
seeded by the caller makes sampling reproducible. Ids in ``banned_ids`` (UNK) are never produced.
Empty prompt policy: an error — the model needs at least one character to start from (a newline is a
natural start for a play).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import torch

from lstm_lab.errors import LstmLabError


def check_sampling(temperature: float, top_k: int | None) -> None:
    if not temperature > 0:  # also rejects NaN
        raise LstmLabError(f"temperature must be > 0, got {temperature} (use greedy decoding for argmax)")
    if top_k is not None and top_k < 1:
        raise LstmLabError(f"top_k must be >= 1 (or unset for no limit), got {top_k}")


def pick_next(
    logits: torch.Tensor,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    banned_ids: Sequence[int] = (),
) -> torch.Tensor:
    """logits (B, V) → next ids (B,)."""
    check_sampling(temperature, top_k)
    logits = logits.float()
    if banned_ids:
        logits = logits.clone()
        logits[:, list(banned_ids)] = float("-inf")
    if greedy:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    length: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    banned_ids: Sequence[int] = (),
) -> list[int]:
    """``length`` new ids continuing ``prompt_ids``; ``model(ids (B, T), state) -> (logits (B, T, V), state)``.

    ``seed`` (or an explicit ``generator``) fixes the sampling: the same call gives the same ids.
    """
    if len(prompt_ids) == 0:
        raise LstmLabError("the prompt is empty: give at least one character to start from (e.g. a newline)")
    if length < 0:
        raise LstmLabError(f"length must be >= 0, got {length}")
    check_sampling(temperature, top_k)
    if generator is None:
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else int(seed))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        ids = torch.as_tensor(list(prompt_ids), dtype=torch.long, device=device)[None, :]  # (1, P)
        logits, state = model(ids)  # (1, P, V): the whole prompt at once
        out: list[int] = []
        for _ in range(length):
            nxt = pick_next(logits[:, -1], greedy=greedy, temperature=temperature, top_k=top_k,
                            generator=generator, banned_ids=banned_ids)  # (1,)
            out.append(int(nxt))
            logits, state = model(nxt[:, None], state)  # (1, 1, V): one step, state carried
    finally:
        model.train(was_training)
    return out


class Vocabulary(Protocol):
    unk_id: int

    def encode(self, text: str, *, unknown: str = ..., what: str = ...): ...

    def decode(self, ids: Iterable[int]) -> str: ...


def generate_text(
    model: torch.nn.Module,
    vocab: Vocabulary,
    prompt: str,
    length: int,
    **sampling,
) -> str:
    """The continuation (without the prompt) of ``prompt``: prompt characters outside ``vocab`` are an error,
    and UNK is never produced. ``sampling``: ``greedy``, ``temperature``, ``top_k``, ``seed``/``generator``."""
    if not prompt:
        raise LstmLabError("the prompt is empty: give at least one character to start from (e.g. a newline)")
    ids = vocab.encode(prompt, unknown="error", what="the prompt")
    new = generate_ids(model, ids.tolist(), length, banned_ids=(vocab.unk_id,), **sampling)
    return vocab.decode(new)
