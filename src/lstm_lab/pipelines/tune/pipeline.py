"""One factory for every sweep pipeline: ``tune_<name>`` = <name>'s nodes up to its training data + sweep.

A pipeline is tunable when a task of the same name exists (``training/<name>/task.py``) and the pipeline
produces that task's ``training_data`` dataset (what ``run_training`` takes). Its own nodes prepare the data
once, in this process; the sweep node hands it to every trial through Ray's object store. Outputs are catalog
patterns (``conf/base/catalog_tune.yml``): ``tune_<name>_results``, ``_best_params``, ``_best_model``, ``_plot``,
``_summary``.
"""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.params import sweep_name
from lstm_lab.pipelines.tune.nodes import make_sweep
from lstm_lab.training.task import Task, find_task


def create_sweep_pipeline(task: Task, base: Pipeline) -> Pipeline:
    prepare = base.to_outputs(task.training_data)
    sweep = sweep_name(task.name)
    return prepare + pipeline([node(
        make_sweep(task),
        [task.training_data, f"params:{task.name}", f"params:{sweep}"],
        [f"{sweep}_results", f"{sweep}_best_params", f"{sweep}_best_model", f"{sweep}_plot", f"{sweep}_summary"],
        name=f"sweep_{task.name}",
        tags=["tune"],
    )])


def create_sweep_pipelines(pipelines: dict[str, Pipeline]) -> dict[str, Pipeline]:
    out = {}
    for name, base in pipelines.items():
        task = find_task(name)
        if task is not None and task.training_data in base.all_outputs():
            out[sweep_name(name)] = create_sweep_pipeline(task, base)
    return out
