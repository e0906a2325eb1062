"""One factory for every sweep pipeline: ``tune_<name>`` = <name>'s nodes up to ``<name>_training_data`` + sweep.

A pipeline is tunable when it produces ``<name>_training_data`` (what ``run_training`` takes) and its training
task is registered in ``training.entry.TASKS``. Its own nodes prepare the data once, in this process; the
sweep node hands it to every trial through Ray's object store. Outputs are catalog patterns
(``conf/base/catalog_tune.yml``): ``tune_<name>_results``, ``_best_params``, ``_best_model``, ``_plot``,
``_summary``.
"""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.tune.nodes import make_sweep
from lstm_lab.training.entry import TASKS


def create_sweep_pipeline(name: str, base: Pipeline) -> Pipeline:
    prepare = base.to_outputs(f"{name}_training_data")
    sweep = node(
        make_sweep(name),
        [f"{name}_training_data", f"params:{name}", f"params:tune_{name}"],
        [f"tune_{name}_results", f"tune_{name}_best_params", f"tune_{name}_best_model", f"tune_{name}_plot",
         f"tune_{name}_summary"],
        name=f"sweep_{name}",
        tags=["tune"],
    )
    return prepare + pipeline([sweep])


def create_sweep_pipelines(pipelines: dict[str, Pipeline]) -> dict[str, Pipeline]:
    return {
        f"tune_{name}": create_sweep_pipeline(name, base)
        for name, base in pipelines.items()
        if name in TASKS and f"{name}_training_data" in base.all_outputs()
    }
