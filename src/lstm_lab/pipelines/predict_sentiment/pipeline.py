"""``kedro run --pipelines=predict_sentiment``: score a table of texts with the registered classifier."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.predict_sentiment import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([
        node(nodes.predict, ["predict_sentiment_input", "params:predict_sentiment"], "predict_sentiment_output",
             name="predict_sentiment", tags=["predict"]),
    ])
