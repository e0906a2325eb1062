"""The sentiment pipeline. Tags split it where DVC stages split it: ``prepare`` | ``train`` ``evaluate``."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.sentiment import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.load_corpus, ["sentiment_raw", "params:sentiment"],
                 ["sentiment_corpus", "sentiment_data_report"], name="sentiment_load_corpus", tags=["prepare"]),
            node(nodes.fit_tokenizer, ["sentiment_corpus", "params:sentiment"], "sentiment_tokenizer",
                 name="fit_tokenizer", tags=["prepare"]),
            node(nodes.describe_text, ["sentiment_corpus", "sentiment_tokenizer", "params:sentiment"],
                 "sentiment_text_stats", name="describe_text", tags=["prepare"]),
            node(nodes.training_data, ["sentiment_corpus", "sentiment_tokenizer", "params:sentiment"],
                 "sentiment_training_data", name="sentiment_training_data", tags=["train"]),
            node(nodes.train_classifier, ["sentiment_training_data", "params:sentiment"],
                 ["sentiment_model", "sentiment_history"], name="train_classifier", tags=["train"]),
            node(nodes.evaluate_classifier,
                 ["sentiment_model", "sentiment_corpus", "sentiment_tokenizer", "params:sentiment"],
                 ["sentiment_metrics", "sentiment_predictions"], name="evaluate_classifier", tags=["evaluate"]),
            node(nodes.plot_learning_curves, "sentiment_history", "sentiment_learning_curves",
                 name="plot_sentiment_learning_curves", tags=["evaluate"]),
            node(nodes.plot_confusion_matrix, ["sentiment_metrics", "params:sentiment"],
                 "sentiment_confusion_matrix", name="plot_confusion_matrix", tags=["evaluate"]),
            node(nodes.log_serving_model,
                 ["sentiment_model", "sentiment_tokenizer", "params:sentiment", "sentiment_metrics"],
                 "sentiment_model_info", name="log_serving_model", tags=["evaluate"]),
        ]
    )
