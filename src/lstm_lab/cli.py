"""Project CLI: Kedro's own ``run`` command, with bad input reported as one line instead of a traceback, and
Ctrl+C / SIGTERM ending the run as interrupted (exit 130 / 143, one line, MLflow KILLED; ``lstm_lab.interrupts``).

Kedro picks up ``cli`` from this module and lets it override its built-in commands. Every option of
``kedro run`` (``--pipeline``, ``--pipelines``, ``--env``, ``--tags``, ``--params``, ...) is unchanged.
"""

from __future__ import annotations

import sys
import warnings

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.io import DatasetError

from lstm_lab.errors import LstmLabError, one_line, shorten_dataset_error
from lstm_lab.interrupts import RunInterrupted, signals_raise


@click.group(name="lstm_lab")
def cli():
    """Commands of the lstm_lab project."""


def _pipelines_help() -> str:
    """The registered pipelines, named from the package folders (nothing imported: ``--help`` stays instant)."""
    import importlib.resources

    root = importlib.resources.files("lstm_lab.pipelines")
    own = sorted(e.name for e in root.iterdir() if e.joinpath("pipeline.py").is_file() and e.name != "tune")
    tasks = sorted(e.name for e in importlib.resources.files("lstm_lab.training").iterdir()
                   if e.joinpath("task.py").is_file())
    names = [n for n in own if not n.startswith("predict_")] + [f"tune_{t}" for t in tasks if t in own] + \
        [n for n in own if n.startswith("predict_")]
    return ("\n\nPipelines of this project (--pipelines=<name>[,<name>]; the default runs forecast): "
            + ", ".join(names) + ".")


@cli.command(name="run", params=kedro_run.params, help=(kedro_run.help or "") + _pipelines_help(),
             context_settings=kedro_run.context_settings)
@click.pass_context
def run(ctx: click.Context, **kwargs):
    # `--pipeline` and `--pipelines` do the same here (the README offers both): no deprecation notice on every run.
    warnings.filterwarnings("ignore", message="Option '--pipeline' is deprecated")
    with signals_raise():
        try:
            return ctx.invoke(kedro_run, **kwargs)
        except RunInterrupted as exc:
            click.secho(f"Error: {interrupted_message(exc)}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except (LstmLabError, DatasetError) as exc:
            click.secho(f"Error: {shorten_dataset_error(one_line(exc))}", fg="red", err=True)
            sys.exit(1)


def interrupted_message(exc: RunInterrupted) -> str:
    """End the run in progress as KILLED, drop its staged files, and say so (and what was kept) in one line."""
    from lstm_lab.hooks import abort_current_run

    reason = f"interrupted by {exc.signal_name}" + (f" ({exc.detail})" if exc.detail else "")
    try:
        aborted = abort_current_run(reason)
    except RunInterrupted as again:  # a second signal while closing (or still starting) the MLflow run: stop there
        return (f"{reason}; interrupted again by {again.signal_name} before the MLflow run was closed: the next run "
                f"marks it KILLED")
    except Exception as error:  # noqa: BLE001 - the one line and the exit status must come out regardless
        return f"{reason}; the MLflow run could not be closed ({type(error).__name__}): the next run marks it KILLED"
    if aborted is None:  # before the pipeline started (or after it ended): nothing to undo
        return f"{reason}; nothing of this run was saved"
    where = f" during node {aborted['node']}" if aborted["node"] else ""
    run = f"; MLflow run {aborted['run_id']} marked KILLED" if aborted["run_id"] else ""
    return (f"{reason}{where}: this run's outputs were discarded (the files of the last complete run are "
            f"unchanged){run}")
