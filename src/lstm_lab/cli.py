"""Project CLI: Kedro's own ``run`` command, with bad input reported as one line instead of a traceback.

Kedro picks up ``cli`` from this module and lets it override its built-in commands. Every option of
``kedro run`` (``--pipeline``, ``--pipelines``, ``--env``, ``--tags``, ``--params``, ...) is unchanged.
"""

from __future__ import annotations

import sys

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.io import DatasetError

from lstm_lab.errors import LstmLabError, one_line


@click.group(name="lstm_lab")
def cli():
    """Commands of the lstm_lab project."""


@cli.command(name="run", params=kedro_run.params, help=kedro_run.help, context_settings=kedro_run.context_settings)
@click.pass_context
def run(ctx: click.Context, **kwargs):
    try:
        return ctx.invoke(kedro_run, **kwargs)
    except (LstmLabError, DatasetError) as exc:
        click.secho(f"Error: {one_line(exc)}", fg="red", err=True)
        sys.exit(1)
