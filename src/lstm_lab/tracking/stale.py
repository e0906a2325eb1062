"""Runs left RUNNING by a process that no longer exists (``kill -9``, an OOM kill, a power cut) are closed.

Each pipeline run is tagged with the process that owns it (``lstm_lab_process = host:pid:start time``). When the
next run of the project starts, every RUNNING run of this host whose process is gone (or whose pid now belongs
to a process started later) is marked KILLED with an ``error`` tag saying so, instead of staying RUNNING forever
in ``mlflow ui``.
"""

from __future__ import annotations

import logging
import os
import socket

from lstm_lab.processes import is_running, start_time

log = logging.getLogger(__name__)

TAG = "lstm_lab_process"


def process_tag(pid: int | None = None) -> str:
    """``host:pid:start time`` of this process (or ``pid``): names the owner of a run, safe against pid reuse."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_time(pid) or 0:.2f}"


def owner_alive(tag: str) -> bool:
    """Whether the process a ``process_tag`` names still runs (always True for another host's runs)."""
    host, _, rest = tag.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    return is_running(int(pid_text), float(started or 0))


def close_stale_runs(client) -> list[str]:
    """Mark KILLED every RUNNING run of this host whose owning process is gone; returns their ids."""
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiments:
        return []
    runs = client.search_runs(
        experiments, filter_string=f"attributes.status = 'RUNNING' and tags.{TAG} LIKE '{socket.gethostname()}:%'",
        max_results=1000,
    )
    closed = []
    for run in runs:
        tag = run.data.tags.get(TAG, "")
        if owner_alive(tag):
            continue
        pid = tag.split(":")[1]
        client.set_tag(run.info.run_id, "error", f"process {pid} ended without closing the run (killed?)")
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("marked %d MLflow run(s) KILLED: their process ended without closing them (%s)", len(closed),
                    ", ".join(closed))
    return closed
