"""training/runtime.py: threads from the CPUs this process may use, one per trial / rank, subnormal floats flushed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lstm_lab.training import runtime
from lstm_lab.training.config import TrainingConfig
from tests.conftest import run_python


def flushing() -> bool:
    """Whether this thread flushes subnormal floats (DAZ: a subnormal input reads as zero)."""
    return bool((torch.tensor([1e-40], dtype=torch.float32) * 1).item() == 0.0)


@pytest.fixture(autouse=True)
def clean_runtime(monkeypatch):
    """Each test starts as a process that trains alone; torch's threads and flag are put back afterwards."""
    threads, flushed = torch.get_num_threads(), flushing()
    monkeypatch.setattr(runtime, "_share_cpus", None)
    monkeypatch.setattr(runtime, "_logged", None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    yield
    torch.set_flush_denormal(flushed)
    torch.set_num_threads(threads)


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "limit"), [
    ({"cpu.max": "max 100000\n"}, None),  # cgroup v2 without a quota
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # cgroup v1 without a quota
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({}, None),  # no cgroup files (macOS, a sandbox): no limit known
])
def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path, files, limit):
    assert runtime.cgroup_cpu_limit(cgroup(tmp_path, files)) == limit


@pytest.mark.parametrize(("files", "cpus"), [
    ({"cpu.max": "max 100000"}, 8),  # affinity alone
    ({"cpu.max": "200000 100000"}, 2),  # a container limited to 2 CPUs on a larger host
    ({"cpu.max": "250000 100000"}, 2),  # rounded down: a third thread would be throttled
    ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 1),  # half a CPU: still one
    ({"cpu.max": "1600000 100000"}, 8),  # a quota above the affinity changes nothing
])
def test_available_cpus_is_affinity_capped_by_the_quota(tmp_path, monkeypatch, files, cpus):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert runtime.available_cpus(cgroup(tmp_path, files)) == cpus


def test_null_threads_mean_the_available_cpus_and_a_number_is_used_as_given(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda root=None: 3)
    assert runtime.choose_threads(None) == 3
    assert runtime.choose_threads(5) == 5
    assert runtime.apply_runtime(TrainingConfig()) == 3 == torch.get_num_threads()
    assert runtime.apply_runtime(TrainingConfig(num_threads=2)) == 2 == torch.get_num_threads()


def test_trials_and_ranks_get_one_thread_unless_num_threads_is_set(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda root=None: 4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # a torchrun rank with a sibling on this machine
    assert runtime.choose_threads(None) == 1
    assert runtime.choose_threads(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # torchrun with one rank: it has the machine
    assert runtime.choose_threads(None) == 4

    # A Ray trial gives its share once; the fits it runs call apply_runtime again and keep it.
    assert runtime.apply_runtime(TrainingConfig(), cpus=1) == 1
    assert runtime.apply_runtime(TrainingConfig()) == 1 == torch.get_num_threads()
    assert runtime.apply_runtime(TrainingConfig(num_threads=2)) == 2


def test_flush_denormal_is_applied_and_can_be_turned_off():
    runtime.apply_runtime(TrainingConfig(num_threads=1, flush_denormal=True))
    assert flushing()
    runtime.apply_runtime(TrainingConfig(num_threads=1, flush_denormal=False))
    assert not flushing()


def test_ddp_spawn_and_fork_ranks_get_the_runtime_through_a_callback(monkeypatch):
    from lstm_lab.training.rank_runtime import RankRuntime

    monkeypatch.setattr(runtime, "available_cpus", lambda root=None: 4)
    cfg = TrainingConfig(flush_denormal=True, trainer={"strategy": "ddp_spawn", "devices": 2})
    added = [c for c in runtime.runtime_for_fit(cfg, []) if isinstance(c, RankRuntime)]
    assert len(added) == 1 and torch.get_num_threads() == 4  # this process: the launcher, alone
    assert not [c for c in runtime.runtime_for_fit(TrainingConfig(), []) if isinstance(c, RankRuntime)]

    torch.set_flush_denormal(False)
    added[0].setup(SimpleNamespace(num_devices=2), None, "fit")  # what Lightning calls in each rank
    assert torch.get_num_threads() == 1 and flushing()


def test_a_ray_trial_applies_its_share_before_training(monkeypatch):
    """The trial function itself (Ray runs it in a worker process): threads and flag are set before any fit."""
    from tests.conftest import typed_params
    from lstm_lab.training import entry
    from lstm_lab.training.task import get_task
    from lstm_lab.tuning.space import SearchSpace
    from lstm_lab.tuning.sweep import _trial

    seen = []

    def fake_training(task, params, data, callbacks=()):
        seen.append((torch.get_num_threads(), flushing(), params.training.num_threads))
        return SimpleNamespace(history=[{"val_loss": 1.0}])

    monkeypatch.setattr(entry, "run_training", fake_training)
    monkeypatch.setattr(runtime, "available_cpus", lambda root=None: 4)
    torch.set_flush_denormal(False)
    space = SearchSpace(dims={"training.learning_rate": {"type": "uniform", "low": 0.001, "high": 0.01}})
    params = typed_params("forecast")
    _trial({"training.learning_rate": 0.002}, task=get_task("forecast"), params=params, data={}, space=space,
           executions=2, max_epochs=1, threads=1)
    assert seen == [(1, True, None), (1, True, None)]


def test_flush_reaches_intra_op_threads_when_set_on_import():
    """The Kedro hook's way: flag set as torch is imported, so the worker threads a big op starts copy it."""
    code = (
        "from lstm_lab.training.runtime import flush_denormal_on_import\n"
        "import sys\n"
        "assert 'torch' not in sys.modules\n"
        "flush_denormal_on_import()\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "x = torch.full((1 << 22,), 1e-40, dtype=torch.float32)\n"  # split across the intra-op threads
        "print(int((x * 1).count_nonzero()))\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "0"


def test_an_import_in_another_thread_still_finds_modules_when_the_hook_is_disarmed(tmp_path):
    """The hook is taken out of service while another thread may be iterating ``sys.meta_path`` (MLflow imported
    by the background start of a run). Here that moment is staged without threads: a finder just ahead of the
    PathFinder disarms the hook while the import of a module that only the PathFinder can find is in progress.
    Taking the hook out of the list at that point made that import skip the PathFinder: ModuleNotFoundError."""
    (tmp_path / "lstm_lab_probe_module.py").write_text("VALUE = 7\n")
    code = (
        "import importlib.machinery, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from lstm_lab.training import runtime\n"
        "assert 'torch' not in sys.modules\n"
        "runtime.flush_denormal_on_import()\n"
        "runtime.flush_denormal_on_import()\n"  # once in the list, however often it is asked for
        "assert sum(f is runtime._FLUSH_HOOK for f in sys.meta_path) == 1\n"
        "class OtherThreadDisarms:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lstm_lab_probe_module':\n"
        "            runtime.uninstall_flush_on_import()\n"
        "        return None\n"
        "at = sys.meta_path.index(importlib.machinery.PathFinder)\n"
        "sys.meta_path.insert(at, OtherThreadDisarms())\n"
        "import lstm_lab_probe_module\n"
        "assert lstm_lab_probe_module.VALUE == 7\n"
        "import torch\n"  # disarmed: torch loads without the hook, subnormals are kept
        "print(int(torch.tensor([1e-40]).count_nonzero()))\n"
        "runtime.flush_denormal_on_import()\n"  # torch loaded: flushes at once
        "print(int((torch.tensor([1e-40]) * 1).count_nonzero()))\n"
    )
    done = run_python(code)
    assert done.stdout.split() == ["1", "0"]
