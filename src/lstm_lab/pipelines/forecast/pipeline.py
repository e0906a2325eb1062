"""The forecast pipeline. Tags split it where DVC stages split it: ``prepare`` | ``train`` ``evaluate``."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.forecast import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.clean, ["forecast_raw", "params:forecast"], "forecast_clean", name="clean_series",
                 tags=["prepare"]),
            node(nodes.split_series, ["forecast_clean", "params:forecast"], "forecast_split", name="split_series",
                 tags=["prepare"]),
            node(nodes.fit_scaler, ["forecast_clean", "forecast_split", "params:forecast"], "forecast_scaler",
                 name="fit_scaler", tags=["prepare"]),
            node(
                nodes.training_data,
                ["forecast_clean", "forecast_split", "forecast_scaler", "params:forecast"],
                "forecast_training_data",
                name="training_data",
                tags=["train"],
            ),
            node(
                nodes.train_forecaster,
                ["forecast_training_data", "params:forecast"],
                ["forecast_model", "forecast_history"],
                name="train_forecaster",
                tags=["train"],
            ),
            node(
                nodes.evaluate_forecaster,
                ["forecast_model", "forecast_clean", "forecast_split", "forecast_scaler", "params:forecast"],
                ["forecast_metrics", "forecast_predictions"],
                name="evaluate_forecaster",
                tags=["evaluate"],
            ),
            node(nodes.plot_learning_curves, "forecast_history", "forecast_learning_curves",
                 name="plot_learning_curves", tags=["evaluate"]),
            node(nodes.plot_forecast, ["forecast_predictions", "params:forecast"], "forecast_plot",
                 name="plot_forecast", tags=["evaluate"]),
            node(nodes.backtest_forecaster, ["forecast_model", "forecast_clean", "forecast_scaler", "params:forecast"],
                 "forecast_backtest", name="backtest_forecaster", tags=["evaluate"]),
            node(nodes.forecast_future,
                 ["forecast_model", "forecast_clean", "forecast_scaler", "forecast_future_covariates",
                  "params:forecast"],
                 "forecast_future", name="forecast_future", tags=["evaluate"]),
            node(nodes.score_future, ["forecast_future", "forecast_future_actuals", "forecast_clean", "params:forecast"],
                 "forecast_future_metrics", name="score_future", tags=["evaluate"]),
            # Named to sort after plot_forecast in its group: the sequential runner publishes the model last.
            node(nodes.log_serving_model,
                 ["forecast_model", "forecast_metrics", "forecast_future_metrics", "forecast_clean", "params:forecast"],
                 None, name="register_forecast_model", tags=["evaluate"]),
        ]
    )
