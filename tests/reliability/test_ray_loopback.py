"""The local Ray a sweep starts listens on loopback only: GCS, raylet (node and object manager), agents, the
driver's and the workers' gRPC servers. Before the fix they listened on ``[::]`` (every interface), and Ray
runs pickled code for whoever reaches those ports.
"""

from __future__ import annotations

import ipaddress
import os
import time

import psutil
import pytest

from lstm_lab.tuning.config import TuneParams

# One xdist group for every test that starts Ray (see tests/conftest.py): one Ray instance at a time.
pytestmark = pytest.mark.xdist_group("ray")


def listening(pids: set[int]) -> dict[tuple[str, str], str]:
    """``(process name, address:port)`` → ip of every TCP socket listening in ``pids``."""
    found = {}
    for conn in psutil.net_connections(kind="inet"):
        if conn.status != psutil.CONN_LISTEN or conn.pid not in pids:
            continue
        try:
            name = psutil.Process(conn.pid).name()
        except psutil.Error:
            continue
        found[(name, f"{conn.laddr.ip}:{conn.laddr.port}")] = conn.laddr.ip
    return found


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1, a dual-stack socket bound to loopback
        address = address.ipv4_mapped
    return address.is_loopback


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only(monkeypatch):
    import ray
    from ray._private import ray_constants

    from lstm_lab.tuning.ray_cluster import connect_ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():  # another test's Ray in this process: connect_ray would reuse it
        ray.shutdown()
    flag_before = ray_constants.ENABLE_RAY_CLUSTER
    settings = TuneParams.model_validate(
        {"space": {"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}, "ray": {"num_cpus": 1}}
    )
    assert connect_ray(settings) is True
    try:
        # This process keeps its own setting (a later sweep may join a real cluster).
        assert ray_constants.ENABLE_RAY_CLUSTER == flag_before
        assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ

        @ray.remote
        def where() -> str:
            return ray.util.get_node_ip_address()

        assert ray.get(where.remote(), timeout=120) == "127.0.0.1"  # a worker process exists now

        me = psutil.Process()
        # Agents bind a little after init returns: poll until the set of sockets stops growing.
        seen: dict[tuple[str, str], str] = {}
        for _ in range(20):
            pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
            now = listening(pids)
            if seen and now.keys() <= seen.keys():
                break
            seen.update(now)
            time.sleep(0.5)
        names = {name for name, _ in seen}
        assert {"gcs_server", "raylet"} <= names, seen  # the servers that matter were found at all
        exposed = sorted(f"{name} {address}" for (name, address), ip in seen.items() if not is_loopback(ip))
        assert not exposed, f"listening beyond loopback: {exposed}"
    finally:
        ray.shutdown()
