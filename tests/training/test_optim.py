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


# ------------------------------------------------------------------------------------------- lr schedules
def test_cosine_schedule_warms_up_then_decays_to_the_final_fraction():
    from lstm_lab.training.optim import lr_lambda

    f = lr_lambda("cosine", total_steps=110, warmup_steps=10, final_fraction=0.1)
    assert [f(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert f(500) == pytest.approx(0.1)  # past the end: stays at the floor
    constant = lr_lambda("none", total_steps=100, warmup_steps=4)
    assert [constant(s) for s in (0, 3, 50)] == pytest.approx([0.25, 1.0, 1.0])


def test_plateau_schedule_needs_no_warmup():
    with pytest.raises(ValueError, match="warmup_steps works with kind none or cosine"):
        TrainingConfig.model_validate({"lr_schedule": {"kind": "plateau", "warmup_steps": 5}})
    with pytest.raises(ValueError, match="factor"):
        TrainingConfig.model_validate({"lr_schedule": {"kind": "plateau", "factor": 1.5}})


def _fit_with(schedule: dict, epochs: int) -> list[dict]:
    """A real Lightning fit of a model whose val_loss never improves; the epoch rows EpochHistory records."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from lstm_lab.training.callbacks import EpochHistory
    from lstm_lab.training.optim import configure_optimizers

    cfg = TrainingConfig.model_validate({"learning_rate": 0.1, "optimizer": "sgd", "lr_schedule": schedule})

    class Flat(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", torch.tensor(1.0))  # a plateau from the first epoch

        def configure_optimizers(self):
            return configure_optimizers(self, cfg)

    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    history = EpochHistory()
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[history], accelerator="cpu")
    trainer.fit(Flat(), data, data)
    return history.rows


def test_plateau_schedule_cuts_the_rate_after_patience_epochs_without_improvement():
    rows = _fit_with({"kind": "plateau", "factor": 0.5, "patience": 1}, epochs=5)
    # Epoch 0 sets the best val_loss; epochs 1 and 2 do not improve on it (2 > patience) -> the rate is halved
    # once epoch 2 has been validated, so epoch 3 trains at 0.05; the row shows the rate each epoch trained at.
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])


def test_cosine_schedule_steps_per_batch_inside_lightning():
    rows = _fit_with({"kind": "cosine", "final_fraction": 0.0}, epochs=2)  # 2 batches per epoch: 4 steps
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.0], abs=1e-12)
