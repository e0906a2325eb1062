"""Training on several devices: the strategy checks and rank helpers (no processes), then two CPU ranks (gloo)
through the real Kedro pipeline with ddp_spawn, ddp_fork and ddp (torchrun)."""

from __future__ import annotations

import copy
import json
import multiprocessing
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader

from lstm_lab.checkpoints import load_checkpoint_file
from lstm_lab.data.windowing import already_batched
from lstm_lab.errors import LstmLabError
from lstm_lab.tracking import MlflowTarget
from lstm_lab.training import distributed
from lstm_lab.training.callbacks import EpochHistory, read_history
from lstm_lab.training.config import TrainerSettings
from lstm_lab.training.distributed import Platform, plan_training
from tests.conftest import TINY_FORECAST, kedro, make_project, mlflow_client, raw_params, typed_params

WHERE = "forecast.training.trainer"
CPU = Platform(cuda_devices=0)
TWO_GPUS = Platform(cuda_devices=2, cuda_bf16=True)


def plan(platform=CPU, **settings):
    return plan_training(TrainerSettings(**settings), platform, where=WHERE)


def refused(match, platform=CPU, **settings):
    with pytest.raises(LstmLabError, match=match) as info:
        plan(platform, **settings)
    assert "\n" not in str(info.value)  # one line, naming the parameter
    return str(info.value)


# ------------------------------------------------------------------------------------------------ rank helpers
def test_rank_helpers_read_the_launchers_environment():
    torchrun = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    assert (distributed.global_rank(torchrun), distributed.local_rank(torchrun), distributed.world_size(torchrun)) == (3, 1, 4)
    assert not distributed.is_rank_zero(torchrun)
    assert distributed.started_by_torchrun(torchrun)
    assert distributed.started_by_torchrun({"TORCHELASTIC_RUN_ID": "x"})

    slurm = {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "8"}
    assert distributed.is_rank_zero(slurm) and distributed.world_size(slurm) == 8
    assert not distributed.started_by_torchrun(slurm)

    assert (distributed.global_rank({}), distributed.world_size({}), distributed.is_rank_zero({})) == (0, 1, True)


# ------------------------------------------------------------------------------------------------ strategy plan
def test_default_is_one_process_in_place():
    p = plan()
    assert (p.accelerator, p.devices, p.num_nodes, p.strategy, p.launcher) == ("cpu", 1, 1, "auto", "none")


@pytest.mark.parametrize(
    "strategy, launcher", [("ddp_spawn", "in_node"), ("ddp_fork", "in_node"), ("ddp", "torchrun")]
)
def test_cpu_strategies_choose_their_launcher(strategy, launcher):
    p = plan(accelerator="cpu", devices=2, strategy=strategy)
    assert (p.launcher, p.world_size, p.strategy) == (launcher, 2, strategy)


def test_a_rank_that_torchrun_started_trains_in_place():
    p = plan(Platform(in_torchrun=True), accelerator="cpu", devices=2, strategy="ddp")
    assert p.launcher == "none" and p.strategy == "ddp"


def test_auto_with_several_cpu_devices_is_ambiguous():
    message = refused(r"forecast\.training\.trainer\.devices: .*ambiguous", accelerator="cpu", devices=2)
    assert "ddp_spawn" in message and "ddp_fork" in message


def test_auto_with_several_gpus_goes_through_torchrun_not_a_re_executed_command():
    p = plan(TWO_GPUS, accelerator="gpu", devices=2)
    assert (p.accelerator, p.strategy, p.launcher) == ("cuda", "ddp", "torchrun")
    assert plan(TWO_GPUS, accelerator="auto", devices="auto").world_size == 2
    assert plan(TWO_GPUS, accelerator="cuda", devices=-1).devices == 2
    assert plan(TWO_GPUS, accelerator="cuda", devices="0,1", strategy="ddp_spawn").devices == 2


def test_more_gpus_than_the_machine_has():
    refused(r"forecast\.training\.trainer\.devices: asks for 4 cuda device\(s\) but this machine has 2",
            TWO_GPUS, accelerator="gpu", devices=4, strategy="ddp")
    refused(r"\.devices: GPU index 3 does not exist", TWO_GPUS, accelerator="cuda", devices="0,3", strategy="ddp")
    refused(r"forecast\.training\.trainer\.accelerator: gpu asks for CUDA GPUs but none is visible", accelerator="gpu")
    refused(r"\.accelerator: mps is not available", accelerator="mps")


@pytest.mark.parametrize("devices", [0, -1, "two", "0,1"])
def test_bad_device_counts_on_cpu(devices):
    refused(r"forecast\.training\.trainer\.devices: expected a positive number", accelerator="cpu", devices=devices)


def test_ddp_fork_where_fork_cannot_work():
    refused(r"\.strategy: ddp_fork: forking is disabled here \(PL_DISABLE_FORK=1",
            Platform(fork_disabled=True), accelerator="cpu", devices=2, strategy="ddp_fork")
    refused(r"\.strategy: ddp_fork needs the 'fork' start method",
            Platform(fork_available=False), accelerator="cpu", devices=2, strategy="ddp_fork")
    refused(r"\.strategy: ddp_fork: CUDA is already initialised",
            Platform(cuda_devices=2, cuda_initialized=True), accelerator="cuda", devices=2, strategy="ddp_fork")
    # CPU ranks never touch CUDA: a CUDA context in the parent does not matter to them.
    assert plan(Platform(cuda_devices=2, cuda_initialized=True), accelerator="cpu", devices=2,
                strategy="ddp_fork").launcher == "in_node"


def test_precision_the_device_cannot_do():
    refused(r"forecast\.training\.trainer\.precision: 16-mixed is not supported on CPU", precision="16-mixed")
    refused(r"\.precision: bf16-mixed: this CPU has no bfloat16", Platform(cpu_bf16=False), precision="bf16-mixed")
    assert plan(Platform(cpu_bf16=True), precision="bf16-mixed").launcher == "none"
    refused(r"\.precision: bf16-mixed needs a GPU of compute capability 8\.0",
            Platform(cuda_devices=1, cuda_bf16=False), accelerator="gpu", precision="bf16-mixed")
    assert plan(TWO_GPUS, accelerator="gpu", precision="16-mixed").launcher == "none"


def test_fsdp_and_nodes():
    refused(r"forecast\.training\.trainer\.strategy: fsdp needs CUDA GPUs", accelerator="cpu", devices=2,
            strategy="fsdp")
    assert plan(TWO_GPUS, accelerator="gpu", devices=2, strategy="fsdp").launcher == "torchrun"
    refused(r"forecast\.training\.trainer\.num_nodes: 2 nodes need strategy ddp", accelerator="cpu", devices=2,
            num_nodes=2, strategy="ddp_spawn")
    p = plan(TWO_GPUS, accelerator="gpu", devices=2, num_nodes=3)
    assert (p.strategy, p.launcher, p.world_size) == ("ddp", "torchrun", 6)


def test_platform_detect_on_this_machine():
    # accelerator auto: the CPU defaults skip torch entirely (start-up time), so they would count no GPUs.
    found = Platform.detect(TrainerSettings(accelerator="auto"))
    assert found.fork_available == ("fork" in multiprocessing.get_all_start_methods())
    assert found.cuda_devices == torch.cuda.device_count()
    assert not found.in_torchrun


def test_run_training_refuses_before_anything_starts():
    from lstm_lab.training.entry import run_training
    from lstm_lab.training.forecast.params import ForecastParams

    change = {"training": {"trainer": {"accelerator": "cpu", "devices": 2, "strategy": "auto"}}}
    with pytest.raises(LstmLabError, match=r"forecast\.training\.trainer\.devices"):
        typed_params("forecast", change)  # the run's one validation checks devices too
    # Parameters built without that check (a caller of the library) are refused by run_training itself.
    params = ForecastParams.model_validate(raw_params("forecast", change))
    with pytest.raises(LstmLabError, match=r"^forecast\.training\.trainer\.devices"):
        run_training("forecast", params, {})  # no data: it fails before anything would need it
    change["training"]["trainer"]["strategy"] = "ddp"  # torchrun ranks cannot run the caller's callbacks
    params = ForecastParams.model_validate(raw_params("forecast", change))
    with pytest.raises(LstmLabError, match=r"^forecast\.training\.trainer\.strategy: ddp .*callbacks"):
        run_training("forecast", params, {}, callbacks=[object()])


# ------------------------------------------------------------------------------------------------ launcher files
def test_torchrun_command():
    p = plan(accelerator="cpu", devices=2, strategy="ddp")
    cmd = distributed.torchrun_command(p, "forecast", distributed.Path("/job"), MlflowTarget("sqlite:///m.db", "r1"),
                                       python="py")
    assert cmd[:3] == ["py", "-m", "torch.distributed.run"]  # what the torchrun script runs
    assert {"--nproc-per-node=2", "--nnodes=1", "--standalone"} <= set(cmd)
    tail = cmd[cmd.index("lstm_lab.train") - 1 :]
    assert tail == ["-m", "lstm_lab.train", "--task", "forecast", "--config", "/job/config.json", "--data",
                    "/job/data.npz", "--out", "/job", "--tracking-uri", "sqlite:///m.db", "--run-id", "r1"]
    multi = plan(TWO_GPUS, accelerator="gpu", devices=2, num_nodes=2, strategy="ddp")
    assert "--standalone" not in distributed.torchrun_command(multi, "forecast", distributed.Path("/job"))


def test_several_nodes_need_a_shared_job_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(distributed.JOB_DIR_ENV, raising=False)
    multi = plan(TWO_GPUS, accelerator="gpu", devices=2, num_nodes=2, strategy="ddp")
    with pytest.raises(LstmLabError, match=r"^forecast\.training\.trainer\.num_nodes: .*LSTM_LAB_JOB_DIR"):
        distributed.launch_torchrun(multi, "forecast", tmp_path, where=WHERE)


def test_job_files_round_trip(tmp_path):
    data = {"inputs": np.arange(12, dtype=np.float32).reshape(6, 2), "targets": np.ones((6, 1), np.float32),
            "bounds": {"train_end": 2, "val_end": 4, "test_end": 6}}
    config_path, data_path = distributed.write_job(tmp_path, {"window": {"lookback": 2}}, data)
    assert json.loads(config_path.read_text()) == {"window": {"lookback": 2}}
    back = distributed.read_data(data_path)
    assert back["bounds"] == data["bounds"]
    np.testing.assert_array_equal(back["inputs"], data["inputs"])
    assert back["inputs"].dtype == np.float32


def test_torchrun_rank_takes_its_world_from_the_launcher(monkeypatch):
    from lstm_lab.train import _fit_to_launcher

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("WORLD_SIZE", "8")
    params = typed_params("forecast", {"training": {"seed": 1, "trainer": {"devices": 1, "strategy": "ddp_spawn"}}})
    trainer = _fit_to_launcher(params).training.trainer
    assert (trainer.devices, trainer.num_nodes, trainer.strategy) == (4, 2, "ddp")
    assert trainer.precision == params.training.trainer.precision  # the rest is kept
    assert params.training.trainer.devices == 1  # the caller's parameters are left alone


# ------------------------------------------------------------------------------------------------ callbacks, sampler
def test_history_rows_travel_through_rank_zeros_file(tmp_path):
    def trainer(rank, epoch, loss):
        return SimpleNamespace(sanity_checking=False, is_global_zero=rank == 0, current_epoch=epoch,
                               callback_metrics={"train_loss": torch.tensor(loss), "val_loss": torch.tensor(loss / 2)},
                               optimizers=[SimpleNamespace(param_groups=[{"lr": loss / 100}])])

    path = tmp_path / "ckpt" / "history.jsonl"
    path.parent.mkdir()
    path.write_text('{"epoch": 9}\n')  # left by an earlier fit in the same directory
    rank0, rank1 = EpochHistory(path), EpochHistory(path)
    rank0.on_fit_start(trainer(0, 0, 0), None)
    for epoch, loss in enumerate([1.0, 0.5]):
        rank0.on_train_epoch_end(trainer(0, epoch, loss), None)
        rank1.on_train_epoch_end(trainer(1, epoch, loss), None)  # a second rank writes nothing
    parent = EpochHistory(path)  # what the launching process holds: no rows of its own
    assert parent.collect() == read_history(path) == [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 0.5, "lr": 0.01},  # epoch = epochs trained
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.25, "lr": 0.005},
    ]
    assert EpochHistory().collect() == []


def test_distributed_sampler_keeps_the_batched_fetch():
    """Lightning swaps in a DistributedSampler by re-creating our DataLoader (use_distributed_sampler=True); the
    copy must keep collate_fn=already_batched, so WindowDataset.__getitems__ still builds whole batches, and the
    ranks must split the windows between them. (Lightning's private helpers, pinned by lightning<2.7.)"""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader

    from lstm_lab.training.forecast.module import ForecastDataModule

    series = np.arange(300, dtype=np.float32)[:, None]  # value = row: each input window tells its start row
    dm = ForecastDataModule(series, series, {"train_end": 200, "val_end": 250, "test_end": 300}, lookback=16,
                            horizon=4, stride=1, batch_size=32, seed=0)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()  # the way Lightning requests it, recording the constructor arguments
    seen = []
    for rank in (0, 1):
        sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=2, rank=rank)
        ranked = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
        assert ranked.collate_fn is already_batched and isinstance(ranked.sampler, type(sampler))
        starts = []
        for x, y in ranked:
            assert x.shape[1:] == (16, 1) and y.shape[1:] == (4, 1) and len(x) <= 32  # stacked batches
            torch.testing.assert_close(y[:, 0, 0], x[:, -1, 0] + 1)
            starts += (x[:, -1, 0] + 1).long().tolist()
        seen.append(starts)
    everything = dm.dataset("train").starts.tolist()
    assert sorted(set(seen[0]) | set(seen[1])) == everything
    assert len(seen[0]) == len(seen[1]) == (len(everything) + 1) // 2  # an equal share (padded if odd)


# ------------------------------------------------------------------------------------------------ two CPU ranks
def tiny_params(batch_size: int, trainer: dict | None = None) -> dict:
    params = copy.deepcopy(TINY_FORECAST)
    params["forecast"]["model"]["hidden_sizes"] = [4]
    params["forecast"]["training"]["batch_size"] = batch_size
    if trainer:
        params["forecast"]["training"]["trainer"] = trainer
    return params


@pytest.fixture(scope="module")
def single_process_loss(tmp_path_factory):
    """Test loss of one process with batch 256: two ranks of batch 128 average the same 256-window gradient."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.runner import SequentialRunner

    root = make_project(tmp_path_factory.mktemp("single") / "project", tiny_params(256))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        bootstrap_project(root)
        with KedroSession.create(project_path=root, env="local") as session:
            session.run(pipeline_names=["forecast"], runner=SequentialRunner())
    return json.loads((root / "data/08_reporting/forecast_metrics.json").read_text())["lstm"]["mse_scaled"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp"])
def test_two_cpu_ranks_through_kedro(strategy, tmp_path, single_process_loss):
    root = make_project(tmp_path / "project", tiny_params(128, {"accelerator": "cpu", "devices": 2, "strategy": strategy}))
    done = kedro(root, "--pipeline=forecast", env={"PYTHONUNBUFFERED": "1"})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]

    # The pipeline ran once: no rank re-executed `kedro run`.
    for node in ("clean_series", "split_series", "fit_scaler", "train_forecaster", "evaluate_forecaster"):
        assert out.count(f"Running node: {node}") == 1, node
    assert out.count("Run summary") == 1  # one process reported the run
    assert ("[torchrun]" in out) == (strategy == "ddp")

    # One MLflow run, one metric point per epoch (rank 0 only), the checkpoint logged once.
    client = mlflow_client(root)
    (run,) = client.search_runs([client.get_experiment_by_name("forecast").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1, 2]  # 0: untrained
    assert [f.path for f in client.list_artifacts(run.info.run_id, "model")].count("model/forecast_model.ckpt") == 1

    # The trained weights came back to the node: the saved checkpoint and history are rank 0's.
    checkpoint = load_checkpoint_file(root / "data/06_models/forecast_model.ckpt")
    assert "callbacks" not in checkpoint and checkpoint["hyper_parameters"]["model"]["hidden_sizes"] == [4]
    history = pd.read_csv(root / "data/08_reporting/forecast_history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]
    logged = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert history["val_loss"].tolist() == pytest.approx(logged)

    # Same data, same effective batch: the test loss is close to one process's (different shuffling order).
    loss = json.loads((root / "data/08_reporting/forecast_metrics.json").read_text())["lstm"]["mse_scaled"]
    assert loss == pytest.approx(single_process_loss, rel=0.15)
