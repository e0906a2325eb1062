"""``kedro run --pipelines=predict_textgen``: generate from the configured prompts with the registered model."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.predict_textgen import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([
        node(nodes.generate, "params:predict_textgen", "predict_textgen_output", name="predict_textgen",
             tags=["predict"]),
    ])
