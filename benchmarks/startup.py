"""Start-up time of the project's commands (issue 18): ``kedro --help`` and ``kedro run`` up to its first node.

    .venv/bin/python benchmarks/startup.py [--runs 3] [--full] [--importtime] [--node training_data]

Run from the project root. Each measurement is a fresh process; the median of ``--runs`` is printed with the
load average. Time to first node = from starting ``kedro run --pipelines=forecast`` to its
"Running node: clean_series" line; the run is then interrupted (Ctrl+C: its MLflow run ends KILLED, its staged
files are dropped) unless ``--full`` lets it finish. CPU = the process's user + system time at that line
(``time.process_time``), which a busy machine inflates far less than the wall time. ``--importtime``: the
modules that took longest to import before the first node (``python -X importtime``, cumulative), from one more
run. ``--node NAME``: also the time to that node (``training_data``: the first node that waits for the MLflow
run, which the hooks start in the background; see ``lstm_lab.hooks``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEDRO = str(Path(sys.executable).with_name("kedro"))
ARGS = ["run", "--pipelines=forecast", "--params=forecast.training.max_epochs=1"]
# `kedro run` as the kedro script runs it, plus a filter on the project's per-node log line ("Running node:
# clean_series (1/9)") that reports this process's CPU time at the first node and, without --full, interrupts
# the run there, as Ctrl+C would.
WRAPPER = f"""
import logging, os, signal, sys, time
class FirstNode(logging.Filter):
    seen = False
    def filter(self, record):
        message, until = record.getMessage(), os.environ.get("STARTUP_NODE")
        if "Running node" not in message:
            return True
        if not FirstNode.seen:
            FirstNode.seen = True
            print(f"CPU_AT_FIRST_NODE {{time.process_time():.3f}}", file=sys.stderr, flush=True)
        reached = until and f"Running node: {{until}} (" in message
        if reached:
            print(f"CPU_AT_NODE {{time.process_time():.3f}}", file=sys.stderr, flush=True)
        if not os.environ.get("STARTUP_FULL") and (reached or not until):
            os.kill(os.getpid(), signal.SIGINT)
        return True
logging.getLogger("lstm_lab.progress").addFilter(FirstNode())
sys.argv = ["kedro", *{ARGS!r}]
from kedro.framework.cli import main
sys.exit(main())
"""


def time_help() -> float:
    began = time.perf_counter()
    subprocess.run([KEDRO, "--help"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def time_first_node(full: bool, importtime: bool = False, until: str | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds) from the start of ``kedro run`` to its first node, and its stderr. ``until``:
    to that node instead (its stderr has both), where the run is interrupted unless ``full``."""
    env = {**os.environ, **({"STARTUP_FULL": "1"} if full else {}),
           **({"PYTHONPROFILEIMPORTTIME": "1"} if importtime else {}), **({"STARTUP_NODE": until} if until else {})}
    marker = "CPU_AT_NODE" if until else "CPU_AT_FIRST_NODE"
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    first, lines = None, []
    for line in proc.stderr:  # the wrapper's marker: printed as the (first) node's line is logged
        if first is None and line.startswith(marker):
            first = time.perf_counter() - began
        lines.append(line)
    proc.wait()
    text = "".join(lines)
    cpu = re.search(rf"{marker} ([0-9.]+)", text)
    if first is None or cpu is None:
        raise SystemExit(f"kedro run exited {proc.returncode} before node {until or 'one'}:\n{text[-3000:]}")
    return first, float(cpu.group(1)), text


def importtime_offenders(top: int = 15) -> list[tuple[float, str]]:
    """(cumulative seconds, module) of the slowest imports made directly by the run's own code (not by another
    module) before the first node."""
    text = time_first_node(full=False, importtime=True)[2]
    text = text[: text.index("CPU_AT_FIRST_NODE")]
    rows = []
    for line in text.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="let each run finish instead of interrupting it")
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    parser.add_argument("--node", metavar="NAME", help="also time the run up to this node (e.g. training_data, "
                        "the first that waits for the MLflow run)")
    args = parser.parse_args()
    helps = [time_help() for _ in range(args.runs)]
    print(f"kedro --help: median {statistics.median(helps):.2f} s ({', '.join(f'{t:.2f}' for t in helps)}); "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    runs = [time_first_node(args.full)[:2] for _ in range(args.runs)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"first node: median {statistics.median(walls):.2f} s wall ({', '.join(f'{t:.2f}' for t in walls)}), "
          f"{statistics.median(cpus):.2f} s CPU ({', '.join(f'{t:.2f}' for t in cpus)}); "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    if args.node:
        runs = [time_first_node(args.full, until=args.node)[:2] for _ in range(args.runs)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"node {args.node}: median {statistics.median(walls):.2f} s wall "
              f"({', '.join(f'{t:.2f}' for t in walls)}), {statistics.median(cpus):.2f} s CPU "
              f"({', '.join(f'{t:.2f}' for t in cpus)}); load {os.getloadavg()[0]:.2f}", flush=True)
    if args.importtime:
        for seconds, module in importtime_offenders():
            print(f"  {seconds:6.2f} s  {module}")


if __name__ == "__main__":
    main()
