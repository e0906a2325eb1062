"""The shared optimiser factory: names from config, fused Adam only where asked for and available."""

from __future__ import annotations

import pytest
import torch

from lstm_lab.training.config import TrainingConfig
from lstm_lab.training.optim import build_optimizer


def _step(optimizer_name: str, fused: bool) -> tuple[torch.optim.Optimizer, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    cfg = TrainingConfig.model_validate({"optimizer": optimizer_name, "learning_rate": 0.01, "weight_decay": 0.1})
    opt = build_optimizer(layer.parameters(), cfg, fused=fused)
    layer(torch.randn(7, 5)).pow(2).sum().backward()
    opt.step()
    return opt, layer.weight.detach().clone()


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_adam_is_used_when_asked_and_takes_the_same_step(name):
    fused, fused_weight = _step(name, fused=True)
    plain, plain_weight = _step(name, fused=False)
    assert fused.defaults["fused"] is True and not plain.defaults.get("fused")
    assert fused.defaults["weight_decay"] == 0.1 and fused.defaults["lr"] == 0.01
    torch.testing.assert_close(fused_weight, plain_weight, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, cls", [("rmsprop", torch.optim.RMSprop), ("sgd", torch.optim.SGD)])
def test_fused_is_ignored_by_optimisers_without_a_fused_step(name, cls):
    opt, _ = _step(name, fused=True)
    assert type(opt) is cls and not opt.defaults.get("fused")
