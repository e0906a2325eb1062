"""Binary text classifier: Embedding → LSTMEncoder (the shared model spec) → dense head → one logit.

    net = SentimentClassifier(vocab_size=10_000, embedding_dim=100, spec=ModelSpec(hidden_sizes=[128]))
    logits = net(ids)                      # ids (B, T) int, PAD = 0 anywhere before or after the tokens
    probs = net.predict_proba(ids)         # sigmoid of the logits, (B,)

Regularisation of the input: ``embedding_dropout`` (element-wise dropout on the embedded vectors) and
``word_dropout`` (a share of the tokens replaced by OOV while training); of the recurrence: ``weight_drop``
(DropConnect on the recurrent kernels, see ``SentimentClassifier.forward``).

Subwords (``subwords={"buckets": N, "pooling": "mean"}``; fastText, Bojanowski et al. 2017): a token's vector is
its word vector (OOV's for a word outside the vocabulary) plus the mean (or sum) of its hashed character n-grams'
vectors, so an unseen word ("unfunny") still gets a vector from the pieces it shares with known words. The
network then reads *type* ids and the types' table from ``Tokenizer.encode_types`` (row k: word id, then n-gram
ids + 1, 0 = none) instead of word ids: ``net(ids, lengths, subwords=table)``. The n-gram vectors are computed
once per distinct type in the batch, not per token.

Ensembles: ``SentimentEnsemble([net, ...])`` holds N trained classifiers and answers the mean of their
probabilities, with the same ``forward`` / ``predict_proba`` / ``config()`` as one classifier, so evaluation and
serving treat it as one model. ``classifier_from_config(net.config())`` rebuilds either.

The seeds' Keras model ``Embedding(10000, 100, input_length=200) → LSTM(128) → Dense(1, sigmoid)`` is the default
spec; bidirectional, stacked, attention pooling, recurrent dropout and the Greff variants come from ``ModelSpec``
as in every other pipeline.

Padding never changes the output. Id 0 is padding (``padding_idx=0``, its embedding stays zero), and a
sequence's true length is the number of non-PAD ids. Each row is first left-aligned (pre-padded input is turned
into post-padded input, keeping token order), the batch is cut to its longest sequence, and the encoder gets the
lengths, so the LSTM state stops at each sequence's last token (packed sequences / length masking in
``LSTMEncoder``) and mean or attention pooling ignore the padded steps. The same sentence therefore gives the
same probability padded to 20 or to 200, before or after, alone or in a batch with longer sentences. An empty
row (no token at all) is read as one PAD step, so it still gets a defined output.

Pure torch (no Lightning): the pyfunc serving model rebuilds it from ``config()`` and a state dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from lstm_lab.models.encoder import LSTMEncoder, dense_head
from lstm_lab.models.spec import ModelSpec

PAD, OOV = 0, 1


def left_align(ids: torch.Tensor, pad: int = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids padded anywhere → tokens moved to the front (order kept), and lengths (B,) ≥ 1."""
    valid = ids != pad
    lengths = valid.sum(dim=1)
    # A stable sort on "is padding" keeps the tokens' order and puts them first.
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
    return ids.gather(1, order), lengths.clamp_min(1)


class SentimentClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 100,
        spec: ModelSpec | dict[str, Any] | None = None,
        embedding_dropout: float = 0.0,
        word_dropout: float = 0.0,
        weight_drop: float = 0.0,
        subwords: dict[str, Any] | None = None,
    ):
        super().__init__()
        spec = ModelSpec.model_validate(spec or {}) if not isinstance(spec, ModelSpec) else spec
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (PAD and OOV), got {vocab_size}")
        self.vocab_size, self.embedding_dim, self.spec = vocab_size, embedding_dim, spec
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must lie in [0, 1), got {word_dropout}")
        if not 0.0 <= weight_drop < 1.0:
            raise ValueError(f"weight_drop must lie in [0, 1), got {weight_drop}")
        self.embedding_dropout_p, self.word_dropout, self.weight_drop = embedding_dropout, word_dropout, weight_drop
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.subwords = dict(subwords) if subwords else None
        self.ngrams = None
        if self.subwords is not None:
            unknown = sorted(set(self.subwords) - {"buckets", "pooling"})
            if unknown or int(self.subwords.get("buckets", 0)) < 1 or \
                    self.subwords.setdefault("pooling", "mean") not in ("mean", "sum"):
                raise ValueError(f"subwords must be {{buckets: >= 1, pooling: mean | sum}}, got {subwords}")
            # Bucket b is row b + 1: row 0 is "no n-gram", left out of the mean and never updated (padding_idx).
            self.ngrams = nn.EmbeddingBag(int(self.subwords["buckets"]) + 1, embedding_dim,
                                          mode=self.subwords["pooling"], padding_idx=0)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = LSTMEncoder(embedding_dim, spec)
        self.head = dense_head(spec.output_size, spec.head_hidden_sizes, 1, spec.head_dropout)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON-safe values: ``SentimentClassifier(**net.config())``."""
        return {
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "spec": self.spec.model_dump(mode="json"),
            "embedding_dropout": self.embedding_dropout_p,
            "word_dropout": self.word_dropout,
            "weight_drop": self.weight_drop,
            "subwords": self.subwords,
        }

    def embed(self, ids: torch.Tensor, subwords: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) → (B, T, E), before dropout: word ids, or with subwords type ids into ``subwords``
        (K, 1 + G)."""
        if self.ngrams is None:
            words, grams = ids, None
        else:
            if subwords is None:
                raise ValueError("this classifier reads subwords: pass the types' table of Tokenizer.encode_types "
                                 "(Tokenizer.encode_model_input gives ids and table)")
            types, inverse = torch.unique(ids, return_inverse=True)  # (U,), (B, T): each distinct type once
            rows = torch.as_tensor(subwords, device=ids.device).index_select(0, types).long()  # (U, 1 + G)
            words = rows[:, 0][inverse]  # (B, T) word ids (OOV for a word outside the vocabulary)
            grams = self.ngrams(rows[:, 1:])[inverse]  # (U, E) → (B, T, E); zero for PAD and <oov> (no n-grams)
        if self.training and self.word_dropout:
            # Word dropout (Iyyer et al. 2015; Bowman et al. 2016): a random share of the tokens is read as OOV,
            # so the model leans on no single word and the OOV embedding learns what an unseen word is worth.
            # With subwords only the word vector is dropped: the token then looks exactly like an unseen word.
            dropped = (torch.rand(words.shape, device=words.device) < self.word_dropout) & (words > OOV)
            words = words.masked_fill(dropped, OOV)
        x = self.embedding(words)  # (B, T, E)
        return x if grams is None else x + grams

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None,
                subwords: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) → logits (B,). ``lengths`` may be given for post-padded input (saves the re-alignment);
        ``subwords``: the types' table (K, 1 + G) when the classifier has subwords (``ids`` are then type ids)."""
        ids = ids.long()
        if lengths is None:
            ids, lengths = left_align(ids)
        else:
            lengths = torch.as_tensor(lengths, device=ids.device).long().clamp_min(1)
        ids = ids[:, : int(lengths.max())]  # nothing past the longest sequence is read
        x = self.embedding_dropout(self.embed(ids, subwords))  # (B, T, E)
        if self.training and self.weight_drop:
            # Weight drop (DropConnect on W_hh; Wan et al. 2013, AWD-LSTM, Merity et al. 2017): the recurrent
            # kernels are dropped once per batch and the whole sequence runs with the dropped copies, so the
            # regularisation reaches the recurrence while torch.nn.LSTM's fused kernel still does the work (the
            # cell path's recurrent_dropout masks h_{t-1} instead and runs step by step). functional_call swaps
            # the tensors for this call only; the parameters and the state dict keep their names and values.
            dropped = {name: nn.functional.dropout(param, self.weight_drop, training=True)
                       for name, param in self.encoder.named_parameters()
                       if name.rsplit(".", 1)[-1].startswith("weight_hh")}
            _, pooled = torch.func.functional_call(self.encoder, dropped, (x, lengths))
        else:
            _, pooled = self.encoder(x, lengths)
        return self.head(pooled).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, ids: torch.Tensor, lengths: torch.Tensor | None = None,
                      subwords: torch.Tensor | None = None) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(ids, lengths, subwords))
        finally:
            self.train(was_training)

    def regularization(self) -> torch.Tensor:
        return self.encoder.regularization()


class SentimentEnsemble(nn.Module):
    """N classifiers as one: the output is the mean of their probabilities.

    ``forward`` returns the logit of that mean, logit(p̄) = log p̄ - log(1 - p̄), computed from log-sigmoids with
    logsumexp so a confident ensemble stays finite; ``sigmoid(forward(x))`` is then the mean probability."""

    def __init__(self, members: list[SentimentClassifier]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def config(self) -> dict[str, Any]:
        return {"ensemble": [m.config() for m in self.members]}

    def member_logits(self, ids: torch.Tensor, lengths: torch.Tensor | None = None,
                      subwords: torch.Tensor | None = None) -> torch.Tensor:
        """(N members, B) logits."""
        return torch.stack([m(ids, lengths, subwords) for m in self.members])

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None,
                subwords: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.member_logits(ids, lengths, subwords)
        log_n = math.log(len(self.members))
        log_p = torch.logsumexp(nn.functional.logsigmoid(logits), dim=0) - log_n
        log_q = torch.logsumexp(nn.functional.logsigmoid(-logits), dim=0) - log_n
        return log_p - log_q

    predict_proba = SentimentClassifier.predict_proba

    def regularization(self) -> torch.Tensor:
        return sum((m.regularization() for m in self.members), start=torch.zeros(()))


def classifier_from_config(config: dict[str, Any]) -> SentimentClassifier | SentimentEnsemble:
    """The (untrained) network ``net.config()`` describes: one classifier or an ensemble of them."""
    if "ensemble" in config:
        return SentimentEnsemble([SentimentClassifier(**member) for member in config["ensemble"]])
    return SentimentClassifier(**config)


def predict_probabilities(net: SentimentClassifier | SentimentEnsemble, ids: np.ndarray,
                          batch_size: int = 512, subwords: np.ndarray | None = None) -> np.ndarray:
    """P(class 1) for padded ids (N, T) (PAD anywhere), in length-sorted batches, returned in input order.
    ``subwords``: the types' table (K, 1 + G) that came with type ids (``Tokenizer.encode_model_input``)."""
    table = None if subwords is None else torch.from_numpy(np.asarray(subwords))
    aligned, lengths = (t.numpy() for t in left_align(torch.from_numpy(np.asarray(ids))))
    order = np.argsort(lengths, kind="stable")
    out = np.empty(len(order), dtype=np.float64)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                x = torch.from_numpy(aligned[rows, : int(lengths[rows].max())].astype(np.int64))
                out[rows] = torch.sigmoid(net(x, torch.from_numpy(lengths[rows]), table)).double().numpy()
    finally:
        net.train(was_training)
    return out
