"""The one model spec every pipeline uses, validated before anything is built.

It lives in each pipeline's parameters under ``model:`` (see conf/base/parameters_*.yml) and describes the
recurrent encoder and what sits on top of it. Pure pydantic — nothing here imports torch — so Kedro hooks and
Ray search spaces can validate a spec cheaply.

    model:
      hidden_sizes: [64, 32, 16]   # one stacked LSTM block per entry; sizes may differ
      bidirectional: true
      merge: concat                # how the two directions combine: concat | sum
      variant: NP                  # Greff et al. 2015 variants; NP is torch.nn.LSTM
      impl: auto                   # auto | native | cell
      pooling: attention           # last | mean | max | attention
      attention: additive          # dot | additive
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lstm_lab.schema import StrictModel

Variant = Literal["vanilla", "NP", "CIFG", "NFG", "NIG", "NOG", "NIAF", "NOAF", "FGR"]


class ModelSpec(StrictModel):
    hidden_sizes: list[int] = Field(default_factory=lambda: [50], min_length=1)
    bidirectional: bool = False
    merge: Literal["concat", "sum"] = "concat"
    variant: Variant = "NP"
    impl: Literal["auto", "native", "cell"] = "auto"
    forget_bias: float = 1.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between stacked layers
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # one mask per sequence on h_{t-1}
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # one mask per sequence on x_t
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    attention: Literal["dot", "additive"] = "dot"
    head_hidden_sizes: list[int] = Field(default_factory=list)  # dense layers between pooling and output
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    l2_input: float = Field(0.0, ge=0.0)  # L2 on input kernels (Keras kernel_regularizer)
    l2_recurrent: float = Field(0.0, ge=0.0)  # L2 on recurrent kernels (Keras recurrent_regularizer)

    @model_validator(mode="after")
    def _positive_sizes(self) -> ModelSpec:
        for size in [*self.hidden_sizes, *self.head_hidden_sizes]:
            if size < 1:
                raise ValueError(f"layer sizes must be >= 1, got {size}")
        return self

    @property
    def output_size(self) -> int:
        """Width of each time step's encoder output."""
        last = self.hidden_sizes[-1]
        return 2 * last if self.bidirectional and self.merge == "concat" else last
