"""Schema of ``sentiment:`` in conf/base/parameters_sentiment.yml."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lstm_lab.data.corpus import label_key
from lstm_lab.models.spec import ModelSpec
from lstm_lab.schema import StrictModel
from lstm_lab.serving.config import ServingParams as BaseServingParams
from lstm_lab.training.config import TrainingConfig


class DataParams(StrictModel):
    text_column: str = "sentence"
    label_column: str = "label"
    # Raw label (as written in the file) → class: 0 negative, 1 positive. Keys are compared as text, so
    # {0: 0, 1: 1} works for a numeric column and {neg: 0, pos: 1} for named labels.
    labels: dict[str, Literal[0, 1]] = Field(default_factory=lambda: {"0": 0, "1": 1})
    class_names: tuple[str, str] = ("negative", "positive")  # what the served model calls class 0 and 1
    # error: the first bad row (empty text, missing or unknown label) stops the run with its file and line;
    # skip: bad rows are dropped, counted per reason in the log and in MLflow (text_skipped_*).
    on_bad_rows: Literal["error", "skip"] = "error"
    # true: files of the catalog entry sentiment_raw that are missing are fetched from its download sources
    # (checksummed). Off by default: a run never touches the network unless asked to.
    download: bool = False

    @field_validator("labels", mode="before")
    @classmethod
    def _keys_as_text(cls, value):
        if isinstance(value, dict):
            return {label_key(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _both_classes(self) -> DataParams:
        if set(self.labels.values()) != {0, 1}:
            raise ValueError(f"labels must map at least one raw label to 0 and one to 1, got {self.labels}")
        if self.text_column == self.label_column:
            raise ValueError("text_column and label_column must differ")
        return self


class SplitParams(StrictModel):
    """Used only for the splits the catalog does not give as files (seeded, stratified by label)."""

    val_fraction: float = Field(0.1, gt=0, lt=1)  # of the training file, when no val file is given
    test_fraction: float = Field(0.1, gt=0, lt=1)  # of the training file, when no test file is given
    seed: int = 42
    stratify: bool = True
    # phrases: val/test are rows as given (files) or drawn at random from the training rows. sentences: the train
    # and val files are pooled and val (and test, when no test file is given) becomes val_fraction (test_fraction)
    # of the whole *sentences* (phrases no other row contains), leaving out of training the phrases that occur only
    # inside held-out sentences: for phrase-level corpora such as GLUE SST-2 (lstm_lab/data/sst2_split.py).
    holdout: Literal["phrases", "sentences"] = "phrases"


class TextParams(StrictModel):
    """Normalisation, vocabulary and padding: ``lstm_lab.data.text.TextConfig``."""

    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFKC"
    lowercase: bool = True
    punctuation: Literal["split", "strip", "keep"] = "split"
    contractions: bool = True
    max_size: int = Field(10_000, ge=3)  # including PAD (0) and OOV (1)
    min_freq: int = Field(1, ge=1)
    max_length: int = Field(200, ge=1)
    padding: Literal["pre", "post"] = "pre"
    truncating: Literal["pre", "post"] = "pre"


class VectorsParams(StrictModel):
    """Pretrained word vectors (GloVe / word2vec / fastText text format) read from a file the user gives
    (lstm_lab/data/vectors.py); never downloaded."""

    path: str = Field(min_length=1)
    sha256: str | None = None  # checked before reading when set: 64 hex digits (or "sha256:<hex>", "md5:<hex>")
    freeze: bool = False  # true: the embedding keeps its initial values (file rows, random rows for the rest)

    @field_validator("sha256")
    @classmethod
    def _checksum(cls, value):
        if value:
            from lstm_lab.data.download import parse_checksum

            parse_checksum(value)  # a malformed checksum fails with the configuration, not after training
        return value or None


class SubwordParams(StrictModel):
    """fastText-style subword vectors (lstm_lab/data/subwords.py): a token's vector is its word vector (OOV's outside
    the vocabulary) plus the mean (or sum) of the vectors of its character n-grams, hashed into ``buckets``."""

    min_n: int = Field(3, ge=1)  # n-gram lengths, the boundary markers < > included
    max_n: int = Field(5, ge=1)
    buckets: int = Field(65_536, ge=1, le=2**24)  # 2^16 ≈ the 64k distinct 3..5-grams of SST-2's training words
    pooling: Literal["mean", "sum"] = "mean"

    @model_validator(mode="after")
    def _lengths(self) -> SubwordParams:
        if self.max_n < self.min_n:
            raise ValueError(f"max_n must be >= min_n, got min_n={self.min_n}, max_n={self.max_n}")
        return self


class EmbeddingParams(StrictModel):
    dim: int = Field(100, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # element-wise, on the embedded vectors
    word_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # share of training tokens read as OOV
    vectors: VectorsParams | None = None  # null: learnt from scratch
    subwords: SubwordParams | None = None  # null: word vectors only


class EvaluationParams(StrictModel):
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # probability above which a text counts as positive
    batch_size: int = Field(512, ge=1)


class ServingParams(BaseServingParams):
    """The pyfunc model (tokenizer bundled) logged and registered after evaluation (lstm_lab.serving.registry)."""

    name: str = Field("sentiment_model", min_length=1)  # runs:/<run id>/<name>
    registered_model: str = Field("sentiment", min_length=1)
    metric: str = "accuracy"  # a key of sentiment_metrics.json (test split)
    mode: Literal["min", "max"] = "max"

    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "f1", "f1_macro", "roc_auc", "precision", "recall", "log_loss",
                                          "brier")


class SentimentParams(StrictModel):
    data: DataParams = Field(default_factory=DataParams)
    split: SplitParams = Field(default_factory=SplitParams)
    text: TextParams = Field(default_factory=TextParams)
    embedding: EmbeddingParams = Field(default_factory=EmbeddingParams)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(hidden_sizes=[128]))
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    # DropConnect on the recurrent kernels W_hh (AWD-LSTM, Merity et al. 2017): each training forward pass drops
    # this share of their weights (one mask per batch, shared by all time steps), on the native and cell paths.
    weight_drop: float = Field(0.0, ge=0.0, lt=1.0)
    # N > 1: N networks trained with seeds training.seed, seed+1, ..., seed+N-1 (each with its own early stopping),
    # saved as one model that answers the mean of their probabilities (lstm_lab/models/classifier.py).
    ensemble: int = Field(1, ge=1)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)
    serving: ServingParams = Field(default_factory=ServingParams)


