"""Schema of ``textgen:`` in conf/base/parameters_textgen.yml."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from lstm_lab.models.spec import ModelSpec
from lstm_lab.schema import StrictModel
from lstm_lab.serving.config import ServingParams as BaseServingParams
from lstm_lab.training.config import TrainingConfig

# Karpathy's char-rnn corpus, byte-for-byte (1,115,394 characters); fetched only with data.download: true.
TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


class DataParams(StrictModel):
    # The corpus path is the catalog entry textgen_corpus (default data/01_raw/tinyshakespeare/input.txt).
    download: bool = False  # fetch `url` there when the file is absent (checked against sha256)
    url: str = TINYSHAKESPEARE_URL
    sha256: str = Field(TINYSHAKESPEARE_SHA256, pattern=r"^[0-9a-fA-F]{64}$")
    encoding: str = "utf-8"
    max_chars: int | None = Field(None, ge=2)  # use only the first N characters (quick runs); None = all


class SplitParams(StrictModel):
    train_fraction: float = Field(0.9, gt=0.0, lt=1.0)  # first 90 % of the characters train, the rest validate


class WindowParams(StrictModel):
    # Truncated BPTT: each batch row is a stream read in chunks of `length` characters, the LSTM state carried
    # from chunk to chunk (lstm_lab/training/textgen/module.py). One training window = length + 1 characters.
    length: int = Field(128, ge=1)


class EmbeddingParams(StrictModel):
    dim: int = Field(64, ge=1)
    tie_weights: bool = False  # output layer = embedding matrix (a projection first when widths differ)


class SamplingParams(StrictModel):
    """Samples written after training (data/08_reporting/textgen_samples.md, logged to MLflow)."""

    prompts: list[str] = Field(default_factory=lambda: ["\n"], min_length=1)
    length: int = Field(300, ge=0)  # new characters per sample
    temperatures: list[float] = Field(default_factory=lambda: [0.8])  # one sampled text per temperature
    top_k: int | None = Field(None, ge=1)  # None = the whole vocabulary
    seed: int = 1

    @model_validator(mode="after")
    def _valid(self) -> SamplingParams:
        for prompt in self.prompts:
            if not prompt:
                raise ValueError("prompts must not be empty: give at least one character (e.g. a newline)")
        for t in self.temperatures:
            if not t > 0:
                raise ValueError(f"temperatures must be > 0 (greedy is always included), got {t}")
        return self


class ServingParams(BaseServingParams):
    """The pyfunc model logged and registered after evaluation (lstm_lab.serving.registry)."""

    name: str = Field("textgen_model", min_length=1)
    registered_model: str = Field("textgen", min_length=1)
    metric: str = "val_loss_nats"  # a key of textgen_metrics.json
    mode: Literal["min", "max"] = "min"

    metrics: ClassVar[tuple[str, ...]] = ("val_loss_nats", "val_bits_per_char")


class TextgenParams(StrictModel):
    data: DataParams = Field(default_factory=DataParams)
    split: SplitParams = Field(default_factory=SplitParams)
    window: WindowParams = Field(default_factory=WindowParams)
    embedding: EmbeddingParams = Field(default_factory=EmbeddingParams)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    serving: ServingParams = Field(default_factory=ServingParams)

    @model_validator(mode="after")
    def _language_model(self) -> TextgenParams:
        m = self.model
        if m.bidirectional:
            raise ValueError("model.bidirectional: a language model reads left to right; set it to false")
        if m.pooling != "last" or m.head_hidden_sizes:
            raise ValueError("model.pooling / model.head_hidden_sizes: not used by the character model "
                             "(it predicts at every step); leave pooling: last and head_hidden_sizes: []")
        return self


