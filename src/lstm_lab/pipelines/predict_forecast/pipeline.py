"""``kedro run --pipelines=predict_forecast``: forecast the steps after the cleaned series with the registered model."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.predict_forecast import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([
        node(nodes.predict, ["forecast_clean", "params:predict_forecast"], "predict_forecast_output",
             name="predict_forecast", tags=["predict"]),
    ])
