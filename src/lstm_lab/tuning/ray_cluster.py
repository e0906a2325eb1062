"""Ray for a sweep: a local cluster on loopback, or the existing cluster ``RAY_ADDRESS`` names."""

from __future__ import annotations

import logging
import os

from lstm_lab.tuning.config import TuneParams

log = logging.getLogger(__name__)


def connect_ray(settings: TuneParams) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down).

    A local Ray listens on loopback only. Ray's Python side turns the node address ``127.0.0.1`` into this
    machine's LAN address on Linux (``ray_constants.ENABLE_RAY_CLUSTER``, read once at import from
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``), and its gRPC servers (GCS, raylet, object manager, every worker)
    bind ``0.0.0.0``/``[::]`` unless the node address is loopback: any host on the network could then reach a
    cluster that runs pickled code. So for the local start both are switched to single-machine mode for the
    duration of ``ray.init``: the processes it starts take ``127.0.0.1`` from their command line (and the
    variable from their environment), and this process keeps its normal behaviour for a later cluster.
    """
    import ray

    if ray.is_initialized():  # a notebook or test that set Ray up itself
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune snapshots its state whenever a trial keeps a new best checkpoint; with epochs of a second that is
    # often, and it says so on every snapshot. Harmless for sweeps of this size.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune would add a TensorBoard logger and print a `tensorboard --logdir` hint (TensorBoard is not installed;
    # MLflow shows the trials): the sweep passes the CSV and JSON loggers it needs itself.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    common = dict(logging_level=logging.WARNING, log_to_driver=settings.ray.log_to_driver)
    address = os.environ.get("RAY_ADDRESS")
    if address and address != "local":  # "local" names no cluster: start one, on loopback like the default
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, **common)
        return True
    from ray._private import ray_constants

    # Ray 2.60 turns token authentication on for a new local cluster (good: the cluster runs pickled code) and
    # warns that it did, on every sweep. RAY_AUTH_MODE=token would say it without the warning, but then this
    # process's own client has no token yet and GCS refuses it: keep the default, drop only that warning.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)

    switch = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    saved_env, saved_flag = os.environ.get(switch), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[switch], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(address="local", num_cpus=settings.ray.num_cpus or os.cpu_count(), include_dashboard=False,
                 _node_ip_address="127.0.0.1", **common)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(switch, None)
        else:
            os.environ[switch] = saved_env
    return True
